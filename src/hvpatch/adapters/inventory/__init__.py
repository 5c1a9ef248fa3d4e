"""hvpatch.adapters.inventory."""
