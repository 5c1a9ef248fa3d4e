"""The rollout policy: defaults, validation naming every bad field, back-off, round trip."""

from __future__ import annotations

import pytest

from hvpatch.domain.rollout import (
    DEFAULT_ROLLOUT_POLICY,
    RolloutPolicy,
    backoff_seconds,
    rollout_policy_from_dict,
)
from hvpatch.errors import InputError


def test_defaults_and_round_trip() -> None:
    assert rollout_policy_from_dict(None) == DEFAULT_ROLLOUT_POLICY
    p = rollout_policy_from_dict({"max_retries_per_host": 1, "pause_on_first_failure": [],
                                  "suites": [{"name": "s", "kind": "pytest", "run": "t/x.py",
                                              "rings": ["test"]}]})
    assert p.max_retries_per_host == 1 and p.pause_on_first_failure == ()
    assert p.suites[0].applies_to("test") and not p.suites[0].applies_to("prod")
    assert rollout_policy_from_dict(p.to_dict()) == p


def test_every_bad_field_is_named() -> None:
    with pytest.raises(InputError) as err:
        rollout_policy_from_dict({"max_retries_per_host": -1, "retry_backoff_s": "soon",
                                  "checks": ["reachable", "telepathy"], "colour": "blue",
                                  "suites": [{"name": "x", "kind": "bash"}],
                                  "rollback_on_failure": "yes"})
    where = " ".join(p.location for p in err.value.problems)
    for field in ("max_retries_per_host", "retry_backoff_s", "checks", "colour",
                  "suites[0].kind", "suites[0].run", "rollback_on_failure"):
        assert field in where, field
    assert "telepathy" in str(err.value)


def test_backoff_doubles_is_capped_and_honours_the_hint() -> None:
    p = RolloutPolicy(retry_backoff_s=10, retry_backoff_max_s=35)
    assert [backoff_seconds(p, n) for n in (1, 2, 3, 4)] == [10, 20, 35, 35]
    assert backoff_seconds(p, 1, hinted=60) == 60
