"""Fixtures of the contract tests that several modules share."""

from ssh_peer_support import ssh_peer  # noqa: F401 (the real SSH peer, one per session)
