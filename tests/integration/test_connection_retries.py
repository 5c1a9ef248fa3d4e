"""A connector read that fails on the network is tried again with back-off; one that fails for
another reason (a refused login) is not; and a failed sync leaves the stored inventory as it
was."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from hvpatch.adapters.store.db import Store
from hvpatch.domain.generator import demo_fleet
from hvpatch.errors import DriverError
from hvpatch.services import connections
from hvpatch.services.connections import add_connection, sync
from hvpatch.services.inventory import store_counts


class Flaky:
    """An inventory source failing ``failures`` times with ``error``, then reading a fleet."""

    calls = 0

    def __init__(self, failures: int, error: type[BaseException] | None) -> None:
        self.failures, self.error = failures, error

    def __call__(self, _endpoint: Any) -> Flaky:
        return self

    def read(self) -> Any:
        Flaky.calls += 1
        if Flaky.calls <= self.failures:
            try:
                raise (self.error or RuntimeError)("connection refused by 127.0.0.1:1")
            except BaseException as exc:
                if self.error is None:
                    raise DriverError("login refused: wrong password") from None
                raise DriverError(f"cannot reach the platform: {exc}") from exc
        return demo_fleet(3)

    def close(self) -> None:
        pass


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(connections.time, "sleep", slept.append)
    Flaky.calls = 0
    return slept


def _store(sqlite_url: str) -> Store:
    store = Store(sqlite_url)
    add_connection(store, "lab", kind="libvirt", url="test:///default", actor="alice")
    return store


def test_network_failures_are_retried_with_backoff(sqlite_url: str, waits: list[float],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(sqlite_url)
    monkeypatch.setattr(connections, "inventory_source", Flaky(2, ConnectionRefusedError))
    summary, info = sync(store, "lab", actor="alice")
    assert waits == [2.0, 4.0] and Flaky.calls == 3
    assert summary.touched and info["counts"]["hosts"] == store_counts(store)["hosts"] > 0
    store.close()


def test_the_last_network_failure_is_reported_and_nothing_changes(
        sqlite_url: str, waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(sqlite_url)
    before = store_counts(store)
    monkeypatch.setattr(connections, "inventory_source", Flaky(9, socket.timeout))
    with pytest.raises(DriverError, match="cannot reach"):
        sync(store, "lab", actor="alice")
    assert waits == [2.0, 4.0] and Flaky.calls == 3
    assert store_counts(store) == before
    store.close()


def test_a_refused_login_is_not_retried(sqlite_url: str, waits: list[float],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(sqlite_url)
    monkeypatch.setattr(connections, "inventory_source", Flaky(1, None))
    with pytest.raises(DriverError, match="login refused"):
        sync(store, "lab", actor="alice")
    assert waits == [] and Flaky.calls == 1
    store.close()
