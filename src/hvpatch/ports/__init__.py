"""hvpatch.ports."""
