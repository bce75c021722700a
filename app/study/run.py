"""The Format study's background job: the data, the study's runs one after another, progress and a stop.

The worker is pure btcore (no ``st.*``): it builds the task's data, runs
:func:`btcore.train.study.run_study` and reports through the job: ``progress`` (runs done / total),
a message, and the trainer's ``start`` / ``end`` events (the live table). With the study's own
dense model to compress, the dense run goes first and the rest of the study compresses it
(:func:`btcore.train.study.merge_study` joins the two parts in job order). A stop keeps the runs
that finished. The page's session values (the job, the upload, the estimate) live in :data:`STATE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.jobs import start_job
from app.state import SessionState
from btcore.train.study import merge_study, run_study

from .inputs import FROM_STUDY, K
from .plan import StudyPlan

__all__ = ["JOB_KEY", "STATE", "StudyInfo", "make_target", "next_step", "launch", "ended_since_launch",
           "live_rows", "progress_text", "ENDS"]

#: The session's study job (it keeps running while the user visits other pages).
JOB_KEY = "study"
#: The study page's session values beyond its inputs (under the page's key prefix).
STATE = SessionState(K)
#: The trainer's events the page keeps (the per-step ones would only grow the job's memory).
KEPT_EVENTS = ("start", "end")


@dataclass(frozen=True)
class StudyInfo:
    """What a study job knows beyond its progress (its :attr:`~app.jobs.Job.info`)."""

    made_with: dict = field(default_factory=dict)  # the page's inputs (URL text) when it started
    total: int = 0  # the study's runs
    data: str = ""
    metric: str = "val_acc"  # the task's metric key


def make_target(plan: StudyPlan):
    """A pure-btcore worker for ``plan``: returns the :class:`~btcore.train.study.StudyResult`."""
    jobs, total = plan.jobs, len(plan.jobs)

    def target(job):
        job.update(message="preparing the data")
        train_set, val_set = plan.task.data(plan.base.seed)

        def cb(ev):
            if ev.get("event") in KEPT_EVENTS:
                job.append(ev)
            if ev.get("event") == "start":
                job.update(message=f"training {ev['run']}")

        def part(chunk, offset, compress_from):
            def progress(done, _):  # the count is the bar's; the message says what comes next
                job.update(progress=(offset + done) / total, message=next_step(jobs, offset + done))

            return run_study(plan.task, chunk, plan.budgets, train_data=train_set, val_data=val_set,
                             compress_from=compress_from, finetune_epochs=plan.finetune_epochs, callback=cb,
                             progress=progress, should_stop=lambda: job.should_stop)

        if plan.compress != FROM_STUDY:
            return part(jobs, 0, plan.compress)
        first = part(jobs[:1], 0, None)  # the dense model the rest compresses
        if first.stopped or "dense" not in first.models:
            return first
        return merge_study([first, part(jobs[1:], 1, first.models["dense"])])

    return target


def next_step(jobs, done: int) -> str:
    """What the study does after ``done`` of ``jobs`` finished (the progress line's message)."""
    if done >= len(jobs):
        return "collecting the results"
    job = jobs[done]
    return f"compressing into {job.format.upper()} at {job.budget:,}" if job.phase == "compressed" \
        else f"starting {job.name}"


def launch(plan: StudyPlan, made_with: dict[str, str]):
    """Start the study of ``plan`` in this session (stopping any earlier one); returns the job."""
    job = start_job(JOB_KEY, make_target(plan), name="format study",
                    info=StudyInfo(dict(made_with), len(plan.jobs), plan.data_label, plan.task.metric))
    STATE.set("was_running", True)
    STATE.set("job", job)  # the job of the session's registry (tests join it)
    return job


def ended_since_launch(job) -> bool:
    """True once, on the first run that sees the job :func:`launch` started no longer running (the
    page then reruns in full, to stop its timer and enable its buttons)."""
    return job is not None and not job.running and bool(STATE.pop("was_running", False))


def live_rows(events: list[dict], metric: str) -> list[dict]:
    """One row per run started so far: its input-map parameters, and once it ended its status and metric."""
    rows: dict[str, dict] = {}
    for ev in events:
        if ev.get("event") == "start":
            rows[ev["run"]] = {"run": ev["run"], "input-map params": ev.get("input_map_params"), "status": "training",
                               metric: None, "examples/s": None}
        elif ev.get("event") == "end" and ev["run"] in rows:
            rows[ev["run"]].update({"status": ev.get("status"), metric: ev.get(metric),
                                    "examples/s": ev.get("examples_per_s")})
    return list(rows.values())


#: How the progress line names a job's end.
ENDS = {"done": "Finished", "stopped": "Stopped", "failed": "Failed"}


def progress_text(snap: dict, total: int) -> str:
    """One line of a job snapshot: while it runs, the runs done and what it does now; once ended, how it ended."""
    done = round(snap["progress"] * total)
    if snap["status"] in ENDS:
        return f"{ENDS[snap['status']]}: {done} of {total} runs in {snap['elapsed']:,.0f} s."
    now = "waiting for a free slot" if snap["status"] == "queued" else (snap["message"] or "starting")
    return f"{done} of {total} runs done · {now} · {snap['elapsed']:,.0f} s"
