"""Benchmark of the decompositions: btcore's BT ALS next to tensorly's Tucker and TT-SVD.

    python bench/decompose.py [--repeats 3] [--quick] [--advise]

One thread everywhere (set before numpy/torch are imported). Two targets from the issue:

* A: exact BT (N=2, R=3) + 1% noise, 1024 x 1024, modes 4x8x8x4 -> 4x8x8x4; fit_bt N=4, R=8.
* B: smooth Gaussian kernel, 57,600 x 256, modes 8x20x20x18 -> 4x4x4x4; fit_bt N=6, R=4.

For each: btcore fit_bt (defaults), btcore fit_tt, btcore fit_tucker at the Tucker rank whose
parameter count is closest to the BT one, tensorly ``tucker`` (HOOI, SVD init) at that rank and
tensorly ``tensor_train_matrix`` at the TT rank closest to the BT budget. Times are medians of
``--repeats`` runs, wall clock and process CPU time (on a shared, loaded machine the CPU time is
the fairer figure for one-thread code); errors are ||W - M|| / ||W|| in float64.

``--page`` times the Approximation page's default job instead (its worker without Streamlit: the
default target, budget 1,000 and the 5-budget sweep, quick effort). ``--advise`` runs the format advisor instead: ``suggest_formats`` on the Approximation page's
default target (exact BT N=2, R=3 + 1% noise, 256 x 256 as 4x4x4x4 -> 4x4x4x4) at a budget of
2,000 parameters, and prints its time, its recommendation and the Pareto front as a Markdown table.
``--thorough`` compares BT's default settings with its "thorough" effort on the camera photo and the
digits (error ratio and CPU seconds).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import statistics
import time

import numpy as np
import torch

torch.set_num_threads(1)

from btcore import bt_params
from btcore.decompose import budget_candidates, fit_bt, fit_tt, fit_tucker
from btcore.target_matrices import bt_structured, smooth_kernel


CPU = {}


def _median_time(fn, repeats):
    """Median wall seconds (and, in CPU[id(result)], median CPU seconds: fairer on a shared machine)."""
    times, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    CPU["last"] = statistics.median(cpus)
    return statistics.median(times), out


def _tensorly_rows(W, im, om, tucker_rank, tt_ranks, repeats):
    try:
        import tensorly as tl
        from tensorly.decomposition import tensor_train_matrix, tucker
        from tensorly.tt_matrix import tt_matrix_to_tensor
    except ImportError:
        return []
    rows = []
    d = len(im)
    sizes = [i * j for i, j in zip(im, om)]
    perm = [p for k in range(d) for p in (k, d + k)]
    T = W.reshape(im + om).transpose(perm).reshape(sizes)  # numpy: tensorly's numpy backend
    with tl.backend_context("numpy", local_threadsafe=True) if tl.get_backend() != "numpy" else _null():
        ranks = [min(tucker_rank, m) for m in sizes]

        def run_tucker():
            return tucker(T, rank=ranks, init="svd", n_iter_max=100, tol=1e-6)

        sec, (core, factors) = _median_time(run_tucker, repeats)
        rec = tl.tucker_to_tensor((core, factors))
        err = np.linalg.norm(T - rec) / np.linalg.norm(T)
        params = int(np.prod(core.shape) + sum(f.size for f in factors))
        rows.append(("tensorly tucker (HOOI)", f"R={tucker_rank}", params, err, sec, CPU["last"], ""))

        def run_tt():
            return tensor_train_matrix(W.reshape(im + om), list(tt_ranks))

        sec, ttm = _median_time(run_tt, repeats)
        rec = np.asarray(tt_matrix_to_tensor(ttm)).reshape(W.shape)
        err = np.linalg.norm(W - rec) / np.linalg.norm(W)
        params = int(sum(f.size for f in ttm.factors))
        rows.append(("tensorly tensor_train_matrix", f"r={tt_ranks[1]}", params, err, sec, CPU["last"], ""))
    return rows


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def bench_case(name, W, im, om, R, N, repeats):
    budget = bt_params(im, om, R, N)
    cands = budget_candidates(im, om, budget, formats=("Tucker", "TT"), per_format=1)
    tucker_rank = next(c.rank for c in cands if c.format == "Tucker")
    tt_ranks = next(c.ranks for c in cands if c.format == "TT")
    rows = []
    sec, (M, info) = _median_time(lambda: fit_bt(W, im, om, R, N, seed=0), repeats)
    rows.append(("btcore fit_bt (ALS)", f"N={N}, R={R}", M.num_params, info.relative_error, sec, CPU["last"],
                 f"{info.iterations} sweeps kept / {info.total_iterations} total, {info.reason}"))
    sec, (M, info) = _median_time(lambda: fit_tucker(W, im, om, tucker_rank, seed=0), repeats)
    rows.append(("btcore fit_tucker (HOOI)", f"R={tucker_rank}", M.num_params, info.relative_error, sec,
                 CPU["last"], f"{info.iterations} sweeps, {info.reason}"))
    sec, (M, info) = _median_time(lambda: fit_tt(W, im, om, tt_ranks), repeats)
    rows.append(("btcore fit_tt (TT-SVD)", f"r={tt_ranks[1]}", M.num_params, info.relative_error, sec, CPU["last"],
                 ""))
    rows += _tensorly_rows(W, im, om, tucker_rank, tt_ranks, repeats)
    print(f"\n### {name}: {W.shape[0]:,} x {W.shape[1]:,}, modes {'x'.join(map(str, im))} -> "
          f"{'x'.join(map(str, om))}; BT budget {budget:,} parameters; median of {repeats}, 1 thread\n")
    print("| method | format | params | rel. error | wall s | CPU s | notes |")
    print("|---|---|---|---|---|---|---|")
    for meth, fmt, params, err, sec, cpu, note in rows:
        print(f"| {meth} | {fmt} | {params:,} | {err:.3g} | {sec:.2f} | {cpu:.2f} | {note} |")
    return rows


def bench_advise(budget: int = 2000) -> None:
    """suggest_formats on the page's default target: time, recommendation, Pareto front (Markdown)."""
    from btcore.decompose import recommended, suggest_formats

    im = om = (4, 4, 4, 4)
    W = bt_structured(im, om, seed=0, rank=3, blocks=2, noise=0.01)
    c0, t0 = time.process_time(), time.perf_counter()
    df = suggest_formats(W, budget=budget)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    best = recommended(df)
    print(f"\n### Advisor: exact BT (N=2, R=3) + 1% noise, 256 x 256, budget {budget:,}\n")
    print(f"{len(df)} candidates over {len(df.attrs['tensorizations'])} tensorizations in {sec:.1f} s "
          f"({cpu:.1f} s CPU); by stage: " + ", ".join(f"{k} {v}" for k, v in df["stage"].value_counts().items()))
    print(f"Recommended ({df.attrs['rule']}): {best.format} {best.in_modes} -> {best.out_modes}, ranks "
          f"{best.ranks}, N={best.blocks}, {best.params:,} parameters, error {best.error:.4g}\n")
    print("| format | in modes | out modes | ranks | N | params | error | stage |")
    print("|---|---|---|---|---|---|---|---|")
    for _, r in df[df["pareto"]].iterrows():
        x = lambda t: "x".join(map(str, t))  # noqa: E731
        print(f"| {r.format} | {x(r.in_modes)} | {x(r.out_modes)} | {'-'.join(map(str, r.ranks))} | "
              f"{'' if r.blocks is None else r.blocks} | {r.params:,} | {r.error:.4g} | {r.stage} |")


