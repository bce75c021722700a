"""Training runs with a metrics callback and a stop flag; comparisons; the CLI; DistributedDataParallel.

Modules: :mod:`~btcore.train.config` (TrainConfig, optimisers, devices, threads), :mod:`~btcore.train.run`
(:class:`Run`, one run's life: open, announce, steps, finish; :class:`TrainResult`),
:mod:`~btcore.train.loop` (:func:`train`), :mod:`~btcore.train.race` (:func:`compare`),
:mod:`~btcore.train.distributed` (the processes of a run), :mod:`~btcore.train.io` (histories,
checkpoints), :mod:`~btcore.train.json_lines` (strict JSON) and :mod:`~btcore.train.cli`
(``python -m btcore.train``) with :mod:`~btcore.train.cli_tasks` (its task flags). Their public names are re-exported here. What is trained (data, model,
loss, metrics) is a task of :mod:`btcore.tasks` (``TrainConfig.task``, default ``"action"``).

Library use::

    from btcore.data import SyntheticActions
    from btcore.tasks.action import model_config
    from btcore.train import TrainConfig, train, compare

    train_set, val_set = SyntheticActions().splits()
    runs = [TrainConfig(model_config(k, frame_shape=(3, 32, 32), classes=8), epochs=5) for k in ("dense", "tt", "bt")]
    results = compare(runs, train_set, val_set, callback=print)

Every run reports through ``callback(event)`` with plain dicts (JSON-friendly), each with ``"run"``
and ``"task"``:

* ``{"event": "start", "run", "run_index", "runs", "params", "input_map_params", "device", "total_steps"}``
* ``{"event": "step", "run", "step", "epoch", "train_loss", "train_acc", "step_time", "examples_per_s",
  "elapsed", "progress"}`` after every optimiser step (``train_*`` are of that batch; which ``train_*``
  comes from the task: action has ``train_loss`` and ``train_acc``);
* ``{"event": "eval", "run", "step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
  "examples_per_s", "elapsed", "progress"}`` after every epoch (``train_*`` are the epoch's means) and,
  with ``eval_every``, every that many steps;
* ``{"event": "end", "run", "status", "reason", ...final metrics}``.

``status`` is ``"done"``, ``"stopped"`` (``should_stop()`` became true; checked between steps and
between evaluation batches, so a run stops within one step), ``"diverged"`` (a non-finite loss or
gradient: the run stops with a reason and the bad value is never reported as a metric) or
``"stalled"`` (the task's metric still at chance).

CLI: ``python -m btcore.train --help`` (``--task action``, the default, ``generation`` or ``captioning``; the
task flags are in :mod:`~btcore.train.cli_tasks`).
One JSON line per epoch (and per evaluation) on stdout, then a summary line; every line carries ``"task"``.
The folder of ``--out`` is taken before any work (:func:`claim_out_dir`), and the command pins the
contraction planner's rates (:func:`pin_contraction_rates`) so that it trains the same weights bit
for bit on a quiet or a loaded machine. Under ``torchrun --nproc_per_node=K`` the same command trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPU): each global batch is split across the K
processes, gradients are averaged, metrics are reduced, and only rank 0 prints and writes files.
"""

from .config import (MAX_LR, OPTIMIZERS, TrainConfig, check_device, cpu_count, device_name, estimate_memory,
                     make_optimizer, pick_device, pin_contraction_rates, set_cpu_threads)
from .distributed import Processes, run_device
from .run import Run, TrainResult, model_fields, never_stop, param_checksum, seeded_model
from .io import (CHECKPOINT_FORMAT, HISTORY_COLUMNS, LOCK_FILE, OutDir, check_out_dir, checkpoint_bytes, claim_out_dir,
                 histories_csv, history_columns, history_rows, load_checkpoint, save_checkpoint, save_results, summary, write_new_file)
from .json_lines import finite_or_null, json_default, json_line
from .loop import train
from .race import compare, with_unique_names
from .estimate import SLOW_S, probe_seconds
from .sweep import SWEEP_COLUMNS, sweep_columns, sweep_configs, sweep_csv, sweep_rows
from .cli import main

__all__ = [
    "OPTIMIZERS", "TrainConfig", "TrainResult", "Run", "Processes", "run_device", "make_optimizer", "check_device",
    "pick_device", "device_name", "cpu_count", "set_cpu_threads", "estimate_memory", "train", "compare",
    "with_unique_names", "param_checksum", "model_fields", "never_stop", "HISTORY_COLUMNS", "CHECKPOINT_FORMAT",
    "history_rows", "history_columns", "histories_csv", "summary", "save_results", "check_out_dir", "save_checkpoint",
    "checkpoint_bytes", "load_checkpoint", "main", "seeded_model", "probe_seconds", "SLOW_S", "sweep_configs",
    "sweep_rows", "sweep_csv", "sweep_columns", "SWEEP_COLUMNS", "json_default", "finite_or_null", "json_line",
    "pin_contraction_rates", "LOCK_FILE", "OutDir", "claim_out_dir", "write_new_file", "MAX_LR",
]
