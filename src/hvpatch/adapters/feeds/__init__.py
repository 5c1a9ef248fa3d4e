"""hvpatch.adapters.feeds."""
