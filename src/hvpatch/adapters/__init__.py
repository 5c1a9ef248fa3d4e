"""hvpatch.adapters."""
