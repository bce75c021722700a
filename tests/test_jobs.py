"""app.jobs: jobs run in threads through one queue with a cap; a queued job shows its place and starts by itself."""

from __future__ import annotations

import threading

import pytest

from app.jobs import Job, JobQueue, job_slots


def _blocker(gate: threading.Event, started: list):
    def target(job):
        started.append(job.name)
        while not gate.is_set() and not job.should_stop:
            gate.wait(0.01)
        return job.name

    return target


def test_queue_caps_running_jobs_and_starts_the_next_by_itself():
    q = JobQueue(1)
    gate, started = threading.Event(), []
    a = Job(_blocker(gate, started), name="a", queue=q).start()
    b = Job(_blocker(gate, started), name="b", queue=q).start()
    c = Job(_blocker(gate, started), name="c", queue=q).start()
    for _ in range(200):
        if b.position() == 1 and c.position() == 2:
            break
        threading.Event().wait(0.01)
    assert started == ["a"] and b.status == "queued" and b.position() == 1 and c.position() == 2
    assert b.snapshot()["position"] == 1 and b.eta() is None and q.counts() == (1, 2)
    c.stop()  # a stop takes a waiting job out of the line: it never runs
    assert c.join(5) and c.status == "stopped" and "queue" in c.message
    gate.set()
    assert a.join(5) and b.join(5)
    assert started == ["a", "b"] and a.status == b.status == "done" and b.result == "b"
    assert q.counts() == (0, 0)


def test_failures_free_their_slot():
    q = JobQueue(1)

    def boom(job):
        raise RuntimeError("bad")

    a = Job(boom, queue=q).start()
    b = Job(lambda job: 42, queue=q).start()
    assert a.join(5) and b.join(5)
    assert a.status == "failed" and "RuntimeError: bad" in a.error and b.result == 42


def test_slots_from_cores_or_env(monkeypatch):
    monkeypatch.setenv("BTLAB_MAX_JOBS", "3")
    assert job_slots() == 3
    monkeypatch.setenv("BTLAB_MAX_JOBS", "")
    assert job_slots() >= 1


def test_measured_eta_is_used_when_the_worker_sets_it():
    gate, started = threading.Event(), []
    job = Job(_blocker(gate, started), queue=JobQueue(1)).start()
    job.update(progress=0.01, eta_s=12.5)
    assert job.eta() == 12.5
    gate.set()
    assert job.join(5)


def test_a_job_reports_only_its_declared_fields():
    job = Job(lambda j: None, name="declared")
    job.update(progress=0.5, message="half", eta_s=3.0, info={"any": "record"})
    assert (job.progress, job.message, job.eta_s, job.info) == (0.5, "half", 3.0, {"any": "record"})
    with pytest.raises(TypeError, match="undeclared field.*chance"):
        job.update(chance=0.25)
    assert not hasattr(job, "chance")
    with pytest.raises(TypeError, match="status"):
        job.update(status="done")  # the lifecycle is the job's own


# -- shared jobs --------------------------------------------------------------------------------
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from app.jobs import SharedJobs, job_key  # noqa: E402


@dataclass(frozen=True)
class _Inputs:
    modes: tuple
    seed: int
    rate: float = 0.1


def test_job_key_is_stable_and_names_every_value():
    a = job_key({"spec": _Inputs((4, 4), 0), "W": np.arange(6.0).reshape(2, 3)})
    assert a == job_key({"W": np.arange(6.0).reshape(2, 3), "spec": _Inputs((4, 4), 0)})  # order of keys
    assert len(a) == 64 and int(a, 16) >= 0
    others = [{"spec": _Inputs((4, 4), 1), "W": np.arange(6.0).reshape(2, 3)},
              {"spec": _Inputs((4, 4), 0, 0.2), "W": np.arange(6.0).reshape(2, 3)},
              {"spec": _Inputs((4, 4), 0), "W": np.arange(6.0).reshape(3, 2)},  # same bytes, other shape
              {"spec": _Inputs((4, 4), 0), "W": np.arange(6.0, dtype=np.float32).reshape(2, 3)}]
    assert len({a} | {job_key(o) for o in others}) == 5
    with pytest.raises(TypeError, match="cannot write"):
        job_key({"f": lambda: 0})


def _counting(gate, runs):
    def target(job):
        runs.append(1)
        for i in range(3):
            while not gate.is_set() and not job.should_stop:
                gate.wait(0.01)
            job.append({"step": i})
            job.update(progress=(i + 1) / 3)
        return ("result", len(runs)) if not job.should_stop else None

    return target


def _wait(cond, s=5.0):
    for _ in range(int(s / 0.01)):
        if cond():
            return True
        threading.Event().wait(0.01)
    return cond()


