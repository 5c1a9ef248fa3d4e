"""hvpatch.services."""
