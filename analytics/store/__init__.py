"""Everything that persists: model versions and their artifacts on disk."""
