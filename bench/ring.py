"""Benchmark: y = x W with W a Tensor Ring matrix, against dense, BT and TT at about equal parameters.

Sizes: the UCF11 input map (57,600 -> 1,024, 8x20x20x18 -> 16x4x4x4) at batch 16 and 256, and the
app's default training size (3,072 -> 256, 8x8x8x6 -> 16x4x2x2) at batch 16 and 256. BT is R=4, N=2
(3,392 parameters at UCF11, 2,016 at the app size); TT and TR take the ranks whose parameter count
is nearest to BT's (ties: the most even ranks; TR bonds at least 2, or it would be a TT). Each method runs forward (``y = x W``) and forward
+ backward (gradients of x and of the format's tensors); the median of ``--repeats`` timed runs is
reported, methods interleaved in a fresh random order per repeat. float32, 1 thread by default.

* dense: ``x @ W`` with W formed once (an ``nn.Linear``-like GEMM),
* TR one einsum: the whole ring as one opt_einsum expression (how the TR module ran it before the
  planner), for comparison,
* TR path: ``btcore.matmul(..., method="path")``, the FLOP-optimal pairwise order as einsums (what the
  planner ran for TR before the ring scheme), for comparison,
* BT, TT, TR: :func:`btcore.matmul` (the planner's default, W never formed); the ``scheme`` column
  is the plan it ran (:func:`btcore.plan_matmul` for that batch and direction, with the planner's
  fixed reference rates), MMACs the FLOP-optimal count of :meth:`btcore.TRSpec.macs` and the others.

Usage: python bench/ring.py [--threads 1] [--repeats 7] [--clock wall|cpu] [--batches 16,256] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import time

import opt_einsum
import torch

import btcore
from btcore.ring import TRMatrix

SIZES = {  # name: (in_modes, out_modes, batches)
    "UCF11": ((8, 20, 20, 18), (16, 4, 4, 4), (16, 256)),
    "app": ((8, 8, 8, 6), (16, 4, 2, 2), (16, 256)),
}


def _nearest(target: int, candidates) -> tuple[int, ...]:
    """The rank tuple whose parameter count is nearest ``target`` (then the most even, then the smallest)."""
    return min(candidates, key=lambda rp: (abs(rp[1] - target), max(rp[0]) - min(rp[0]), rp[0]))[0]


def matched_ranks(in_modes, out_modes, target: int, top: int = 8) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(TT inner ranks, TR bond ranks) with parameter counts nearest ``target``, each rank at most ``top``
    (TR bonds at least 2)."""
    d, sizes = len(in_modes), [i * j for i, j in zip(in_modes, out_modes)]
    tt, tr = [], []
    for rk in itertools.product(range(1, top + 1), repeat=d - 1):
        full = (1,) + rk + (1,)
        tt.append((rk, sum(full[k] * m * full[k + 1] for k, m in enumerate(sizes))))
    for rk in itertools.product(range(2, top + 1), repeat=d):  # a bond of 1 would make the ring a (rotated) TT
        tr.append((rk, sum(rk[k - 1] * m * rk[k] for k, m in enumerate(sizes))))
    return _nearest(target, tt), _nearest(target, tr)


#: The clock the medians are read from: wall time, or with ``--clock cpu`` this thread's CPU time
#: (steadier on a shared, loaded machine).
CLOCK = time.perf_counter


def _medians(fns: dict, repeats: int) -> dict:
    """Median milliseconds per method, after one warm-up each, methods shuffled per repeat."""
    samples = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    names, rng = list(fns), random.Random(0)
    for _ in range(repeats):
        rng.shuffle(names)
        for name in names:
            t0 = CLOCK()
            fns[name]()
            samples[name].append(CLOCK() - t0)
    return {name: 1e3 * statistics.median(v) for name, v in samples.items()}


def _runner(product, x, params, backward: bool):
    def run():
        y = product(x)
        if backward:
            torch.autograd.grad(y.sum(), [x] + params)
    return run


def one_einsum(M: TRMatrix):
    """``x @ W`` as the TR module ran it before the planner: one opt_einsum expression over x and every core,
    along opt_einsum's FLOP-optimal order (dynamic programming, outer products allowed), per batch size."""
    spec, cache = M.spec, {}
    eq = ",".join(spec.network().terms) + "->" + spec.network().output

    def product(x):
        b = x.shape[0]
        if b not in cache:
            shapes = [(b,) + spec.in_modes] + [tuple(c.shape) for c in M.cores]
            opt = opt_einsum.paths.DynamicProgramming(minimize="flops", search_outer=True)
            cache[b] = opt_einsum.contract_expression(eq, *shapes, optimize=opt)
        return cache[b](x.reshape((b,) + spec.in_modes), *M.cores, backend="torch").reshape(b, spec.out_size)
    return product


