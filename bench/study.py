"""Benchmark: a 3-budget format study (dense + TT + BT) on the default synthetic action task, on CPU.

The defaults of ``python -m btcore.train`` (3x32x32 frames, 8 per clip, 1,024 training and 256
validation clips, LSTM with hidden 64 = 4x4x2x2, 8 epochs of batch 32), budgets 1,000, 3,000 and
10,000 input-map parameters: seven runs, one after another on the same seeded batches
(:func:`btcore.train.study.run_study`). Target: the whole study in under 3 minutes on 2 CPU cores.
Prints the machine's load average and the study's table (markdown). Not a test: it asserts nothing.

Usage: ``OMP_NUM_THREADS=1 python bench/study.py [--threads 1] [--budgets 1000,3000,10000] [--epochs 8]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, _ROOT)  # this checkout's btcore

import torch  # noqa: E402

from btcore.tasks import make_task  # noqa: E402
from btcore.train import TrainConfig, pin_contraction_rates  # noqa: E402
from btcore.train.study import estimate_study, plan_study, run_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budgets", default="1000,3000,10000")
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pin_contraction_rates()
    budgets = [int(b) for b in a.budgets.split(",")]
    task = make_task("action")
    base = TrainConfig(task.model_config("dense"), epochs=a.epochs, device="cpu")
    jobs, notes = plan_study(task, budgets, ["tt", "bt"], base=base)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"torch threads {a.threads}; {len(jobs)} runs; notes: {notes or 'none'}\n")
    t0 = time.perf_counter()
    train_set, val_set = task.data(base.seed)
    est = estimate_study(task, jobs, train_set, val_set)
    t_est = time.perf_counter() - t0
    res = run_study(task, jobs, budgets, train_data=train_set, val_data=val_set, estimated_s=est)
    wall = time.perf_counter() - t0
    print("| run | format | budget | ranks | N | input-map params | val acc | examples/s | s | pareto | recommended |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res.rows:
        print(f"| {r.run} | {r.format} | {r.budget or '-'} | {r.ranks or '-'} | {r.blocks or '-'} | {r.params:,} | "
              f"{r.val_metric:.3f} | {r.examples_per_s:,.0f} | {r.seconds:.1f} | {r.pareto} | {r.recommended} |")
    load = os.getloadavg()
    print(f"\nestimate {est:.0f} s (probing took {t_est:.1f} s); whole study {wall:.1f} s wall "
          f"(target < 180 s); load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
