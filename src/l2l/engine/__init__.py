"""Training, evaluation and checkpoints (the one trainer that every method uses)."""
