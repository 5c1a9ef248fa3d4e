"""Where the API's long-running work runs: worker threads of the server process.

Each job runs in a thread of a small pool (:func:`hvpatch.services.jobs.run_job` records its
state). A rollout is driven by :func:`hvpatch.orchestration.runner.drive` on an event loop of its
own in a worker thread, so the engine's store calls never block the server's loop. Stopping the
server cancels the engines it drives: the engine cleans up and leaves the rollout paused (as a
crash would, without the wait), to be resumed later; jobs that did not finish are marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from hvpatch.adapters.store.db import Store
from hvpatch.errors import HvpatchError
from hvpatch.orchestration.runner import drive
from hvpatch.services.jobs import (
    Progress,
    create_job,
    fail_orphans,
    fail_unfinished,
    get_job,
    new_worker,
    run_job,
)

__all__ = ["Background"]

log = logging.getLogger("hvpatch.api")
Work = Callable[[Progress], Mapping[str, Any]]
#: events of the engine that are always written to the job's progress (others at most 2/s)
_ALWAYS = ("ring", "gate", "rollout", "stop")


class Background:
    """The job pool of one server."""

    def __init__(self, store: Store, workers: int = 4) -> None:
        self.store = store
        self.worker = new_worker()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hvpatch-job")
        self._lock = threading.Lock()
        self._engines: dict[object, tuple[asyncio.AbstractEventLoop, asyncio.Task[str]]] = {}
        self._futures: dict[int, Future[str]] = {}
        self._closed = False

    def start(self) -> None:
        """At server start: fail the jobs of server processes of this machine that died."""
        orphans = fail_orphans(self.store)
        if orphans:
            log.warning("%d jobs of a stopped server were marked failed", orphans)

    def submit(self, kind: str, actor: str, params: Mapping[str, Any], work: Work
               ) -> dict[str, Any]:
        """Queue ``work`` as a job of ``actor``; returns the job (state queued)."""
        if self._closed:
            raise HvpatchError("the server is stopping; try again once it is back")
        job_id = create_job(self.store, kind, actor=actor, params=params, worker=self.worker)
        job = get_job(self.store, job_id)
        future = self._pool.submit(run_job, self.store, job_id, work)
        with self._lock:
            self._futures[job_id] = future
        future.add_done_callback(lambda _f: self._forget(job_id))
        return job

    def _forget(self, job_id: int) -> None:
        with self._lock:
            self._futures.pop(job_id, None)

    def drive(self, rollout: str, actor: str, reason: str) -> dict[str, Any]:
        """Drive ``rollout`` in the background (start, resume, or clean up after an abort)."""

        def work(progress: Progress) -> Mapping[str, Any]:
            return {"rollout": rollout, "state": self._run_engine(rollout, progress)}

        return self.submit("rollout.drive", actor, {"rollout": rollout, "reason": reason}, work)

    def _run_engine(self, rollout: str, progress: Progress) -> str:
        events = {"count": 0}
        last = [0.0]

        def on_event(kind: str, data: Mapping[str, Any]) -> None:
            events["count"] += 1
            now = time.monotonic()
            if kind in _ALWAYS or now - last[0] >= 0.5:
                last[0] = now
                progress({"rollout": rollout, "events": events["count"],
                          "last": {"kind": kind, **data}})

        loop = asyncio.new_event_loop()
        key = object()
        try:
            task = loop.create_task(drive(self.store, rollout, on_event=on_event,
                                          heartbeat_s=0.5))
            with self._lock:
                if self._closed:
                    task.cancel()
                self._engines[key] = (loop, task)
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                raise HvpatchError(f"the server stopped while driving {rollout}; the engine "
                                   "cleaned up and paused it: resume it") from None
        finally:
            with self._lock:
                self._engines.pop(key, None)
            loop.close()

    def close(self) -> None:
        """Stop: cancel the engines driven here, wait for the other jobs, fail what is left."""
        with self._lock:
            self._closed = True
            engines = list(self._engines.values())
            futures = list(self._futures.values())
        for loop, task in engines:
            with contextlib.suppress(RuntimeError):  # its loop just ended
                loop.call_soon_threadsafe(task.cancel)
        for future in futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        fail_unfinished(self.store, self.worker)
