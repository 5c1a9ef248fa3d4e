"""Fixtures of the contract tests that several modules share."""

# the real SSH peer, one per session; and the same reset, with its stand-in libvirtd up
from ssh_peer_support import peer_up, ssh_peer  # noqa: F401
