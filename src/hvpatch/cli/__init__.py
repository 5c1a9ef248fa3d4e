"""hvpatch.cli."""
