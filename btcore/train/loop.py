"""One training run to its end: :func:`train` (several in turns: :mod:`.race`; the run itself: :mod:`.run`)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..tasks import Task, make_task
from .config import TrainConfig, set_cpu_threads
from .distributed import Processes, run_device
from .run import Run, TrainResult

__all__ = ["train"]


def train(config: TrainConfig, train_data, val_data, *, callback: Callable[[dict], Any] | None = None,
          should_stop: Callable[[], bool] | None = None, run_index: int = 0, runs: int = 1,
          keep_model: bool = True, apply_threads: bool = False, estimated_s: float | None = None,
          task: Task | None = None, previews: bool = False) -> TrainResult:
    """Train one configuration; report through ``callback``; return a :class:`~btcore.train.TrainResult`.

    ``train_data`` / ``val_data`` are the task's data (action: :class:`btcore.data.ClipSet` or
    synthetic splits; anything with ``len()`` and ``get(indices) -> batch``). Under
    torch.distributed the model is wrapped in DistributedDataParallel and each global batch is split
    across the processes. ``task``: default ``config.task``'s (:func:`btcore.tasks.make_task`).

    ``apply_threads``: set torch's (process-wide) CPU thread count to ``config.threads`` for the run
    and restore it afterwards. Only for a caller that owns the process; never from a worker thread
    that shares the process with other torch work (the app), where it would race with them.
    ``estimated_s`` (e.g. from :func:`btcore.train.probe_seconds`) goes into the start event.
    ``previews``: every evaluation event carries the task's preview of the model.

    Randomness: the model init and the dropout masks come from two ``torch.Generator`` s of the run,
    seeded from ``config.seed`` (:func:`~btcore.train.seeded_model`); the batch order from a NumPy
    generator of its own. The global RNG is neither used nor changed, so runs training at the same
    time (in turns, as :func:`~btcore.train.compare` does, or in threads) reproduce their results alone.
    """
    cfg = config
    task = task or make_task(cfg.task)
    task.check_data(train_data, cfg.model, "training data")
    task.check_data(val_data, cfg.model, "validation data")
    processes = Processes()
    device = run_device(cfg.device, processes)
    old_threads = None
    if apply_threads and device.type == "cpu" and cfg.threads is not None:
        old_threads = set_cpu_threads(cfg.threads)
    try:
        run = Run.open(cfg, train_data, val_data, task=task, callback=callback, should_stop=should_stop,
                       processes=processes, device=device, estimated_s=estimated_s, previews=previews)
        run.announce(run_index, runs)
        for _ in run.steps():
            pass
        return run.finish(keep_model=keep_model)
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads)
