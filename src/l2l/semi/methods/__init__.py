"""One file per method; each is a strategy object the trainer calls."""
