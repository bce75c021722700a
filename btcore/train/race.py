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

from .config import RunResult, TrainConfig, device_name, set_cpu_threads
from .estimate import probe_seconds
from .loop import _announce, _check_data, _device, _Dist, _finish, _never, _open, _steps

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


def _frames(data) -> int:
    x, _ = data.get([0])
    return int(x.shape[1])


def compare(configs: Sequence[TrainConfig], train_data, val_data, *, callback: Callable[[dict], Any] | None = None,
            should_stop: Callable[[], bool] | None = None, keep_models: bool = True, apply_threads: bool = False,
            interleave: bool = True, turn_steps: int = 1, estimate: bool = True) -> list[RunResult]:
    """Train several configurations on the same data, in turns (default) or one after another.

    Run names are made unique (:func:`with_unique_names`) on copies. Every event also carries
    ``overall_progress`` (steps done over all runs' steps) and ``overall_eta_s`` (the seconds the
    unfinished runs still need at their measured step times). With ``estimate`` each run is first
    probed (:func:`~btcore.train.probe_seconds`) and its start event carries ``estimated_s``.

    ``interleave=False`` trains the runs one after another; a stop request then ends the comparison
    (the later runs are not started and not returned). In turns, a stop ends every run ("stopped")
    and all are returned. ``apply_threads`` as in :func:`~btcore.train.train`.
    """
    configs = with_unique_names(configs)
    if not configs:
        raise ValueError("compare: give at least one configuration")
    should_stop = should_stop or _never
    callback = callback or (lambda e: None)
    for c in configs:
        _check_data(train_data, c.model, "training data")
        _check_data(val_data, c.model, "validation data")
    dist = _Dist()
    old_threads = None
    if apply_threads and configs[0].threads is not None:
        old_threads = set_cpu_threads(configs[0].threads)
    try:
        return _race(configs, train_data, val_data, callback, should_stop, dist, keep_models, interleave,
                     max(int(turn_steps), 1), estimate)
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads)


def _race(configs, train_data, val_data, callback, should_stop, dist, keep_models, interleave, turn, estimate):
    estimates = [None] * len(configs)
    if estimate:
        frames = _frames(train_data)
        estimates = [probe_seconds(c, len(train_data), len(val_data), frames, data=train_data)["estimated_s"]
                     for c in configs]
    runs: list = []
    totals: list[int] = []
    for c in configs:  # totals before any run, for overall_progress
        spe = len(train_data) // min(c.batch_size, len(train_data))
        t = spe * c.epochs
        totals.append(min(t, c.max_steps) if c.max_steps else t)
    grand = max(sum(totals), 1)
    ended: set[int] = set()

    def overall(ev: dict) -> None:
        done = sum(r.step for r in runs)
        etas = [r.eta_s() for i, r in enumerate(runs) if i not in ended]
        etas += list(estimates[len(runs):])  # runs not opened yet (one after another)
        ev["overall_progress"] = min(1.0, done / grand)
        ev["overall_eta_s"] = sum(e for e in etas if e is not None) if all(e is not None for e in etas) else None
        callback(ev)

    def open_run(i: int):
        c = configs[i]
        run = _open(c, train_data, val_data, overall, should_stop, dist, _device(c, dist))
        run.estimated_s = estimates[i]
        runs.append(run)
        dev = device_name(run.device)
        _announce(run, i, len(configs), dev, total_estimated_s=sum(estimates) if estimate else None)
        run.t_start = time.perf_counter()
        run.net.train()
        return run, dev

    results: list[RunResult | None] = [None] * len(configs)
    if not interleave:
        for i in range(len(configs)):
            run, dev = open_run(i)
            for _ in _steps(run):
                pass
            ended.add(i)
            results[i] = _finish(run, overall, dev, keep_models)
            if run.status == "stopped":
                break
        return [r for r in results if r is not None]
    opened = [open_run(i) for i in range(len(configs))]
    t0 = time.perf_counter()
    for run, _ in opened:
        run.t_start = t0  # one clock for the race
    gens = {i: _steps(run) for i, (run, _) in enumerate(opened)}
    while gens:
        for i in list(gens):
            for _ in range(turn):
                if next(gens[i], StopIteration) is StopIteration:
                    del gens[i]
                    ended.add(i)
                    run, dev = opened[i]
                    results[i] = _finish(run, overall, dev, keep_models)
                    break
    return results  # type: ignore[return-value]
