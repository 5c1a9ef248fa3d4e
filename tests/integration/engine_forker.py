"""A process that forks rollout engines on request, for the crash-resume test to ``kill -9``.

Run as ``python engine_forker.py DB_URL ROLLOUT``. It imports hvpatch once, prints ``ready``,
then reads commands on stdin, one per line:

``run``
    fork a child that drives the rollout exactly as ``hvpatch rollout resume`` does
    (:func:`hvpatch.orchestration.runner.drive`) and answer ``pid N``. The child writes
    ``step HOST STEP`` for every step it starts and ``done STATE`` when the engine returns.
``reap N``
    wait for child ``N`` and answer ``exit N STATUS`` (the raw :func:`os.waitpid` status).

Forking from a process that already imported everything makes each engine start in
milliseconds instead of the interpreter's seconds, so the test can afford dozens of kills; the
children are real processes with their own database connections, killed with SIGKILL like any
engine would be. The forker itself opens no database connection, so no child inherits one.
Every line is written with a single ``os.write`` (atomic on a pipe), so lines of the forker
and of its children never interleave.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

from hvpatch.adapters.store.db import Store
from hvpatch.orchestration.runner import drive


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def child(url: str, name: str) -> None:
    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if kind == "step":
            say(f"step {data['host'] or '-'} {data['step']}")

    try:
        store = Store(url)
        state = asyncio.run(drive(store, name, on_event=on_event, heartbeat_s=0.2))
        store.close()
        say(f"done {state}")
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        say(f"error {type(exc).__name__}: {exc!r}".replace("\n", " "))
        code = 1
    os._exit(code)


def main() -> None:
    url, name = sys.argv[1], sys.argv[2]
    say("ready")
    while line := sys.stdin.readline():
        cmd = line.split()
        if cmd == ["run"]:
            pid = os.fork()
            if pid == 0:
                child(url, name)
            say(f"pid {pid}")
        elif len(cmd) == 2 and cmd[0] == "reap":
            _, status = os.waitpid(int(cmd[1]), 0)
            say(f"exit {cmd[1]} {status}")
        else:
            say(f"unknown command {line.strip()!r}")


if __name__ == "__main__":
    main()
