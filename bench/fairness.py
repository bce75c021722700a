"""Tucker and CP at equal ranks: btcore's fits next to tensorly's ``tucker`` and ``parafac``.

    python bench/fairness.py [--quick]

One thread (set before numpy/torch are imported). Real targets nobody here made: scikit-image's
bundled photos (camera at 256 x 256 and 512 x 512, astronaut in grey at 512 x 512) and
scikit-learn's digits data matrix (its first 1,792 rows, 1792 x 64), each tensorized as btcore
tensorizes it (the interleaved tensor of the in and out modes). tensorly runs with its own
defaults (``tucker``: HOOI from the SVD start, ``parafac``: CP-ALS from the SVD start, 100
iterations at most) on the same numpy tensor, with its numpy backend (checked, never changed).
Errors are ||W - M|| / ||W|| in float64. Times are the fastest of ``--repeats`` runs (default 3),
as process CPU seconds (far less load-dependent on a shared machine) and as the ratio of wall
seconds; btcore's include its checks, the interleaving and building the BT matrix. ``--quick``
keeps the 256 x 256 and digits targets.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import sys
import time
from pathlib import Path

# this checkout's btcore, not an installed one (a script's sys.path starts at bench/)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import warnings

import numpy as np
import torch

torch.set_num_threads(1)

from btcore.decompose import fit_cp, fit_tucker, interleave


def targets(quick: bool = False) -> list[tuple[str, np.ndarray, tuple, tuple]]:
    """(name, W float64, in_modes, out_modes) of the real targets."""
    import skimage.color
    import skimage.data
    from sklearn.datasets import load_digits

    cam = skimage.data.camera().astype(np.float64) / 255.0
    out = [("camera 256", cam[::2, ::2].copy(), (4, 4, 4, 4), (4, 4, 4, 4)),
           ("digits 1792x64", load_digits().data[:1792].astype(np.float64), (7, 4, 8, 8), (2, 2, 4, 4))]
    if not quick:
        astro = skimage.color.rgb2gray(skimage.data.astronaut()).astype(np.float64)
        out += [("camera 512", cam, (8, 8, 8), (8, 8, 8)), ("astronaut 512", astro, (4, 4, 4, 8), (4, 4, 4, 8))]
    return out


def _timed(fn, repeats: int):
    """(result, wall seconds, CPU seconds) of ``fn()``: the fastest of ``repeats`` runs (the result of the last)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return out, min(wall), min(cpu)


def tensorly_fit(kind: str, W: np.ndarray, im, om, rank: int, repeats: int = 1) -> tuple[float, float, float]:
    """(relative error, wall s, CPU s) of tensorly's ``tucker`` (uniform rank) or ``parafac`` with its
    defaults on numpy arrays (the interleaving is not timed)."""
    import tensorly as tl
    from tensorly.decomposition import parafac, tucker

    if tl.get_backend() != "numpy":  # never change the process-wide backend
        raise RuntimeError(f"tensorly's backend is {tl.get_backend()!r}; this comparison needs numpy")
    T = np.asarray(interleave(W, im, om))

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rank above a mode size: tensorly fills columns and says so
            if kind == "Tucker":
                return tl.tucker_to_tensor(tucker(T, rank=[min(rank, n) for n in T.shape], random_state=0))
            return tl.cp_to_tensor(parafac(T, rank=rank, random_state=0))

    M, sec, cpu = _timed(run, repeats)
    return float(np.linalg.norm(T - M) / np.linalg.norm(T)), sec, cpu


def btcore_fit(kind: str, W: np.ndarray, im, om, rank: int, repeats: int = 1) -> tuple[float, float, float, str]:
    """(relative error, wall s, CPU s, status) of btcore's default fit_tucker / fit_cp (from W itself)."""
    fit = fit_tucker if kind == "Tucker" else fit_cp
    (_, info), sec, cpu = _timed(lambda: fit(W, im, om, rank, warn=False), repeats)
    return info.relative_error, sec, cpu, info.status


RANKS = {"Tucker": (4, 8), "CP": (5, 20)}
#: CP at the advisor's ranks: (target name, in modes, out modes, ranks) for the second table.
LARGE_CP = [("camera 512", (4, 4, 4, 2, 2, 2), (4, 4, 4, 2, 2, 2), (42, 128, 429))]


def linesearch_rows(W: np.ndarray, im, om, rank: int, iters: int, repeats: int = 1) -> tuple:
    """(btcore error, tensorly error, btcore CPU s, tensorly CPU s) of ``iters`` iterations of CP-ALS with
    tensorly's line search from the same start: btcore's ``_parafac`` (dimension-tree MTTKRPs) against
    tensorly's ``parafac(linesearch=True)`` itself, on the unit-norm interleaved tensor."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    from btcore.decompose import tucker_cp as tc

    if tl.get_backend() != "numpy":
        raise RuntimeError(f"tensorly's backend is {tl.get_backend()!r}; this comparison needs numpy")
    T = np.asarray(interleave(W, im, om))
    T = T / np.linalg.norm(T)
    start = tc._cp_start(T, rank, 0)
    (A, _), _, cb = _timed(lambda: tc._parafac(T, start, iters, 0.0, lambda e: False), repeats)

    def ref():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return parafac(T, rank, n_iter_max=iters, init=(None, [f.copy() for f in start]), tol=0.0,
                           linesearch=True, return_errors=True)[0]

    cp, _, ct = _timed(ref, repeats)
    return tc._cp_error(T, A), float(np.linalg.norm(T - tl.cp_to_tensor(cp))), cb, ct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 256 x 256 and digits targets only")
    ap.add_argument("--repeats", type=int, default=3, help="runs per fit; the fastest is reported (default 3)")
    args = ap.parse_args()
    print(f"threads: 1, load average {os.getloadavg()[0]:.1f}, fastest of {args.repeats} runs")
    print("| target | modes | format | rank | btcore error | tensorly error | error ratio | btcore CPU s "
          "| tensorly CPU s | CPU ratio | wall ratio | btcore status |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, W, im, om in targets(args.quick):
        modes = f"{'x'.join(map(str, im))} -> {'x'.join(map(str, om))}"
        for kind, ranks in RANKS.items():
            for r in ranks:
                eb, sb, cb, status = btcore_fit(kind, W, im, om, r, args.repeats)
                et, st, ct = tensorly_fit(kind, W, im, om, r, args.repeats)
                print(f"| {name} | {modes} | {kind} | {r} | {eb:.5f} | {et:.5f} | {eb / et:.4f} | {cb:.3f} "
                      f"| {ct:.3f} | {cb / ct:.2f} | {sb / st:.2f} | {status} |", flush=True)
    print("\nCP-ALS with line search at the advisor's ranks, 80 iterations from the same start: btcore's "
          "dimension-tree MTTKRPs against tensorly's parafac(linesearch=True)")
    print("| target | modes | CP rank | btcore error | tensorly error | btcore CPU s | tensorly CPU s | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    named = {name: W for name, W, _, _ in targets(False)}
    for name, im, om, ranks in ([] if args.quick else LARGE_CP):
        for r in ranks:
            eb, et, cb, ct = linesearch_rows(named[name], im, om, r, 80, 1)
            print(f"| {name} | {'x'.join(map(str, im))} -> {'x'.join(map(str, om))} | {r} | {eb:.5f} | {et:.5f} "
                  f"| {cb:.2f} | {ct:.2f} | {cb / ct:.2f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
