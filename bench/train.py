"""Benchmark: training speed of dense, TT and BT LSTM classifiers against their speed targets.

Part 1, the default synthetic task on CPU (3x32x32 frames, 8 per clip, the defaults of
``python -m btcore.train``): races the three default models (``btcore.train.compare``, a step each in
turn) and reports, per model, the median examples/s, the final validation accuracy and status, the
probe's estimate against the run's own seconds, and when its first live point came. Targets: all
three under 30 s, every first point within 5 s. ``--compare-modes`` also times them one after
another and in one thread each.

Part 3 (``--sweep``): the 3x3 BT sweep (R 2,4,8 x N 1,2,4) on the default task; target under 3 minutes.

Part 2, the paper's frame size (3x120x160 = 57,600 inputs, hidden 256 = 4x4x4x4, UCF11 BT R=4 N=2,
TT ranks 4): the time of one full training step (forward, backward, Adam update) of each LSTM
classifier on random frames, timed round-robin (one step of each model in turn, so machine load
drifts hit them alike), medians. Target: BT at least as fast per step as dense.

Part 4 (``--tasks generation,captioning``): the default race of each of the paper's other two tasks
(``python -m btcore.train --task generation|captioning --model dense,tt,bt`` with its defaults):
total wall time (target < 90 s), seconds to every model's first live point (target < 3 s), examples/s
per model from the interleaved race (target: BT at least dense), the final validation nELBO / BLEU-4
and the parameter counts. ``--epochs`` overrides the tasks' default epochs.

Usage: ``python bench/train.py [--threads 1] [--repeats 7] [--batch 16] [--frames 8] [--skip-task]
[--tasks generation,captioning [--only-tasks]]``.
Not a test: it asserts nothing and prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time

import torch
from torch import nn

from btcore.data import SyntheticActions
from btcore.classifier import SequenceClassifier, ucf11_config
from btcore.tasks import make_task
from btcore.tasks.action import model_config
from btcore.train import TrainConfig, compare, pin_contraction_rates, sweep_configs, sweep_rows, train


def _race(runs, train_set, val_set, **kw):
    """``(results, wall seconds, seconds to each run's first step)`` of one comparison."""
    first: dict = {}
    t0 = time.perf_counter()

    def cb(ev):
        if ev["event"] == "step" and ev["run"] not in first:
            first[ev["run"]] = time.perf_counter() - t0

    results = compare(runs, train_set, val_set, callback=cb, **kw)
    return results, time.perf_counter() - t0, first


def _race_table(results, first: dict, metric: str, label: str, digits: int) -> dict:
    """Print one row per model of a race (its final ``metric`` as ``label``); return examples/s by model kind."""
    print(f"| model | parameters | input-map params | examples/s (median) | ms/step | final {label} | status | "
          "estimated s | own s | first point (s) |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    speed = {}
    for r in results:
        speed[r.config.model.kind] = r.final["examples_per_s"]
        print(f"| {r.name} | {r.params:,} | {r.config.model.input_map_params():,} | {r.final['examples_per_s']:,.0f} | "
              f"{1000 * r.final['step_time']:.1f} | {r.final.get(metric, float('nan')):.{digits}f} | {r.status} | "
              f"{r.final['estimated_s']:.1f} | {r.final['run_s']:.1f} | {first.get(r.name, float('nan')):.2f} |")
    return speed


def _threads(runs, train_set, val_set):
    """Wall seconds of the runs trained in one thread each (the alternative to turns)."""
    out = [None] * len(runs)

    def work(i):
        out[i] = train(runs[i], train_set, val_set)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, time.perf_counter() - t0


def part1(args) -> None:
    task = SyntheticActions()
    train_set, val_set = task.splits()
    t0 = time.perf_counter()
    train_set.get([0]), val_set.get([0])
    gen = time.perf_counter() - t0
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # pay torch's one-time optimiser import outside the runs
    runs = [TrainConfig(model_config(k, frame_shape=task.frame_shape, classes=task.classes)) for k in ("dense", "tt", "bt")]
    print(f"## Default synthetic task: {task.classes} classes, {task.train_size} training / {task.val_size} validation "
          f"clips of {task.frames} x {'x'.join(map(str, task.frame_shape))}; {runs[0].epochs} epochs, batch "
          f"{runs[0].batch_size}, Adam lr {runs[0].lr:g}; {torch.get_num_threads()} thread(s)\n")
    print(f"Data generation (both splits, once): {gen:.1f} s\n")
    results, wall, first = _race(runs, train_set, val_set)
    speed = _race_table(results, first, "val_acc", "val acc", 3)
    print(f"\nRace (turns, the default): all three in {wall:.1f} s wall, probe included (target < 30 s); first "
          f"point of every model after {max(first.values()):.2f} s (target < 5 s). Examples/s BT / dense = "
          f"{speed['bt'] / speed['dense']:.2f}, TT / dense = {speed['tt'] / speed['dense']:.2f}. Chance = "
          f"{1 / task.classes:.3f}.\n")
    if args.compare_modes:
        _, seq, first_seq = _race(runs, train_set, val_set, interleave=False)
        _, thr = _threads(runs, train_set, val_set)
        print(f"One after another: {seq:.1f} s (last model's first point after {max(first_seq.values()):.1f} s); "
              f"one thread per model: {thr:.1f} s; turns: {wall:.1f} s.\n")


def part3(args) -> None:
    task = SyntheticActions()
    train_set, val_set = task.splits()
    train_set.get([0]), val_set.get([0])
    base = TrainConfig(model_config("bt", frame_shape=task.frame_shape, classes=task.classes))
    runs = sweep_configs(base, [2, 4, 8], [1, 2, 4])
    results, wall, _ = _race(runs, train_set, val_set)
    print("## Sensitivity sweep: BT-LSTM R in 2,4,8 x N in 1,2,4 on the default task\n")
    print("| R | N | input-map params | final val acc | status | own s |")
    print("|---:|---:|---:|---:|---|---:|")
    for row in sweep_rows(results):
        print(f"| {row['rank']} | {row['blocks']} | {row['input_map_params']:,} | {row['val_acc'] or float('nan'):.3f} | "
              f"{row['status']} | {row['run_s']:.1f} |")
    print(f"\n3x3 sweep: {wall:.1f} s wall (target < 180 s).\n")


def part2(args) -> None:
    print(f"## Paper frame size: 3x120x160 = 57,600 inputs, hidden 256; one training step (forward + backward + "
          f"Adam), batch {args.batch} x {args.frames} frames, {torch.get_num_threads()} thread(s), median of "
          f"{args.repeats}\n")
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.frames, 57_600)
    y = torch.randint(0, 11, (args.batch,))
    models = {}
    for kind in ("dense", "tt", "bt"):
        cfg = ucf11_config(kind, "lstm", dropout=0.0)
        m = SequenceClassifier(cfg)
        models[kind] = (cfg, m, torch.optim.Adam(m.parameters(), 1e-4))

    def step(kind):
        _, m, opt = models[kind]
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for kind in models:  # warm-up (plans, allocations)
        step(kind)
    times = {k: [] for k in models}
    for _ in range(args.repeats):
        for kind in models:
            times[kind].append(step(kind))
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| model | input-map params | ms/step (median) | examples/s | speed vs dense |")
    print("|---|---:|---:|---:|---:|")
    for kind, (cfg, _, _) in models.items():
        print(f"| {cfg.describe()} | {cfg.input_map_params():,} | {1000 * med[kind]:.0f} | {args.batch / med[kind]:.1f} | "
              f"{med['dense'] / med[kind]:.2f}x |")
    verdict = "meets" if med["bt"] <= med["dense"] else "MISSES"
    print(f"\nBT step time / dense = {med['bt'] / med['dense']:.2f} ({verdict} the target: BT at least as fast as dense).\n")


def part4(args, name: str) -> None:
    """The default dense / TT / BT race of the ``name`` task (the CLI's defaults)."""
    task = make_task(name)
    t0 = time.perf_counter()
    train_set, val_set = task.data(0)
    gen = time.perf_counter() - t0
    epochs = args.epochs or task.defaults["epochs"]
    runs = [TrainConfig(task.model_config(k), epochs=epochs, batch_size=task.defaults["batch"], task=name, device="cpu")
            for k in ("dense", "tt", "bt")]
    print(f"## Default {name} race: {len(train_set):,} training / {len(val_set):,} validation examples; {epochs} "
          f"epochs, batch {runs[0].batch_size}, Adam lr {runs[0].lr:g}, clip {runs[0].grad_clip:g}; "
          f"{torch.get_num_threads()} thread(s); load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print(f"Data (both splits, once): {gen:.2f} s\n")
    results, wall, first = _race(runs, train_set, val_set, task=task)
    speed = _race_table(results, first, task.metric, task.metric, 2)
    print(f"\nRace: all three in {wall:.1f} s wall, probe included (target < 90 s); first point of every model "
          f"after {max(first.values()):.2f} s (target < 3 s). Examples/s BT / dense = "
          f"{speed['bt'] / speed['dense']:.2f}, TT / dense = {speed['tt'] / speed['dense']:.2f}.\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--skip-task", action="store_true", help="only part 2 (paper frame size)")
    p.add_argument("--skip-paper", action="store_true", help="skip part 2 (paper frame size)")
    p.add_argument("--sweep", action="store_true", help="also part 3: the 3x3 BT sweep")
    p.add_argument("--compare-modes", action="store_true", help="part 1 also one after another and in threads")
    p.add_argument("--tasks", default="", help="part 4: the default races of these tasks (generation,captioning)")
    p.add_argument("--only-tasks", action="store_true", help="only part 4")
    p.add_argument("--epochs", type=int, default=None, help="part 4: epochs (default: each task's)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.only_tasks:
        args.skip_task = args.skip_paper = True
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs visible, {args.threads} thread(s)\n")
    if not args.skip_task:
        part1(args)
    if not args.skip_paper:
        part2(args)
    if args.sweep:
        part3(args)
    if args.tasks:
        pin_contraction_rates()  # the CLI's schemes: a function of the shapes
        for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
            part4(args, name)


if __name__ == "__main__":
    main()
