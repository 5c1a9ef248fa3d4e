"""hvpatch.adapters.store."""
