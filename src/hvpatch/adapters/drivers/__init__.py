"""hvpatch.adapters.drivers."""
