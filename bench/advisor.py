"""The format advisor against an exhaustive search over its own candidates, on real photos.

    python bench/advisor.py [--quick]

One thread (set before numpy/torch are imported). Targets: scikit-image's bundled photos as float64
matrices (camera and coins at 256 x 256, camera and astronaut in grey at 512 x 512; ``--quick``
keeps the 256 x 256 ones). For each photo and a budget of 1%, 3% and 10% of its I * J parameters,
:func:`btcore.suggest_formats` runs once (its seconds are wall clock of that call); then every
candidate of its table that could be the best at the budget (for each format and tensorization, the
one with the most parameters within the budget) is refitted with the advisor's full settings
(:data:`btcore.decompose.settings.ADVISOR_FULL`, as :func:`btcore.decompose.fit_task` runs them
per format), and the lowest error found is the reference. The table gives the advisor's pick, its
error over the reference (the target is at most 1.02) and the seconds.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import time

import numpy as np
import torch

torch.set_num_threads(1)

from btcore.decompose import FitTask, fit_task, recommended, suggest_formats
from btcore.decompose.settings import ADVISOR_FULL


def photos(quick: bool = False) -> list[tuple[str, np.ndarray]]:
    """(name, W) of the photos, grey levels in [0, 1] as float64."""
    import skimage.color
    import skimage.data

    cam = skimage.data.camera().astype(np.float64) / 255.0
    out = [("camera 256", cam[::2, ::2].copy()), ("coins 256", skimage.data.coins()[:256, :256] / 255.0)]
    if not quick:
        out += [("camera 512", cam), ("astronaut 512", skimage.color.rgb2gray(skimage.data.astronaut()))]
    return out


def exhaustive_best(W, df, budget: int, per_group: int = 1) -> tuple[float, str]:
    """The lowest error of full fits of the table's candidates nearest the budget (see the module doc)."""
    best, label = np.inf, ""
    df = df[df["params"] <= budget]
    for _, group in df.groupby(["format", "in_modes", "out_modes"], sort=False):
        for _, r in group.nlargest(per_group, "params").iterrows():
            task = FitTask(r.format, tuple(r.ranks), None if r.blocks is None else int(r.blocks), int(r.params))
            _, info = fit_task(W, r.in_modes, r.out_modes, task, seed=0, fit_kwargs={"settings": ADVISOR_FULL})
            err = min(info.relative_error, float(r.error))  # the advisor's own fit of it counts too
            if err < best:
                best, label = err, f"{r.format} {r.in_modes}->{r.out_modes} {r.ranks} N={r.blocks}"
    return best, label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 256 x 256 photos only")
    ap.add_argument("--photo", default=None, help="one photo by name (e.g. 'camera 512')")
    args = ap.parse_args()
    print(f"threads: 1, load average {os.getloadavg()[0]:.1f}")
    print("| photo | budget | advisor's pick | pick error | best full fit | pick / best | advisor s "
          "| candidates | best found by |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    for name, W in photos(args.quick):
        if args.photo is not None and name != args.photo:
            continue
        for share in (0.01, 0.03, 0.10):
            budget = int(share * W.size)
            t = time.perf_counter()
            df = suggest_formats(W, budget=budget)
            sec = time.perf_counter() - t
            pick = recommended(df)
            best, label = exhaustive_best(W, df, budget)
            best = min(best, float(df["error"].min()))
            print(f"| {name} | {budget:,} ({share:.0%}) | {pick.format} {pick.ranks} N={pick.blocks} "
                  f"| {pick.error:.4f} | {best:.4f} | {pick.error / best:.3f} | {sec:.1f} | {len(df)} | {label} |",
                  flush=True)


if __name__ == "__main__":
    main()
