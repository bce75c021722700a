"""Tucker and CP at equal ranks: btcore's fits next to tensorly's ``tucker`` and ``parafac``.

    python bench/fairness.py [--quick]

One thread (set before numpy/torch are imported). Real targets nobody here made: scikit-image's
bundled photos (camera at 256 x 256 and 512 x 512, astronaut in grey at 512 x 512) and
scikit-learn's digits data matrix (its first 1,792 rows, 1792 x 64), each tensorized as btcore
tensorizes it (the interleaved tensor of the in and out modes). tensorly runs with its own
defaults (``tucker``: HOOI from the SVD start, ``parafac``: CP-ALS from the SVD start, 100
iterations at most) on the same numpy tensor, with its numpy backend (checked, never changed).
Errors are ||W - M|| / ||W|| in float64; seconds are wall clock of one run. ``--quick`` keeps the
256 x 256 and digits targets.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import time
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


def tensorly_fit(kind: str, W: np.ndarray, im, om, rank: int) -> tuple[float, float]:
    """(relative error, seconds) of tensorly's ``tucker`` (uniform rank) or ``parafac`` on numpy arrays."""
    import tensorly as tl
    from tensorly.decomposition import parafac, tucker

    if tl.get_backend() != "numpy":  # never change the process-wide backend
        raise RuntimeError(f"tensorly's backend is {tl.get_backend()!r}; this comparison needs numpy")
    T = interleave(W, im, om)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank above a mode size: tensorly caps it and says so
        if kind == "Tucker":
            M = tl.tucker_to_tensor(tucker(T, rank=[min(rank, n) for n in T.shape], random_state=0))
        else:
            M = tl.cp_to_tensor(parafac(T, rank=rank, random_state=0))  # columns beyond a mode size: seeded
    sec = time.perf_counter() - t
    return float(np.linalg.norm(T - M) / np.linalg.norm(T)), sec


def btcore_fit(kind: str, W: np.ndarray, im, om, rank: int) -> tuple[float, float, str]:
    """(relative error, seconds, status) of btcore's default fit_tucker / fit_cp."""
    fit = fit_tucker if kind == "Tucker" else fit_cp
    t = time.perf_counter()
    _, info = fit(W, im, om, rank, warn=False)
    return info.relative_error, time.perf_counter() - t, info.status


RANKS = {"Tucker": (4, 8), "CP": (5, 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 256 x 256 and digits targets only")
    args = ap.parse_args()
    print(f"threads: 1, load average {os.getloadavg()[0]:.1f}")
    print("| target | modes | format | rank | btcore error | tensorly error | btcore / tensorly error "
          "| btcore s | tensorly s | btcore status |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name, W, im, om in targets(args.quick):
        modes = f"{'x'.join(map(str, im))} -> {'x'.join(map(str, om))}"
        for kind, ranks in RANKS.items():
            for r in ranks:
                eb, sb, status = btcore_fit(kind, W, im, om, r)
                et, st = tensorly_fit(kind, W, im, om, r)
                print(f"| {name} | {modes} | {kind} | {r} | {eb:.5f} | {et:.5f} | {eb / et:.4f} | {sb:.2f} "
                      f"| {st:.2f} | {status} |", flush=True)


if __name__ == "__main__":
    main()
