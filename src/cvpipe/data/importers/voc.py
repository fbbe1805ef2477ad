"""Format module (being written)."""
