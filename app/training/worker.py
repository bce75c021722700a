"""The Training page's background job and session state: the data, the runs, the stop rules.

The worker is pure btcore (no ``st.*``): it builds the data, trains the runs with
:func:`btcore.train.compare` and reports through the job. Only :func:`launch` touches the session (through :data:`STATE`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.jobs import start_job
from app.state import SessionState
from btcore.data import SyntheticActions
from btcore.tasks import Task, make_task
from btcore.train import TrainConfig, compare, with_unique_names

__all__ = ["K", "JOB_KEY", "DataSpec", "RaceInfo", "end_unstarted", "split_preview", "describe_data", "make_target", "launch"]

K = "train_"  # widget key prefix
STATE = SessionState(K)  # the page's session values beyond its inputs (the job, the scroll flag, the first estimate)
#: The session's training job. A run keeps going while the user visits other pages (it shows again on
#: return); it stops on Stop, or when the browser session ends (its job registry's release stops it).
JOB_KEY = "training"


@dataclass(frozen=True)
class DataSpec:
    """The data a job trains on: for action, the synthetic motions or a clip folder already resolved inside
    the data root; for another task, its name and data options (``options``: ``(name, value)`` pairs).
    """

    frame_shape: tuple[int, int, int]
    frames: int
    seed: int
    folder: Path | None = None  # None: the synthetic task
    classes: int = 0
    train_size: int = 0
    val_size: int = 0
    noise: float = 0.0
    task: str = "action"
    options: tuple = ()

    @property
    def source(self) -> str:
        if self.task != "action":
            return self.task
        return "synthetic" if self.folder is None else "folder"

    def make_task(self) -> Task:
        """The task object of this spec (with its options)."""
        if self.task == "action" and self.folder is not None:
            return make_task("action", data_source=str(self.folder), frame_shape=self.frame_shape, frames=self.frames)
        if self.task == "action":
            return make_task("action", frame_shape=self.frame_shape, frames=self.frames, classes=self.classes,
                             train_size=self.train_size, val_size=self.val_size, noise=self.noise)
        return make_task(self.task, **dict(self.options))


@dataclass(frozen=True)
class RaceInfo:
    """What a training job knows beyond its progress (its :attr:`~app.jobs.Job.info`)."""

    #: The page's inputs (URL text) when it started, so the page can say what changed since.
    made_with: dict = field(default_factory=dict)
    chance: float | None = None  # the metric of a model that learnt nothing, once the data is built
    task: str = "action"  # the task's name
    metric: str = "val_acc"  # the task's validation metric (event key), its label and direction
    metric_label: str = "validation accuracy"
    higher_is_better: bool = True
    data: str | None = None  # "N training / M validation clips, C classes"
    device: str | None = None  # where the runs train
    #: run -> its newest preview (the task's preview dict, with the "step" and "epoch" it was made at)
    previews: dict = field(default_factory=dict)


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


#: Synthetic data built once per configuration in this server process (the last few; read-only once built).
DATA_CACHE: OrderedDict = OrderedDict()
_DATA_LOCK = threading.Lock()
KEEP_DATA = 2


def _load(job, spec: DataSpec, task: Task):
    """``(train, validation)`` of ``spec``; None when a stop came while the data were built or read."""
    if spec.task != "action" or spec.folder is not None:  # stoppable per piece (a clip folder: per file)
        return task.load_data(spec.seed, should_stop=lambda: job.should_stop,
                              progress=lambda f: job.update(message=f"preparing the data: {f:.0%}"))
    if job.should_stop:
        return None
    with _DATA_LOCK:
        if spec in DATA_CACHE:
            DATA_CACHE.move_to_end(spec)
            return DATA_CACHE[spec]
    data = _generate(job, spec)
    if data is not None:
        with _DATA_LOCK:
            DATA_CACHE[spec] = data
            while len(DATA_CACHE) > KEEP_DATA:
                DATA_CACHE.popitem(last=False)
    return data


def _generate(job, spec: DataSpec):
    task = SyntheticActions(frame_shape=spec.frame_shape, frames=spec.frames, classes=spec.classes,
                            train_size=spec.train_size, val_size=spec.val_size, seed=spec.seed, noise=spec.noise)
    train_set, val_set = task.splits()
    for name, part in (("training", train_set), ("validation", val_set)):
        ok = part.prepare(should_stop=lambda: job.should_stop,
                          progress=lambda f, name=name: job.update(message=f"generating {name} clips: {f:.0%}"))
        if not ok:
            return None
    return train_set, val_set


def split_preview(ev: dict, previews: dict[str, dict]) -> tuple[dict, dict[str, dict]]:
    """``(ev without its preview, previews with it)``: the preview goes to its run's slot, tagged with the step and epoch.

    A generation preview is ~50,000 numbers: the job keeps each run's newest only (in
    :attr:`RaceInfo.previews`), not one per evaluation in its events.
    """
    if "preview" not in ev:
        return ev, previews
    ev = dict(ev)
    preview = {**ev.pop("preview"), "step": ev.get("step"), "epoch": ev.get("epoch")}
    return ev, {**previews, ev["run"]: preview}


def describe_data(train_set, val_set) -> str:
    """``"N training / M validation examples"`` (clips, with their classes, for action)."""
    classes = getattr(train_set, "classes", None)
    if isinstance(classes, int):
        return f"{len(train_set)} training / {len(val_set)} validation clips, {classes} classes"
    return f"{len(train_set)} training / {len(val_set)} validation examples"


def make_target(runs: list[TrainConfig], spec: DataSpec):
    """A pure-btcore worker: build the data, train the runs, report through the job."""
    runs = with_unique_names(runs)  # the names compare() gives the runs

    task = spec.make_task()

    def target(job):
        job.update(message="preparing the data")
        data = _load(job, spec, task)
        if data is None:
            _stopped(job, runs)
            return []
        train_set, val_set = data
        chance = task.chance(train_set, val_set, runs[0].model) if runs else None
        job.update(info=replace(job.info or RaceInfo(), chance=None if chance is None else chance.value,
                                task=task.name, metric=task.metric, metric_label=task.metric_label,
                                higher_is_better=task.higher_is_better, data=describe_data(train_set, val_set)))

        def cb(ev):
            info = job.info or RaceInfo()
            ev, previews = split_preview(ev, info.previews)
            if previews is not info.previews:
                job.update(info=replace(info, previews=previews))
            if ev["event"] == "start":
                job.update(message=f"training {ev['run']} ({ev['run_index'] + 1} of {ev['runs']}) on {ev['device']}",
                           info=replace(job.info or RaceInfo(), device=ev["device"]))
            job.append(ev)
            if "overall_progress" in ev:
                job.update(progress=ev["overall_progress"], eta_s=ev.get("overall_eta_s"))

        results = compare(runs, train_set, val_set, callback=cb, should_stop=lambda: job.should_stop, task=task,
                          previews=True)
        if job.should_stop:
            _stopped(job, runs)
        return results

    return target


def launch(runs: list[TrainConfig], spec: DataSpec, made_with: dict[str, str] | None = None):
    """Start the worker on ``spec`` in this session (stopping any earlier one); returns the job.

    ``made_with``: the page's inputs (URL text) when it started, so the page can say when the inputs
    changed since the run it shows.
    """
    made_with = dict(made_with or {})
    job = start_job(JOB_KEY, make_target(runs, spec), name="training", info=RaceInfo(made_with=made_with),
                    share=("training race", runs, spec, made_with))  # sessions pressing Train on one link share a run
    STATE.set("was_running", True)
    STATE.set("job", job)  # the same object as in the session's job registry (tests join it)
    return job
