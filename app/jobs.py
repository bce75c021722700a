"""Background jobs for the app: long fits and training runs in a worker thread, through one queue.

The worker never calls ``st.*``: it reads its stop flag and writes progress, events and its result
into the job under a lock. Pages keep jobs in a session-scoped registry (released, and the workers
stopped, when the browser session ends) and poll them from a fragment with ``run_every``.

One server serves many sessions, and every job is CPU-bound: jobs of all sessions (training and the
Approximation page's fits) go through one process-wide first-come-first-served queue
(:data:`QUEUE`) that lets at most :func:`job_slots` of them run at once (half the cores, at least 1;
``BTLAB_MAX_JOBS`` overrides). A queued job has status "queued" and a :meth:`Job.position`; it starts
by itself when a slot frees, and a stop (or the end of its session) takes it out of the line.

Identical jobs are computed once (:data:`SHARED`). Fits and training runs are reproducible by
construction (same inputs and seed give bit-identical results), so when sessions launch a job with
the same inputs (``start_job(..., share=inputs)``; the key is :func:`job_key`, a SHA-256 of the inputs
written as canonical JSON) one worker runs and every session follows it through its own *view*
(a :class:`Job` whose :attr:`Job.source` is the shared one): the view mirrors the worker's progress,
events and result. A session arriving later joins the running job live, or gets the stored result
when it finished (the last :data:`KEEP_RESULTS` finished jobs of this server process are kept).
Stop (or the end of a session) ends only that session's view; the shared worker stops when the
last view following it stops.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Callable

import numpy as np
import streamlit as st

__all__ = ["Job", "JobQueue", "QUEUE", "job_slots", "session_jobs", "start_job", "get_job", "stop_all",
           "job_key", "SharedJobs", "SHARED", "KEEP_RESULTS", "share_note"]


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
#: Views of shared jobs take no slot (their worker has one): a queue they never wait in.
_UNQUEUED = JobQueue(1 << 30)


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
    #: The shared job this one is a view of (None: it runs ``target`` itself).
    source: "Job | None" = None
    #: How a view got its job: "new" (this session started it), "joined" (it was running) or
    #: "stored" (it had finished; the result is the stored one). None for a job that is not shared.
    share: str | None = None
    #: The shared worker's key (:func:`job_key`), on the worker itself.
    share_key: str | None = None
    #: The :class:`SharedJobs` a shared worker or a view belongs to.
    hub: "SharedJobs | None" = None

    #: The fields :meth:`update` may set (the rest belong to the job's lifecycle).
    REPORTED = ("progress", "message", "eta_s", "info")

    def __post_init__(self) -> None:
        self.queue = QUEUE if self.queue is None else self.queue
        self._lock = threading.Lock()
        self._stop = threading.Event()
        run = self._main if self.source is None else self._follow
        self._thread = threading.Thread(target=run, name=f"btlab-{self.name}", daemon=True)

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
            if self.hub is not None:
                self.hub.finished(self)

    #: What a view copies from its source, and how often it looks (s).
    MIRRORED = ("status", "queued_at", "progress", "message", "eta_s", "info", "result", "error", "error_detail",
                "started_at", "finished_at")
    FOLLOW_S = 0.05

    def _mirror(self, seen: int) -> tuple[int, bool]:
        """Copy the source's state and its new events; ``(events seen, source finished)``."""
        src = self.source
        with src._lock:
            state = {k: getattr(src, k) for k in self.MIRRORED}
            new = src.events[seen:]
            done = state["finished_at"] is not None
        with self._lock:
            for k, v in state.items():
                setattr(self, k, v)
            self.events.extend(new)
        return seen + len(new), done

    def _follow(self) -> None:
        """A view's thread: mirror the shared job until it ends, or until this view is stopped."""
        seen, done = self._mirror(0)
        while not done:
            if self._stop.is_set():
                if self.hub.leave(self.source) > 0:  # others still watch: the worker goes on for them
                    with self._lock:
                        self.status, self.finished_at = "stopped", time.time()
                        self.message = "stopped following this run here; it goes on for the other sessions"
                    return
                self.source.join()  # the last one: the worker stops; show how it ended
            time.sleep(self.FOLLOW_S)
            seen, done = self._mirror(seen)
        if self.share != "stored" and not self._stop.is_set():
            self.hub.leave(self.source)

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
        return self.queue.position(self if self.source is None else self.source)

    def shared_with(self) -> int:
        """How many other sessions follow the same shared job now (0 when not shared)."""
        return 0 if self.source is None else max(0, self.hub.watchers(self.source) - (1 if self.running else 0))

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
                "elapsed": self.elapsed, "position": self.position() if self.status == "queued" else None,
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


def start_job(key: str, target: Callable[[Job], Any], *, name: str | None = None, info: Any = None,
              share: Any = None, jobs: dict | None = None, hub: "SharedJobs | None" = None) -> Job:
    """Stop any job under ``key`` and start ``target`` as a new one (``info``: its :attr:`Job.info` at start).

    ``share``: the job's full inputs (anything :func:`job_key` can write). When given, the job is
    shared with every session that starts the same inputs (``hub``, default :data:`SHARED`): this
    session gets a view that follows one worker, started now, already running, or finished and
    stored. The new view follows before the old one under ``key`` stops, so a session that starts
    the same inputs again (a double click, a rerun that sees the press twice) keeps the one worker
    instead of stopping it as its last watcher. ``jobs``: the registry (default: this session's).
    """
    jobs = session_jobs() if jobs is None else jobs
    old = jobs.get(key)
    name = name or key
    if share is None:
        if old is not None:
            old.stop()
        job = Job(target, name=name, info=info)
    else:
        job = (SHARED if hub is None else hub).follow(job_key(share), target, name, info)
        if old is not None:
            old.stop()
    jobs[key] = job
    return job if job.status != "pending" else job.start()


