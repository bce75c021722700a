"""Several runs on the same data: :func:`compare` trains them in turns (a race) or one after another.

In a race every model takes ``turn_steps`` steps in turn, on the same batches in the same order
(each run's batch order depends only on its seed), so their curves grow together and the first
point of every model appears after a few steps. Each run's init, dropout and batch order come from
generators of its own (:func:`btcore.train.seeded_model`), so a run in a race gives exactly the
history it gives alone. Turns are cheap (a Python generator per run); they were measured against
threads on a 2-core machine in ``bench/train.py``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import torch

from ..tasks import Task, make_task
from .config import TrainConfig, set_cpu_threads
from .distributed import Processes, run_device
from .estimate import probe_seconds
from .run import Run, TrainResult, never_stop

__all__ = ["compare", "with_unique_names"]


def with_unique_names(configs: Sequence[TrainConfig]) -> list[TrainConfig]:
    """Copies of ``configs`` whose names are unique (``"BT-LSTM"``, ``"BT-LSTM #2"``); the inputs are unchanged.

    Configurations whose names are already unique are returned as they are (as copies), so applying
    this twice gives the same names.
    """
    taken = {c.name for c in configs}
    used: set[str] = set()
    out = []
    for c in configs:
        name = c.name
        if name in used:
            k = 2
            while f"{c.name} #{k}" in used or f"{c.name} #{k}" in taken:
                k += 1
            name = f"{c.name} #{k}"
        used.add(name)
        out.append(dataclasses.replace(c, name=name))
    return out


def compare(configs: Sequence[TrainConfig], train_data, val_data, *, callback: Callable[[dict], Any] | None = None,
            should_stop: Callable[[], bool] | None = None, keep_models: bool = True, apply_threads: bool = False,
            interleave: bool = True, turn_steps: int = 1, estimate: bool = True, task: Task | None = None,
            previews: bool = False) -> list[TrainResult]:
    """Train several configurations on the same data, in turns (default) or one after another.

    Run names are made unique (:func:`with_unique_names`) on copies. Every event also carries
    ``overall_progress`` (steps done over all runs' steps) and ``overall_eta_s`` (the seconds the
    unfinished runs still need at their measured step times). With ``estimate`` each run is first
    probed (:func:`~btcore.train.probe_seconds`) and its start event carries ``estimated_s``.

    ``interleave=False`` trains the runs one after another; a stop request then ends the comparison
    (the later runs are not started and not returned). In turns, a stop ends every run ("stopped")
    and all are returned. ``apply_threads``, ``task`` and ``previews`` as in :func:`~btcore.train.train`
    (every configuration must be of the task).
    """
    configs = with_unique_names(configs)
    if not configs:
        raise ValueError("compare: give at least one configuration")
    should_stop = should_stop or never_stop
    callback = callback or (lambda e: None)
    task = task or make_task(configs[0].task)
    for c in configs:
        if c.task != task.name:
            raise ValueError(f"compare: run {c.name!r} is of the {c.task!r} task, the others of {task.name!r}")
        task.check_data(train_data, c.model, "training data")
        task.check_data(val_data, c.model, "validation data")
    processes = Processes()
    old_threads = None
    if apply_threads and configs[0].threads is not None:
        old_threads = set_cpu_threads(configs[0].threads)
    try:
        race = _Race(configs, task, train_data, val_data, callback, should_stop, processes, estimate, previews)
        if interleave:
            return race.in_turns(max(int(turn_steps), 1), keep_models)
        return race.one_after_another(keep_models)
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads)


class _Race:
    """The runs of one comparison, their estimates and the overall progress every event carries."""

    def __init__(self, configs, task, train_data, val_data, callback, should_stop, processes, estimate, previews):
        self.configs, self.task, self.callback, self.should_stop = configs, task, callback, should_stop
        self.train_data, self.val_data, self.processes, self.previews = train_data, val_data, processes, previews
        self.estimate = estimate
        self.estimates = [None] * len(configs)
        if estimate:
            self.estimates = [probe_seconds(c, len(train_data), len(val_data), None, data=train_data,
                                            task=task)["estimated_s"] for c in configs]
        totals = []
        for c in configs:  # totals before any run, for overall_progress
            spe = len(train_data) // min(c.batch_size, len(train_data))
            t = spe * c.epochs
            totals.append(min(t, c.max_steps) if c.max_steps else t)
        self.grand = max(sum(totals), 1)
        self.runs: list[Run] = []
        self.ended: set[int] = set()

    def overall(self, ev: dict) -> None:
        """Add the overall progress and time left to ``ev`` and pass it on."""
        done = sum(r.step for r in self.runs)
        etas = [r.eta_s() for i, r in enumerate(self.runs) if i not in self.ended]
        etas += list(self.estimates[len(self.runs):])  # runs not opened yet (one after another)
        ev["overall_progress"] = min(1.0, done / self.grand)
        ev["overall_eta_s"] = sum(e for e in etas if e is not None) if all(e is not None for e in etas) else None
        self.callback(ev)

    def open(self, i: int) -> Run:
        c = self.configs[i]
        run = Run.open(c, self.train_data, self.val_data, task=self.task, callback=self.overall,
                       should_stop=self.should_stop, processes=self.processes,
                       device=run_device(c.device, self.processes), estimated_s=self.estimates[i],
                       previews=self.previews)
        self.runs.append(run)
        run.announce(i, len(self.configs), total_estimated_s=sum(self.estimates) if self.estimate else None)
        return run

    def one_after_another(self, keep_models: bool) -> list[TrainResult]:
        results = []
        for i in range(len(self.configs)):
            run = self.open(i)
            for _ in run.steps():
                pass
            self.ended.add(i)
            results.append(run.finish(keep_model=keep_models))
            if run.status == "stopped":
                break
        return results

    def in_turns(self, turn: int, keep_models: bool) -> list[TrainResult]:
        opened = [self.open(i) for i in range(len(self.configs))]
        t0 = time.perf_counter()
        for run in opened:
            run.t_start = t0  # one clock for the race
        results: list[TrainResult | None] = [None] * len(opened)
        gens = {i: run.steps() for i, run in enumerate(opened)}
        while gens:
            for i in list(gens):
                for _ in range(turn):
                    if next(gens[i], StopIteration) is StopIteration:
                        del gens[i]
                        self.ended.add(i)
                        results[i] = opened[i].finish(keep_model=keep_models)
                        break
        return results  # type: ignore[return-value]
