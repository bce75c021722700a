"""Benchmark: y = x W for the UCF11 input map (57,600 -> 1,024) in BT format vs dense.

Prints, for BT R=4 and N = 1, 2 at batch 16 and 64, the median time of
  * ``btcore.matmul`` along the fewest-multiply-adds path,
  * ``btcore.matmul(..., tune=True)`` (fastest measured path),
  * dense ``x @ W``, and reconstruct-then-matmul ``x @ M.to_dense()``,
forward and forward+backward, with ratios measured in the same run (methods interleaved per
repeat, so machine noise hits all of them alike). Also reports how far BT's time is from the time
its multiply-add count would take at the dense matmul's measured rate.

Usage: python bench/contraction.py [--threads 1] [--repeats 15] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import btcore

IN, OUT = (8, 20, 20, 18), (16, 4, 4, 4)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_case(blocks: int, batch: int, repeats: int, rec_repeats: int) -> dict:
    torch.manual_seed(0)
    M = btcore.BTMatrix.random(IN, OUT, 4, blocks, seed=0, std=(3 * 57_600) ** -0.5)
    W = M.to_dense().detach().clone()
    x = torch.randn(batch, 57_600)
    for t in M.factors + [M.core]:
        t.requires_grad_(True)
    Wg = W.clone().requires_grad_(True)

    def fwd_bt():
        with torch.no_grad():
            btcore.matmul(x, M)

    def fwd_tuned():
        with torch.no_grad():
            btcore.matmul(x, M, tune=True)

    def fwd_dense():
        with torch.no_grad():
            x @ W

    def fwd_rec():
        with torch.no_grad():
            x @ M.to_dense()

    def bwd_bt():
        btcore.matmul(x, M).sum().backward()

    def bwd_tuned():
        btcore.matmul(x, M, tune=True).sum().backward()

    def bwd_dense():
        (x @ Wg).sum().backward()

    def bwd_rec():
        (x @ M.to_dense()).sum().backward()

    fns = {"bt": fwd_bt, "bt_tuned": fwd_tuned, "dense": fwd_dense, "bt_fb": bwd_bt, "bt_tuned_fb": bwd_tuned,
           "dense_fb": bwd_dense}
    for fn in fns.values():  # warm-up (and path tuning) before timing
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn))
    rec = {"rec": [], "rec_fb": []}
    fwd_rec()
    for _ in range(rec_repeats):
        rec["rec"].append(timed(fwd_rec))
        rec["rec_fb"].append(timed(bwd_rec))
    med = {k: statistics.median(v) * 1e3 for k, v in (times | rec).items()}
    plan = btcore.plan_matmul(M.spec, batch)
    tuned = btcore.contract.tune_plan(M, batch)
    dense_rate = batch * 57_600 * 1_024 / (med["dense"] / 1e3)  # MAC/s
    med["flop_time"] = plan.macs / dense_rate * 1e3
    med["tuned_flop_time"] = tuned.macs / dense_rate * 1e3
    med["macs"] = plan.macs / batch
    med["tuned_path"] = tuned.strategy
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is often fastest on shared cores)")
    ap.add_argument("--repeats", type=int, default=15, help="timed repeats per method (medians reported)")
    ap.add_argument("--rec-repeats", type=int, default=3, help="repeats of the slow reconstruct-then-matmul path")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# 57,600 -> 1,024 (8x20x20x18 -> 16x4x4x4), BT R=4, float32, {args.threads} thread(s), "
          f"median of {args.repeats} (reconstruct: {args.rec_repeats}); times in ms; torch {torch.__version__}")
    print("| N | batch | dense fwd | BT fwd | BT tuned fwd | reconstruct fwd | dense/BT fwd | dense/BT tuned fwd "
          "| BT vs its FLOP-time at dense rate | dense f+b | BT f+b | BT tuned f+b | reconstruct f+b | dense/BT f+b "
          "| dense/BT tuned f+b |")
    print("|" + "---|" * 16)
    for blocks in (1, 2):
        for batch in (16, 64):
            m = bench_case(blocks, batch, args.repeats, args.rec_repeats)
            best_fwd = min(m["bt"], m["bt_tuned"])
            best_flop = m["flop_time"] if m["bt"] <= m["bt_tuned"] else m["tuned_flop_time"]
            print(f"| {blocks} | {batch} | {m['dense']:.1f} | {m['bt']:.2f} | {m['bt_tuned']:.2f} | {m['rec']:.0f} "
                  f"| {m['dense'] / m['bt']:.1f}x | {m['dense'] / m['bt_tuned']:.1f}x | {best_fwd / best_flop:.2f}x "
                  f"| {m['dense_fb']:.1f} | {m['bt_fb']:.2f} | {m['bt_tuned_fb']:.2f} | {m['rec_fb']:.0f} "
                  f"| {m['dense_fb'] / m['bt_fb']:.1f}x | {m['dense_fb'] / m['bt_tuned_fb']:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