# -- identical jobs, computed once ------------------------------------------------------------------
def _canonical(x: Any) -> Any:
    """``x`` as JSON-able data that names every value it holds (so equal inputs give equal text)."""
    if x is None or isinstance(x, (bool, str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    if isinstance(x, enum.Enum):
        return {"enum": type(x).__qualname__, "value": _canonical(x.value)}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {"type": type(x).__qualname__,
                **{f.name: _canonical(getattr(x, f.name)) for f in dataclasses.fields(x)}}
    if isinstance(x, dict):
        return {"dict": sorted(([json.dumps(_canonical(k), sort_keys=True), _canonical(v)] for k, v in x.items()))}
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return {"set": sorted(json.dumps(_canonical(v), sort_keys=True) for v in x)}
    if isinstance(x, PurePath):
        return {"path": str(x)}
    if isinstance(x, np.generic):
        return _canonical(x.item())
    if isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        return {"array": hashlib.sha256(a.tobytes()).hexdigest(), "shape": list(a.shape), "dtype": str(a.dtype)}
    raise TypeError(f"job_key cannot write a {type(x).__name__} ({x!r:.60}); give the job's inputs as data")


def job_key(inputs: Any) -> str:
    """A stable key of a job's full inputs: SHA-256 of their canonical JSON (dataclasses by field,
    dicts by sorted key, arrays by their bytes' SHA-256, shape and dtype).

    The same inputs give the same key in every session and server process; any difference in any
    value gives another. Raises TypeError for a value it cannot write (never a key that ignores it).
    """
    text = json.dumps(_canonical(inputs), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


#: How many finished shared jobs a server process keeps (least recently used dropped first).
KEEP_RESULTS = 32


class SharedJobs:
    """The shared jobs of this server process: running ones by key (with how many views follow each)
    and the last ``keep`` finished ones (status "done"; stopped or failed jobs are not kept)."""

    def __init__(self, keep: int = KEEP_RESULTS, queue: JobQueue | None = None):
        self.keep = int(keep)
        self.queue = queue
        self._lock = threading.Lock()
        self._live: dict[str, Job] = {}
        self._watchers: dict[int, int] = {}  # id(worker) -> views following it
        self._done: OrderedDict[str, Job] = OrderedDict()

    def follow(self, key: str, target: Callable[[Job], Any], name: str, info: Any) -> Job:
        """A started view of the job ``key``: the stored result, the running job, or a new worker.

        Thread-safe: sessions calling it at once for the same ``key`` get one worker (the first
        creates and starts it under the lock; the others join it).
        """
        with self._lock:
            src, how = self._done.get(key), "stored"
            if src is not None:
                self._done.move_to_end(key)
            elif (live := self._live.get(key)) is not None and live.status == "done":
                src = live  # finished a moment ago, not yet filed among the stored results
            else:
                src, how = live, "joined"
                if src is None or src.should_stop:  # a stopped worker winding down is not joined
                    src, how = Job(target, name=name, queue=self.queue, info=info, share_key=key, hub=self), "new"
                    self._live[key] = src
                    src.start()
                self._watchers[id(src)] = self._watchers.get(id(src), 0) + 1
        return Job(None, name=name, queue=_UNQUEUED, info=info, source=src, share=how, hub=self).start()

    def leave(self, src: Job) -> int:
        """One view stops following ``src``; the last one stops it. Returns how many still follow.

        The stop happens under the same lock as :meth:`follow`: a session joining at that moment
        either counts as a watcher first (and the worker goes on) or sees the stop and starts anew,
        never joins a worker that is about to be stopped.
        """
        with self._lock:
            left = max(0, self._watchers.get(id(src), 0) - 1)
            if left:
                self._watchers[id(src)] = left
            else:
                self._watchers.pop(id(src), None)
                src.stop()
        return left

    def watchers(self, src: Job) -> int:
        with self._lock:
            return self._watchers.get(id(src), 0)

    def finished(self, src: Job) -> None:
        """The worker ``src`` ended: keep it when it is done, forget it as a running job."""
        with self._lock:
            if self._live.get(src.share_key) is src:
                del self._live[src.share_key]
            if src.status == "done":
                self._done[src.share_key] = src
                self._done.move_to_end(src.share_key)
                while len(self._done) > self.keep:
                    self._done.popitem(last=False)

    def counts(self) -> tuple[int, int]:
        """``(running, stored)`` shared jobs."""
        with self._lock:
            return len(self._live), len(self._done)

    def clear(self) -> None:
        """Forget the stored results (running jobs go on)."""
        with self._lock:
            self._done.clear()


#: The shared jobs of this server process.
SHARED = SharedJobs()


def _clock(t: float | None) -> str:
    return time.strftime("%H:%M", time.localtime(t)) if t else "?"


def share_note(job: Job | None) -> str | None:
    """What a page says about a shared job: joined, shared with others, or the stored result (None: not shared)."""
    if job is None or job.source is None:
        return None
    if job.share == "stored":
        return (f"From the result computed at {_clock(job.finished_at)}: another session ran these exact inputs "
                "on this server; the result is identical, so nothing was recomputed.")
    n = job.shared_with()
    others = f"shared with {n} other session{'s' if n != 1 else ''}"
    if job.share == "joined":
        return (f"Joined the identical run another session started at {_clock(job.started_at or job.queued_at)}"
                + (f"; {others}" if n and job.running else "") + ": computed once, results identical.")
    return f"This run is {others}: identical inputs, computed once." if n and job.running else None
