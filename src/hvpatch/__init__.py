"""hvpatch: vendor-neutral hypervisor security patch management."""

__version__ = "0.1.0"
