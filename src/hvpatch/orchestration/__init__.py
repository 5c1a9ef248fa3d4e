"""hvpatch.orchestration."""
