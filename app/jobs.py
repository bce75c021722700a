"""Background jobs for the app: long fits and training runs in a worker thread.

The worker never calls ``st.*``: it reads its stop flag and writes progress, events and its result
into the job under a lock. Pages keep jobs in a session-scoped registry (released, and the workers
stopped, when the browser session ends) and poll them from a fragment with ``run_every``.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

import streamlit as st

__all__ = ["Job", "session_jobs", "start_job", "get_job", "stop_all"]


class Job:
    """A function run in a daemon thread with a stop flag and lock-guarded progress.

    ``target(job)`` does the work; it should call :meth:`update` / :meth:`append` to report and
    check :attr:`should_stop` often. Its return value becomes :attr:`result`; an exception is kept
    in :attr:`error` (as text, with the traceback in :attr:`error_detail`), never raised into a page.
    """

    def __init__(self, target: Callable[["Job"], Any], *, name: str = "job"):
        self.name = name
        self._target = target
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"btlab-{name}", daemon=True)
        self.status = "pending"  # pending, running, done, stopped, failed
        self.progress = 0.0
        self.message = ""
        self.events: list[dict] = []
        self.result: Any = None
        self.error: str | None = None
        self.error_detail: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    # -- worker side -------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            result = self._target(self)
        except Exception as exc:  # reported to the page, which shows st.error
            with self._lock:
                self.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
                self.error_detail = traceback.format_exc()
                self.status = "failed"
        else:
            with self._lock:
                self.result = result
                self.status = "stopped" if self._stop.is_set() else "done"
                if self.status == "done":
                    self.progress = 1.0
        finally:
            with self._lock:
                self.finished_at = time.time()

    @property
    def should_stop(self) -> bool:
        return self._stop.is_set()

    def update(self, **fields) -> None:
        """Set ``progress`` (0..1), ``message`` or other attributes, atomically."""
        with self._lock:
            for k, v in fields.items():
                setattr(self, k, v)

    def append(self, event: dict) -> None:
        """Add one event (e.g. a metrics row) to :attr:`events`."""
        with self._lock:
            self.events.append(dict(event))

    # -- page side ---------------------------------------------------------------------------
    def start(self) -> "Job":
        with self._lock:
            self.status = "running"
            self.started_at = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has finished."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    def eta(self) -> float | None:
        """Seconds left, extrapolated from progress so far (None before any progress)."""
        p = self.progress
        if not self.running or p <= 0:
            return None
        return self.elapsed * (1 - p) / p

    def snapshot(self) -> dict:
        """A consistent copy of the job's state for drawing."""
        with self._lock:
            return {
                "name": self.name, "status": self.status, "progress": self.progress, "message": self.message,
                "events": list(self.events), "result": self.result, "error": self.error,
                "elapsed": self.elapsed,
            }


def stop_all(jobs: dict) -> None:
    """Stop every job in a registry (the session-release hook)."""
    for job in list(jobs.values()):
        job.stop()


@st.cache_resource(scope="session", on_release=stop_all, show_spinner=False)
def session_jobs() -> dict:
    """The current browser session's job registry; its workers stop when the session is released."""
    return {}


def get_job(key: str) -> Job | None:
    return session_jobs().get(key)


def start_job(key: str, target: Callable[[Job], Any], *, name: str | None = None) -> Job:
    """Stop any job under ``key`` and start ``target`` as a new one."""
    jobs = session_jobs()
    old = jobs.get(key)
    if old is not None:
        old.stop()
    job = Job(target, name=name or key)
    jobs[key] = job
    return job.start()
