"""Regression checks (implementations of :mod:`hvpatch.ports.checks`).

:mod:`~hvpatch.adapters.checks.builtin` holds the host checks named in
:data:`hvpatch.domain.rollout.BUILTIN_CHECKS`; :mod:`~hvpatch.adapters.checks.suites` runs the
user's own suites (a shell command, a pytest path, an Ansible playbook) as ring checks.
"""

from hvpatch.adapters.checks.builtin import builtin_checks
from hvpatch.adapters.checks.suites import SuiteCheck, suite_checks

__all__ = ["SuiteCheck", "builtin_checks", "suite_checks"]
