"""The format advisor against full fits of every candidate it considered, on real photos.

    python bench/advisor.py [--quick] [--photo "camera 512"] [--budgets 1,3,10] [--no-reference]

One thread (set before numpy/torch are imported). Targets: scikit-image's bundled photos as float64
grey levels in [0, 1]: camera and astronaut (in grey) at 256 x 256 (every second pixel) and at
512 x 512 (``--quick``: the 256 x 256 ones). For each photo and a budget of 1%, 3% and 10% of its
I * J parameters, :func:`btcore.suggest_formats` runs once; its wall and CPU seconds
(``time.process_time``, far less sensitive to other load on the machine) are printed. Then the
reference, the best full fit over what it considered: every candidate of its table that could be
the best at the budget is fitted with the advisor's full settings
(:data:`btcore.decompose.settings.ADVISOR_FULL`, per format as :func:`btcore.decompose.fit_task`
runs them): each BT row (one per tensorization and R: the most blocks within the budget), each CP
row, the largest TR row of each tensorization and the largest Tucker row of each whose HOSVD error
is within 10% of the best error found (HOOI gains a few percent over its HOSVD start); TT-SVD is
direct (its table error is its full fit) and a row the advisor fitted in full already has that error. The table gives the
pick, its error over the reference (the target is at most 1.02) and the seconds.
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

import numpy as np
import torch

torch.set_num_threads(1)

from btcore.decompose import FitTask, fit_task, recommended, suggest_formats
from btcore.decompose.settings import ADVISOR_FULL

#: Rows per (format, tensorization) the reference refits: all of BT's and CP's (one per rank), the
#: largest of Tucker's and TR's.
_PER_GROUP = {"BT": None, "CP": None, "Tucker": 1, "TR": 1}
#: Tucker rows whose HOSVD error lies this far above the best error are not refitted: HOOI gains a
#: few percent over its HOSVD start.
_TUCKER_SLACK = 1.1


def photos(quick: bool = False) -> list[tuple[str, np.ndarray]]:
    """(name, W) of the photos, grey levels in [0, 1] as float64."""
    import skimage.color
    import skimage.data

    cam = skimage.data.camera().astype(np.float64) / 255.0
    astro = skimage.color.rgb2gray(skimage.data.astronaut()).astype(np.float64)
    out = [("camera 256", cam[::2, ::2].copy()), ("astronaut 256", astro[::2, ::2].copy())]
    if not quick:
        out += [("camera 512", cam), ("astronaut 512", astro)]
    return out


def best_full_fit(W, df, budget: int) -> tuple[float, str, int]:
    """The lowest error over full fits of the table's candidates (see the module doc), its label and
    the number of fits run."""
    rows = df[df["params"] <= budget]
    best = float(rows["error"].min())
    first = rows.loc[rows["error"].idxmin()]
    label, fits = f"{first.format} {first.ranks} N={first.blocks} ({first.stage})", 0
    for (fmt, _, _), group in rows.groupby(["format", "in_modes", "out_modes"], sort=False):
        if fmt == "TT":
            continue
        n = _PER_GROUP[fmt]
        for _, r in (group if n is None else group.nlargest(n, "params")).iterrows():
            if r.stage == "full" or (fmt == "Tucker" and r.error > _TUCKER_SLACK * rows["error"].min()):
                continue
            task = FitTask(r.format, tuple(r.ranks), None if r.blocks is None else int(r.blocks), int(r.params))
            _, info = fit_task(W, r.in_modes, r.out_modes, task, seed=0, fit_kwargs={"settings": ADVISOR_FULL})
            fits += 1
            if info.relative_error < best:
                best = info.relative_error
                label = f"{r.format} {r.in_modes}->{r.out_modes} {r.ranks} N={r.blocks}"
    return best, label, fits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 256 x 256 photos only")
    ap.add_argument("--photo", default=None, help="one photo by name (e.g. 'camera 512')")
    ap.add_argument("--budgets", default="1,3,10", help="budgets in percent of I * J (default 1,3,10)")
    ap.add_argument("--no-reference", action="store_true", help="time the advisor only (no reference fits)")
    args = ap.parse_args()
    print(f"threads: 1, load average {os.getloadavg()[0]:.1f}")
    print("| photo | budget | advisor's pick | pick error | best full fit | pick / best | advisor s (wall) "
          "| advisor s (CPU) | candidates | reference fits | best found by |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    t_all = time.perf_counter()
    for name, W in photos(args.quick):
        if args.photo is not None and name != args.photo:
            continue
        for share in [float(b) / 100 for b in args.budgets.split(",")]:
            budget = int(share * W.size)
            t, c = time.perf_counter(), time.process_time()
            df = suggest_formats(W, budget=budget)
            sec, cpu = time.perf_counter() - t, time.process_time() - c
            pick = recommended(df)
            best, label, fits = (float(df["error"].min()), "(no reference)", 0) if args.no_reference \
                else best_full_fit(W, df, budget)
            print(f"| {name} | {budget:,} ({share:.0%}) | {pick.format} {'x'.join(map(str, pick.in_modes))}, "
                  f"ranks {'-'.join(map(str, pick.ranks))}, N={pick.blocks} | {pick.error:.4f} | {best:.4f} "
                  f"| {pick.error / best:.3f} | {sec:.1f} | {cpu:.1f} | {len(df)} | {fits} | {label} |", flush=True)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s wall, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