def bench_size(name: str, in_modes, out_modes, batches, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    bt_spec = btcore.BTSpec(in_modes, out_modes, 4, 2)
    tt_ranks, tr_ranks = matched_ranks(in_modes, out_modes, bt_spec.params)
    std = (3 * bt_spec.in_size) ** -0.5
    bt = btcore.BTMatrix.random(in_modes, out_modes, 4, 2, std=std, seed=0)
    tt = btcore.TTMatrix.random(in_modes, out_modes, tt_ranks, std=std, seed=0)
    tr = TRMatrix.random(in_modes, out_modes, tr_ranks, std=std, seed=0)
    W = tr.to_dense()
    formats = {  # name: (product, its tensors, params)
        "dense": (lambda x, W=W: x @ W, [W], W.numel()),
        "BT R=4 N=2": (lambda x, M=bt: btcore.matmul(x, M), bt.factors + [bt.core], bt.num_params),
        f"TT {'-'.join(map(str, (1,) + tt_ranks + (1,)))}": (lambda x, M=tt: btcore.matmul(x, M), tt.cores,
                                                           tt.num_params),
        f"TR {'-'.join(map(str, tr_ranks))}": (lambda x, M=tr: btcore.matmul(x, M), tr.cores, tr.num_params),
        "TR path": (lambda x, M=tr: btcore.matmul(x, M, method="path"), tr.cores, tr.num_params),
        "TR one einsum": (one_einsum(tr), tr.cores, tr.num_params),
    }
    specs = dict(zip(formats, (None, bt.spec, tt.spec, tr.spec, tr.spec, tr.spec)))  # forward multiply-adds
    for _, tensors, _ in formats.values():
        for t in tensors:
            t.requires_grad_(True)
    rows = []
    for batch in batches:
        x = torch.randn(batch, bt_spec.in_size, requires_grad=True)
        # the products must agree before they are timed (TR against its own dense W)
        torch.testing.assert_close(btcore.matmul(x, tr), x @ W, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(formats["TR one einsum"][0](x), x @ W, rtol=1e-3, atol=1e-4)
        for direction in ("forward", "forward+backward"):
            fns = {k: _runner(p, x, ts, direction != "forward") for k, (p, ts, _) in formats.items()}
            med = _medians(fns, repeats)
            for k, (_, _, params) in formats.items():
                spec = specs[k]
                macs = batch * W.numel() if spec is None else spec.macs(batch) * batch
                method = "path" if k == "TR path" else "contract"
                scheme = "gemm" if spec is None else "opt_einsum" if k == "TR one einsum" else btcore.plan_matmul(
                    spec, batch, method, direction="train" if direction != "forward" else "forward").name
                rows.append({"size": name, "batch": batch, "direction": direction, "format": k, "params": params,
                             "ms": med[k], "vs_dense": med["dense"] / med[k], "macs": macs, "scheme": scheme})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per method (medians reported)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: this thread's CPU time (steadier on a shared machine)")
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes (default 16,256)")
    ap.add_argument("--quick", action="store_true", help="the app size only, 3 repeats")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    global CLOCK
    if args.clock == "cpu":
        if args.threads != 1:
            ap.error("--clock cpu measures one thread: use it with --threads 1")
        CLOCK = time.thread_time
    sizes = {"app": SIZES["app"]} if args.quick else SIZES
    if args.batches:
        batches = tuple(int(b) for b in args.batches.split(","))
        sizes = {k: (i, o, batches) for k, (i, o, _) in sizes.items()}
    repeats = 3 if args.quick else args.repeats
    print(f"# float32, {args.threads} thread(s), median of {repeats}, {args.clock} ms; x = dense time / format time")
    print(f"# load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at the start")
    print(f"{'size':6} {'batch':>5} {'direction':17} {'format':18} {'scheme':12} {'params':>10} {'MMACs':>9} {'ms':>9} "
          f"{'x':>7}")
    for name, (im, om, batches) in sizes.items():
        print(f"# load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} before {name}")
        for row in bench_size(name, im, om, batches, repeats):
            print(f"{row['size']:6} {row['batch']:>5} {row['direction']:17} {row['format']:18} {row['scheme']:12} "
                  f"{row['params']:>10,} "
                  f"{row['macs'] / 1e6:>9.1f} {row['ms']:>9.3f} {row['vs_dense']:>7.2f}")


if __name__ == "__main__":
    main()
