"""Remediation drivers (implementations of :mod:`hvpatch.ports.driver`), and the simulator."""