def bench_page(repeats: int = 3) -> None:
    """The Approximation page's default job (its worker, without Streamlit): median wall seconds and the
    slowest fits of the last run."""
    import sys
    from types import SimpleNamespace

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app"))
    from approximation import plan
    from approximation.run import make_worker

    inputs = plan.SpecInputs("4x4x4x4", "4x4x4x4", target="bt", target_kwargs={"noise": 0.01})
    spec = plan.build_spec(inputs)
    times, cpus, res = [], [], None
    for _ in range(repeats):
        job = SimpleNamespace(should_stop=False, progress=0.0, update=lambda **kw: None)
        c0, t0 = time.process_time(), time.perf_counter()
        res = make_worker(spec, None, {})(job)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(f"\n### Approximation page, default job: {len(spec.tasks)} fits, median of {repeats}: "
          f"{statistics.median(times):.2f} s ({statistics.median(cpus):.2f} s CPU)\n")
    print("| format | params | error |")
    print("|---|---|---|")
    for row in res.main:
        print(f"| {row.format} {row.ranks} | {row.params:,} | {row.rel_error:.4g} |")
    slow = sorted(((info.seconds, f"{info.format} {info.ranks} N={info.blocks}", info.reason)
                   for _, info in res.new_fits.values()), reverse=True)[:6]
    print("\nslowest fits: " + "; ".join(f"{w} {s:.2f} s ({r})" for s, w, r in slow))