def test_identical_jobs_run_once_join_live_and_get_the_stored_result():
    hub, gate, runs = SharedJobs(keep=2, queue=JobQueue(4)), threading.Event(), []
    views = [hub.follow("k", _counting(gate, runs), "fit", None) for _ in range(3)]
    assert [v.share for v in views] == ["new", "joined", "joined"]
    assert _wait(lambda: all(v.status == "running" for v in views))
    assert views[0].shared_with() == 2 and hub.counts() == (1, 0)
    gate.set()
    assert all(v.join(5) for v in views)
    assert runs == [1]  # one worker for three sessions
    assert all(v.status == "done" and v.result == ("result", 1) and v.events == [{"step": i} for i in range(3)]
               for v in views)
    late = hub.follow("k", _counting(gate, runs), "fit", None)
    assert late.join(5) and late.share == "stored" and late.result == ("result", 1) and runs == [1]
    assert late.started_at == views[0].started_at and len(late.events) == 3  # the stored run, as it ran
    other = hub.follow("k2", _counting(gate, runs), "fit", None)
    assert other.join(5) and other.share == "new" and runs == [1, 1]
    hub.follow("k3", _counting(gate, runs), "fit", None).join(5)  # keep=2: "k" is the least recently used
    assert hub.counts() == (0, 2) and hub.follow("k", _counting(gate, runs), "fit", None).share == "new"


def test_stop_ends_one_view_and_the_worker_only_with_the_last():
    hub, gate, runs = SharedJobs(queue=JobQueue(4)), threading.Event(), []
    a = hub.follow("k", _counting(gate, runs), "train", None)
    b = hub.follow("k", _counting(gate, runs), "train", None)
    assert _wait(lambda: a.status == b.status == "running")
    a.stop()
    assert a.join(5) and a.status == "stopped" and "other sessions" in a.message
    assert b.running and b.source.running and not b.source.should_stop  # b's run goes on
    b.stop()  # the last watcher: the worker stops, and b shows how it ended
    assert b.join(5) and b.source.should_stop and b.status == "stopped" and b.result is None
    assert hub.counts() == (0, 0)  # a stopped run is not stored
    c = hub.follow("k", _counting(gate, runs), "train", None)
    assert c.share == "new" and runs == [1, 1]
    c.stop()
    c.join(5)


def test_share_note_says_how_a_session_got_its_job():
    from app.jobs import share_note

    hub, gate, runs = SharedJobs(queue=JobQueue(4)), threading.Event(), []
    a = hub.follow("k", _counting(gate, runs), "fit", None)
    b = hub.follow("k", _counting(gate, runs), "fit", None)
    assert _wait(lambda: a.status == b.status == "running")
    assert share_note(a) == "This run is shared with 1 other session: identical inputs, computed once."
    assert share_note(b).startswith("Joined the identical run") and "shared with 1 other session" in share_note(b)
    gate.set()
    a.join(5), b.join(5)
    c = hub.follow("k", _counting(gate, runs), "fit", None)
    c.join(5)
    import time as _t
    assert share_note(c).startswith(f"From the result computed at {_t.strftime('%H:%M', _t.localtime(a.finished_at))}")
    assert share_note(Job(lambda j: 0)) is None and share_note(None) is None


def test_twenty_sessions_submitting_the_same_job_at_once_run_one_worker():
    hub, gate, calls = SharedJobs(queue=JobQueue(1)), threading.Event(), []
    barrier, views, lock = threading.Barrier(20), [None] * 20, threading.Lock()

    def target(job):
        with lock:
            calls.append(threading.get_ident())
        gate.wait(10)
        job.append({"step": 0})
        return "result"

    def session(i):
        barrier.wait()  # all twenty submit together
        views[i] = hub.follow(job_key(("race", 1, 2.0)), target, "train", None)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert _wait(lambda: len(calls) == 1)
    gate.set()
    assert all(v.join(10) for v in views)
    assert len(calls) == 1  # exactly one worker ran
    assert sorted(v.share for v in views) == ["joined"] * 19 + ["new"]
    assert len({id(v.source) for v in views}) == 1
    assert all(v.status == "done" and v.result == "result" and v.events == [{"step": 0}] for v in views)


def test_a_session_starting_the_same_inputs_again_keeps_the_one_worker(monkeypatch):
    from app.jobs import start_job

    hub, gate, runs, registry = SharedJobs(queue=JobQueue(2)), threading.Event(), [], {}
    plain_stop = Job.stop

    def stop_and_wait(self):  # the worst scheduling: the stopped view has left before the caller goes on
        plain_stop(self)
        if self.source is not None:
            self.join(5)

    monkeypatch.setattr(Job, "stop", stop_and_wait)
    first = start_job("train", _counting(gate, runs), share=("race", 1), jobs=registry, hub=hub)
    assert _wait(lambda: first.status == "running")
    again = start_job("train", _counting(gate, runs), share=("race", 1), jobs=registry, hub=hub)  # pressed twice
    assert first.status == "stopped" and registry["train"] is again
    assert again.source is first.source and not first.source.should_stop
    gate.set()
    assert again.join(5) and again.status == "done" and runs == [1]  # one race, not a stopped one and a second
