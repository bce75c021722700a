"""Benchmark: training speed of dense, TT and BT LSTM classifiers against their speed targets.

Part 1, the default synthetic task on CPU (3x32x32 frames, 8 per clip, the defaults of
``python -m btcore.train``): trains the three default models one after another with
``btcore.train.compare`` and reports, per model, the median examples/s over the training steps, the
final validation accuracy, the time at which that accuracy was first reached and the run's total time
(from the first step, data generation excluded; the data are generated once and shared). Target: the
three together under 60 s.

Part 2, the paper's frame size (3x120x160 = 57,600 inputs, hidden 256 = 4x4x4x4, UCF11 BT R=4 N=2,
TT ranks 4): the time of one full training step (forward, backward, Adam update) of each LSTM
classifier on random frames, timed round-robin (one step of each model in turn, so machine load
drifts hit them alike), medians. Target: BT at least as fast per step as dense.

Usage: ``python bench/train.py [--threads 1] [--repeats 7] [--batch 16] [--frames 8] [--skip-task]``.
Not a test: it asserts nothing and prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


import torch
from torch import nn

from btcore.data import SyntheticActions
from btcore.rnn import SequenceClassifier, ucf11_config
from btcore.train import TrainConfig, compare, model_config


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
    results = compare(runs, train_set, val_set)
    print("| model | parameters | input-map params | examples/s (median) | ms/step | final val acc | "
          "time to final acc (s) | run time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total = 0.0
    speed = {}
    for r in results:
        evals = [e for e in r.history if e["event"] == "eval"]
        final = r.final["val_acc"]
        reached = next(e["elapsed"] for e in evals if e["val_acc"] >= final)
        total += r.elapsed
        speed[r.config.model.kind] = r.final["examples_per_s"]
        print(f"| {r.name} | {r.params:,} | {r.config.model.input_map_params():,} | {r.final['examples_per_s']:,.0f} | "
              f"{1000 * r.final['step_time']:.1f} | {final:.3f} | {reached:.1f} | {r.elapsed:.1f} |")
    print(f"\nAll three: {total:.1f} s (target < 60 s). Examples/s BT / dense = {speed['bt'] / speed['dense']:.2f}, "
          f"TT / dense = {speed['tt'] / speed['dense']:.2f}. Chance = {1 / task.classes:.3f}.\n")


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--skip-task", action="store_true", help="only part 2 (paper frame size)")
    p.add_argument("--skip-paper", action="store_true", help="only part 1 (default synthetic task)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs visible, {args.threads} thread(s)\n")
    if not args.skip_task:
        part1(args)
    if not args.skip_paper:
        part2(args)


if __name__ == "__main__":
    main()
