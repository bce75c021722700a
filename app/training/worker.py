"""The Training page's background job and session state: the data, the runs, the stop rules.

The worker is pure btcore (no ``st.*``): it builds the data, trains the runs with
:func:`btcore.train.compare` and reports through the job. Only :func:`launch` and
:func:`init_state` touch ``st.session_state``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from app.jobs import start_job
from app.widgets import rank_text
from btcore.data import SyntheticActions, load_clip_folder
from btcore.train import TrainConfig, compare, with_unique_names

__all__ = ["K", "JOB_KEY", "HEARTBEAT_S", "DataSpec", "init_state", "end_unstarted", "make_target", "launch"]

K = "train_"  # widget key prefix
JOB_KEY = "training"
#: A run stops when the page has not redrawn for this long: the user went to another page (closing the
#: tab ends the session, whose release stops the worker at once). Generous, because browsers slow
#: the timers of background tabs down to about once a minute.
HEARTBEAT_S = 90.0


@dataclass(frozen=True)
class DataSpec:
    """The task a job trains on: the synthetic motions, or a clip folder already resolved inside the data root."""

    frame_shape: tuple[int, int, int]
    frames: int
    seed: int
    folder: Path | None = None  # None: the synthetic task
    classes: int = 0
    train_size: int = 0
    val_size: int = 0
    noise: float = 0.0

    @property
    def source(self) -> str:
        return "synthetic" if self.folder is None else "folder"


def init_state(shared) -> None:
    """On the first visit, start the rank widgets from the Shapes page's choices (``shared``)."""
    if K + "bt_rank" not in st.session_state:
        st.session_state[K + "bt_rank"] = rank_text(shared.bt_rank)
        st.session_state[K + "blocks"] = shared.blocks
        st.session_state[K + "tt_ranks"] = rank_text(shared.tt_ranks)
        st.session_state[K + "d"] = shared.d


def end_unstarted(job, runs: list[TrainConfig]) -> None:
    """After a stop: an ``end`` event (status "stopped") for every run that never started.

    A stop can come before the first training step (while the clips are generated) or end a
    comparison before its later runs; the table then still lists every planned run, as stopped.
    """
    ended = {e["run"] for e in job.snapshot()["events"] if e.get("event") == "end"}
    for c in runs:
        if c.name not in ended:
            job.append({"event": "end", "run": c.name, "status": "stopped", "steps": 0,
                        "reason": "stopped before training started"})


def _stopped(job, runs) -> None:
    if not job.message.startswith("stopped"):
        job.update(message="stopped by request")
    end_unstarted(job, runs)


def _load(job, spec: DataSpec):
    """``(train, validation)`` of ``spec``; None when a stop came while the synthetic clips were generated."""
    if spec.folder is not None:
        return load_clip_folder(spec.folder, spec.frame_shape, spec.frames, seed=spec.seed)
    task = SyntheticActions(frame_shape=spec.frame_shape, frames=spec.frames, classes=spec.classes,
                            train_size=spec.train_size, val_size=spec.val_size, seed=spec.seed, noise=spec.noise)
    train_set, val_set = task.splits()
    for name, part in (("training", train_set), ("validation", val_set)):
        ok = part.prepare(should_stop=lambda: job.should_stop,
                          progress=lambda f, name=name: job.update(message=f"generating {name} clips: {f:.0%}"))
        if not ok:
            return None
    return train_set, val_set


def make_target(runs: list[TrainConfig], spec: DataSpec):
    """A pure-btcore worker: build the data, train the runs, report through the job."""
    runs = with_unique_names(runs)  # the names compare() gives the runs

    def target(job):
        job.update(message="preparing the data", heartbeat=time.time())
        data = _load(job, spec)
        if data is None:
            _stopped(job, runs)
            return []
        train_set, val_set = data
        job.update(chance=1.0 / train_set.classes, data_info=f"{len(train_set)} training / {len(val_set)} validation "
                   f"clips, {train_set.classes} classes")

        def cb(ev):
            if ev["event"] == "start":
                job.update(message=f"training {ev['run']} ({ev['run_index'] + 1} of {ev['runs']}) on {ev['device']}",
                           device=ev["device"])
            job.append(ev)
            if "overall_progress" in ev:
                job.update(progress=ev["overall_progress"], eta_s=ev.get("overall_eta_s"))

        def should_stop():
            if not job.should_stop and time.time() - getattr(job, "heartbeat", time.time()) > HEARTBEAT_S:
                job.update(message=f"stopped: the page was left (no redraw for {HEARTBEAT_S:.0f} s)")
                job.stop()
            return job.should_stop

        results = compare(runs, train_set, val_set, callback=cb, should_stop=should_stop)
        if job.should_stop:
            _stopped(job, runs)
        return results

    return target


def launch(runs: list[TrainConfig], spec: DataSpec):
    """Start the worker on ``spec`` in this session (stopping any earlier one); returns the job."""
    job = start_job(JOB_KEY, make_target(runs, spec), name="training")
    job.update(heartbeat=time.time())
    st.session_state[K + "was_running"] = True
    st.session_state[K + "job"] = job  # the same object as in the session's job registry (tests join it)
    return job
