"""Benchmark: y = x W in BT format vs dense, every contraction scheme side by side.

Sizes: the UCF11 input map (57,600 -> 1,024, 8x20x20x18 -> 16x4x4x4) at batch 16, 64, 256 and the
app's default training size (3,072 -> 256, 8x8x8x6 -> 16x4x2x2) at 256 rows; BT R=4, N=2.
For each, forward and forward+backward (gradients of x and of the factors), the median time of

* dense ``x @ W`` (an ``nn.Linear``-like GEMM),
* every scheme btcore's planner considers (the FLOP-optimal path, each GEMM-shaped fold, dense
  reconstruction), skipping those the model prices above ``--skip`` times the cheapest,
* ``btcore.matmul`` as it runs by default (the chosen scheme, timed once per shape where that pays).

Methods are interleaved per repeat, in a fresh random order (machine load and cold caches hit all alike); 1 thread by default. Columns:
chosen/dense speed-up, chosen vs the best measured scheme, and BT time / (its multiply-adds at the
dense GEMM's measured rate).

Usage: python bench/contraction.py [--threads 1] [--repeats 9] [--skip 4] [--clock wall|cpu] [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import btcore
from btcore.contract import PlannedMatmul, ranked_plans, run_plan
from btcore.memory import keep_memory

SIZES = {  # name: (in_modes, out_modes, batches)
    "UCF11": ((8, 20, 20, 18), (16, 4, 4, 4), (16, 64, 256)),
    "app": ((8, 8, 8, 6), (16, 4, 2, 2), (256,)),
}


CLOCK = time.perf_counter


def _median_times(fns: dict, repeats: int) -> dict:
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    keys, order = list(fns), random.Random(0)
    for _ in range(repeats):
        # a fresh order per repeat: whichever runs right after the dense GEMM (which streams W through
        # the caches) starts cold, so no method may always be the one that follows it
        order.shuffle(keys)
        for k in keys:
            t0 = CLOCK()
            fns[k]()
            times[k].append(CLOCK() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def bench_case(in_modes, out_modes, batch: int, direction: str, repeats: int, skip: float) -> dict:
    torch.manual_seed(0)
    spec = btcore.BTSpec(in_modes, out_modes, 4, 2)
    M = btcore.BTMatrix.random(in_modes, out_modes, 4, 2, seed=0, std=(3 * spec.in_size) ** -0.5)
    W = M.to_dense().detach().clone()
    x = torch.randn(batch, spec.in_size)
    train = direction == "train"
    leaves = [t.detach().clone().requires_grad_(train) for t in M.tensors()]
    Mg = btcore.BTMatrix([f.detach().clone().requires_grad_(train) for f in M.factors],
                         M.core.detach().clone().requires_grad_(train))
    Wg = W.clone().requires_grad_(train)
    xg = x.clone().requires_grad_(train)
    plans = ranked_plans(spec, batch, "auto", direction=direction)
    plans = [p for p in plans if p.cost_s <= skip * plans[0].cost_s]
    fns = {}
    if train:
        fns["dense"] = lambda: (xg @ Wg).sum().backward()
        fns["chosen"] = lambda: btcore.matmul(xg, Mg).sum().backward()
        for p in plans:
            fns[p.name] = lambda p=p: PlannedMatmul.apply(p, xg, *leaves).sum().backward()
    else:
        fns["dense"] = lambda: x @ W
        fns["chosen"] = lambda: btcore.matmul(x, M)
        for p in plans:
            fns[p.name] = lambda p=p: run_plan(p, x, M.tensors())
    with torch.set_grad_enabled(train):
        fns["chosen"]()  # plan (and, where it pays, time candidates) before measuring
        med = _median_times(fns, repeats)
    chosen = btcore.plan_matmul(spec, batch, direction=direction)
    if btcore.contract.measuring() and chosen.cost_s > btcore.contract.AUTO_TUNE_S:  # matmul timed them: its pick
        chosen = btcore.contract.tune_plan(M, batch, direction=direction)
    dense_rate = batch * spec.in_size * spec.out_size / med["dense"]  # MAC per ms
    best = min((k for k in med if k not in ("dense", "chosen")), key=med.get)
    return {"med": med, "chosen": chosen.name, "best": best, "flop_ratio": med["chosen"] / (chosen.macs / dense_rate),
            "skipped": len(ranked_plans(spec, batch, "auto", direction=direction)) - len(plans)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the loaded-machine setting)")
    ap.add_argument("--repeats", type=int, default=9, help="timed repeats per method (medians reported)")
    ap.add_argument("--skip", type=float, default=4.0, help="skip schemes the model prices above this x cheapest")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: this thread's CPU time (steadier on a shared machine)")
    ap.add_argument("--quick", action="store_true", help="app size and UCF11 batch 16 only, at most 5 repeats")
    ap.add_argument("--measured-rates", action="store_true",
                    help="the planner with rates measured here (btcore.contract.measure_rates) instead of its fixed "
                         "reference rates: faster schemes on other hardware, not reproducible")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    btcore.contract.measure_rates(args.measured_rates)
    global CLOCK
    if args.clock == "cpu":
        if args.threads != 1:
            ap.error("--clock cpu measures one thread: use it with --threads 1")
        CLOCK = time.thread_time
    keep_memory()
    repeats = min(args.repeats, 5) if args.quick else args.repeats
    print(f"# BT R=4, N=2, float32, {args.threads} thread(s), median of {repeats}, {args.clock} times in ms, "
          f"torch {torch.__version__}")
    print("| size | batch | direction | dense | schemes (ms) | chosen | chosen ms | dense/chosen "
          "| chosen/best scheme | BT / (MACs at dense rate) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, (i, o, batches) in SIZES.items():
        for batch in (batches[:1] if args.quick else batches):
            for direction in ("forward", "train"):
                r = bench_case(i, o, batch, direction, repeats, args.skip)
                med = r["med"]
                sch = ", ".join(f"{k} {v:.2f}" for k, v in med.items() if k not in ("dense", "chosen"))
                if r["skipped"]:
                    sch += f" ({r['skipped']} priced > {args.skip:g}x skipped)"
                print(f"| {name} | {batch} | {'fwd' if direction == 'forward' else 'fwd+bwd'} | {med['dense']:.2f} "
                      f"| {sch} | {r['chosen']} | {med['chosen']:.2f} | {med['dense'] / med['chosen']:.2f}x "
                      f"| {med['chosen'] / med[r['best']]:.2f} ({r['best']}) | {r['flop_ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
