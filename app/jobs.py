"""Background jobs for the app: long fits and training runs in a worker thread, through one queue.

The worker never calls ``st.*``: it reads its stop flag and writes progress, events and its result
into the job under a lock. Pages keep jobs in a session-scoped registry (released, and the workers
stopped, when the browser session ends) and poll them from a fragment with ``run_every``.

One server serves many sessions, and every job is CPU-bound: jobs of all sessions (training and the
Approximation page's fits) go through one process-wide first-come-first-served queue
(:data:`QUEUE`) that lets at most :func:`job_slots` of them run at once (half the cores, at least 1;
``BTLAB_MAX_JOBS`` overrides). A queued job has status "queued" and a :meth:`Job.position`; it starts
by itself when a slot frees, and a stop (or the end of its session) takes it out of the line.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

__all__ = ["Job", "JobQueue", "QUEUE", "job_slots", "session_jobs", "start_job", "get_job", "stop_all"]


def job_slots() -> int:
    """How many jobs may run at once: ``$BTLAB_MAX_JOBS``, else half the usable cores (at least 1)."""
    env = os.environ.get("BTLAB_MAX_JOBS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


class JobQueue:
    """First come, first served, at most ``slots`` jobs running; waiting jobs block in :meth:`acquire`."""

    def __init__(self, slots: int):
        self.slots = max(1, int(slots))
        self._cond = threading.Condition()
        self._waiting: list = []
        self._running: set = set()

    def acquire(self, job: "Job") -> bool:
        """Wait for ``job``'s turn; True when it may run, False when it was stopped while waiting."""
        with self._cond:
            self._waiting.append(job)
            try:
                while not (len(self._running) < self.slots and self._waiting[0] is job):
                    if job.should_stop:
                        return False
                    self._cond.wait(0.2)  # also wakes to see a stop
                self._running.add(job)
                return True
            finally:
                self._waiting.remove(job)
                self._cond.notify_all()

    def release(self, job: "Job") -> None:
        with self._cond:
            self._running.discard(job)
            self._cond.notify_all()

    def position(self, job: "Job") -> int | None:
        """1 for the next job to start, 2 after it, ...; None when ``job`` is not waiting."""
        with self._cond:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    def counts(self) -> tuple[int, int]:
        """``(running, waiting)``."""
        with self._cond:
            return len(self._running), len(self._waiting)


#: The one queue of this server process.
QUEUE = JobQueue(job_slots())


@dataclass(eq=False)
class Job:
    """A function run in a daemon thread with a stop flag and lock-guarded progress.

    ``target(job)`` does the work; it should call :meth:`update` / :meth:`append` to report and
    check :attr:`should_stop` often. Its return value becomes :attr:`result`; an exception is kept
    in :attr:`error` (as text, with the traceback in :attr:`error_detail`), never raised into a page.
    Every field a worker or a page may set is declared here; :meth:`update` refuses any other.
    """

    target: Callable[["Job"], Any]
    name: str = "job"
    queue: JobQueue | None = None
    status: str = field(default="pending", init=False)  # pending, queued, running, done, stopped, failed
    queued_at: float | None = field(default=None, init=False)
    progress: float = field(default=0.0, init=False)
    message: str = field(default="", init=False)
    #: Seconds left as the worker measured them (it knows its step times); None: extrapolate.
    eta_s: float | None = field(default=None, init=False)
    #: What the worker knows about its work beyond progress (a record of the page that started it).
    info: Any = None
    events: list = field(default_factory=list, init=False)
    result: Any = field(default=None, init=False)
    error: str | None = field(default=None, init=False)
    error_detail: str | None = field(default=None, init=False)
    started_at: float | None = field(default=None, init=False)
    finished_at: float | None = field(default=None, init=False)

    #: The fields :meth:`update` may set (the rest belong to the job's lifecycle).
    REPORTED = ("progress", "message", "eta_s", "info")

    def __post_init__(self) -> None:
        self.queue = QUEUE if self.queue is None else self.queue
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"btlab-{self.name}", daemon=True)

    # -- worker side -------------------------------------------------------------------------
    def _main(self) -> None:
        if not self.queue.acquire(self):
            with self._lock:
                self.status, self.message, self.finished_at = "stopped", "stopped while waiting in the queue", time.time()
            return
        with self._lock:
            self.status, self.started_at = "running", time.time()  # the clock starts when the work does
        try:
            result = self.target(self)
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
            self.queue.release(self)
            with self._lock:
                self.finished_at = time.time()

    @property
    def should_stop(self) -> bool:
        return self._stop.is_set()

    def update(self, **fields) -> None:
        """Set ``progress`` (0..1), ``message``, ``eta_s`` or ``info``, atomically.

        Raises
        ------
        TypeError
            For any other name: a job's fields are declared, not invented by its worker.
        """
        unknown = sorted(set(fields) - set(self.REPORTED))
        if unknown:
            raise TypeError(f"Job.update() got undeclared field(s) {', '.join(unknown)}; "
                            f"a worker reports {', '.join(self.REPORTED)}")
        with self._lock:
            for k, v in fields.items():
                setattr(self, k, v)

    def append(self, event: dict) -> None:
        """Add one event (e.g. a metrics row) to :attr:`events`."""
        with self._lock:
            self.events.append(dict(event))

    # -- page side ---------------------------------------------------------------------------
    def start(self) -> "Job":
        """Queue the job; it runs when the queue gives it a slot (at once when one is free)."""
        with self._lock:
            self.status = "queued"
            self.queued_at = time.time()
        self._thread.start()
        return self

    def position(self) -> int | None:
        """The job's place in the queue (1: next), or None when it is not waiting."""
        return self.queue.position(self)

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
        measured = self.eta_s
        if self.running and isinstance(measured, (int, float)):
            return max(0.0, float(measured))
        p = self.progress
        if not self.running or p <= 0 or self.status != "running":
            return None
        return self.elapsed * (1 - p) / p

    def snapshot(self) -> dict:
        """A consistent copy of the job's state for drawing."""
        with self._lock:
            return {
                "name": self.name, "status": self.status, "progress": self.progress, "message": self.message,
                "events": list(self.events), "result": self.result, "error": self.error,
                "elapsed": self.elapsed, "position": self.queue.position(self) if self.status == "queued" else None,
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


def start_job(key: str, target: Callable[[Job], Any], *, name: str | None = None, info: Any = None) -> Job:
    """Stop any job under ``key`` and start ``target`` as a new one (``info``: its :attr:`Job.info` at start)."""
    jobs = session_jobs()
    old = jobs.get(key)
    if old is not None:
        old.stop()
    job = Job(target, name=name or key, info=info)
    jobs[key] = job
    return job.start()