#: (R, N) of the default-vs-thorough comparison.
THOROUGH_RANKS = ((4, 2), (3, 4), (6, 2))


def bench_thorough() -> None:
    """BT's default settings next to its "thorough" effort on real targets (the camera photo at
    256 x 256 as 4x4x4x4 -> 4x4x4x4 and the digits matrix 1792 x 64 as 7x4x8x8 -> 2x2x4x4, built as
    bench/fairness.py builds them): errors, their ratio and process CPU seconds (one thread)."""
    from btcore.decompose import EFFORTS
    import skimage.data
    from sklearn.datasets import load_digits

    cam = skimage.data.camera().astype(np.float64) / 255.0
    targets = [("camera 256", cam[::2, ::2].copy(), (4,) * 4, (4,) * 4),
               ("digits 1792x64", load_digits().data[:1792].astype(np.float64), (7, 4, 8, 8), (2, 2, 4, 4))]
    print(f"threads: 1, load average {os.getloadavg()[0]:.1f}")
    print("| target | R | N | default error | thorough error | default / thorough | default CPU s | thorough CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, W, im, om in targets:
        for R, N in THOROUGH_RANKS:
            row = []
            for settings in (None, EFFORTS["thorough"]):
                c = time.process_time()
                _, info = fit_bt(W, im, om, R, N, settings=settings, warn=False)
                row.append((info.relative_error, time.process_time() - c))
            (ed, cd), (et, ct) = row
            print(f"| {name} | {R} | {N} | {ed:.5f} | {et:.5f} | {ed / et:.4f} | {cd:.1f} | {ct:.1f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repeat, case A only")
    ap.add_argument("--advise", action="store_true", help="the format advisor on the page's default target only")
    ap.add_argument("--page", action="store_true", help="the Approximation page's default job only")
    ap.add_argument("--thorough", action="store_true", help="BT default vs thorough on the camera photo and digits")
    args = ap.parse_args(argv)
    if args.thorough:
        bench_thorough()
        return
    if args.advise:
        bench_advise()
        return
    if args.page:
        bench_page(args.repeats)
        return
    reps = 1 if args.quick else args.repeats
    im = om = (4, 8, 8, 4)
    W = bt_structured(im, om, seed=0, rank=3, blocks=2, noise=0.01)
    bench_case("A: exact BT (N=2, R=3) + 1% noise", W, im, om, 8, 4, reps)
    if args.quick:
        return
    im, om = (8, 20, 20, 18), (4, 4, 4, 4)
    W = smooth_kernel(im, om)
    bench_case("B: smooth kernel (UCF11 input shape)", W, im, om, 4, 6, reps)


if __name__ == "__main__":
    main()
