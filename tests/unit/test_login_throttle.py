"""The login throttle: failures per (client, user) and per client in a sliding window."""

from __future__ import annotations

import pytest

from hvpatch.api.limits import LoginThrottle
from hvpatch.errors import TooManyAttemptsError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_hold_back_that_user_from_that_client_until_the_window_passes() -> None:
    clock = Clock()
    t = LoginThrottle(per_user=5, per_client=30, window_s=600, clock=clock)
    for i in range(5):
        t.check("10.0.0.1", "Ada")
        t.failed("10.0.0.1", "ada" if i % 2 else "ADA")   # names compare without case
        clock.now += 10
    with pytest.raises(TooManyAttemptsError) as held:
        t.check("10.0.0.1", "ada")
    assert held.value.retry_after == 600 - 50   # until the first failure leaves the window
    t.check("10.0.0.2", "ada")       # another client
    t.check("10.0.0.1", "bob")       # another user
    clock.now = 1000.0 + 600.0       # the first failure is out of the window: 4 remain
    t.check("10.0.0.1", "ada")
    t.failed("10.0.0.1", "ada")
    with pytest.raises(TooManyAttemptsError):
        t.check("10.0.0.1", "ada")


def test_a_success_clears_the_user_but_not_the_client_count() -> None:
    clock = Clock()
    t = LoginThrottle(per_user=3, per_client=4, window_s=60, clock=clock)
    for _ in range(2):
        t.failed("c", "ada")
    t.succeeded("c", "ada")
    t.check("c", "ada")
    t.failed("c", "bob")
    t.failed("c", "eve")
    with pytest.raises(TooManyAttemptsError):   # 4 failures from c, whoever they were for
        t.check("c", "zed")
    clock.now += 61
    t.check("c", "zed")


def test_expired_keys_are_swept_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from hvpatch.api import limits
    monkeypatch.setattr(limits, "_SWEEP_AT", 10)
    clock = Clock()
    t = LoginThrottle(per_user=5, per_client=1000, window_s=60, clock=clock)
    for i in range(20):                 # twenty names tried once, long ago
        t.failed(f"10.0.0.{i}", f"user{i}")
    clock.now += 61
    t.failed("10.0.0.99", "ada")        # past the threshold: the expired ones go
    assert set(t._failures) == {("10.0.0.99", "ada"), ("10.0.0.99", "")}
