"""hvpatch benchmarks: each prints its numbers and a ratio against a baseline run in-process."""
