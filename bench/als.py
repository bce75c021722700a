"""Benchmark: the BT ALS engine's two hot kernels, each way it can run them, and one ALS sweep.

    python bench/als.py [--repeats 7]

One thread (set before torch is imported). Shapes: those of the advisor's BT candidates on a
512 x 512 photo at a 10% budget (interleaved modes 32x8x4x4x4x16, R = 2..4, N = 6..163), the app's
4-mode tensorizations, and the hard-structure suite's sizes. For each, the median time over
``--repeats`` (methods interleaved per repeat) of

* **pair products** D[n, m] = C_m x_j P_nm^(j) summed over m (the core system's product, 7 per
  sweep): one batched GEMM over all N^2 pairs at once (the engine before its row chunks), the same in
  cache-sized row chunks (bit-identical), and elementwise over the pairs (rank 2), marking the one
  :func:`btcore.decompose.als._pair_products` takes;
* **the half-sweep contraction** of T with every block's factors over the other half of the modes:
  the sequential plan (a GEMM, then a per-block product per mode) and one GEMM with the Kronecker
  products of the factors, marking the one :func:`btcore.decompose.als._contract` takes;
* **one ALS sweep** (:meth:`btcore.decompose.als.ALSRun.sweep`) as the engine runs it.

"before / now": the engine before the row chunks and the Kronecker plan (all pairs at once, the
sequential plan) over the kernels it now takes.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

torch.set_num_threads(1)

from btcore.decompose import als  # noqa: E402

#: (interleaved mode sizes, R, N): the advisor's 10% candidates on camera 512, then smaller ones.
SHAPES = [((32, 8, 4, 4, 4, 16), 2, 131), ((16, 16, 4, 4, 4, 16), 2, 163), ((32, 8, 4, 4, 4, 16), 3, 28),
          ((32, 8, 4, 4, 4, 16), 4, 6), ((16, 16, 16, 16), 2, 60), ((16, 16, 16, 16), 4, 5),
          ((12, 8, 6, 12), 4, 5), ((64, 64, 64), 2, 100)]


def operands(sizes, R, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(sizes, generator=g, dtype=torch.float64)
    T /= torch.linalg.norm(T)
    U = [torch.linalg.qr(torch.randn(N, m, min(R, m), generator=g, dtype=torch.float64))[0] for m in sizes]
    C = torch.randn((N,) + tuple(u.shape[2] for u in U), generator=g, dtype=torch.float64)
    return T, U, C


def pair_sum(P, C, fn, rows):
    N = C.shape[0]
    out = torch.empty_like(C)
    for n0 in range(0, N, rows):
        n1 = min(N, n0 + rows)
        out[n0:n1] = fn(P, C, -1, n0, n1).sum(1)
    return out


def median_times(methods: dict, repeats: int) -> dict:
    times = {k: [] for k in methods}
    for _ in range(repeats):
        order = list(methods)
        random.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            methods[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    random.seed(0)
    print(f"threads: {torch.get_num_threads()}, median of {args.repeats}, ms; * = the engine's choice")
    print("| modes | R | N | pairs: all at once | pairs: row chunks | pairs: elementwise | contraction: sequential "
          "| contraction: Kronecker | before / now (both kernels) | ALS sweep |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sizes, R, N in SHAPES:
        T, U, C = operands(sizes, R, N)
        P = [als._cross_gram(u) for u in U]
        ranks = tuple(C.shape[1:])
        rows, chosen_pairwise = als._pair_layout(N, ranks)
        elementwise_ok = max(ranks) <= 2
        d = len(sizes)
        comp = list(range((d + 1) // 2, d))  # the first half-sweep's contraction
        kron_ok = als._kronecker_cost(T, U, comp) < float("inf")
        chosen_kron = als._takes_kronecker(T, U, comp)
        methods = {
            "all": lambda: pair_sum(P, C, als._pair_products_batched, N),
            "chunks": lambda: pair_sum(P, C, als._pair_products_batched, rows),
            "seq": lambda: als._sequential_contract(T, U, comp),
        }
        if elementwise_ok:
            methods["elem"] = lambda: pair_sum(P, C, als._pair_products_elementwise, rows)
        if kron_ok:
            methods["kron"] = lambda: als._kronecker_contract(T, U, comp)
        run = als.ALSRun(T, [u.clone() for u in U], 1e-12, 6)
        methods["sweep"] = run.sweep
        t = median_times(methods, args.repeats)
        mark = lambda key, chosen: f"{t[key] * 1e3:.2f}{' *' if chosen else ''}"  # noqa: E731
        pair_engine = t["elem"] if chosen_pairwise else t["chunks"]
        con_engine = t["kron"] if chosen_kron else t["seq"]
        print(f"| {'x'.join(map(str, sizes))} | {R} | {N} | {t['all'] * 1e3:.2f} | {mark('chunks', not chosen_pairwise)} | "
              f"{mark('elem', chosen_pairwise) if 'elem' in t else '-'} | {mark('seq', not chosen_kron)} | "
              f"{mark('kron', chosen_kron) if 'kron' in t else '-'} | {(t['all'] + t['seq']) / (pair_engine + con_engine):.2f}x | "
              f"{t['sweep'] * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
