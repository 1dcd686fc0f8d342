"""Small shared helpers (atomic files, hashing, progress bars)."""
