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
