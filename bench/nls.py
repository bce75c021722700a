"""ALS (fit_bt) next to ALS-start + NLS and nls_fit (algebraic start + NLS) on exact BT targets.

    python bench/nls.py [--seeds 30] [--quick [--hard]] [--no-large]
    python bench/nls.py --hard-only [--seeds 30]      # the hard table alone (exact and 1e-3 noise)
    python bench/nls.py --operator                    # the Gauss-Newton product (J^T J) v alone

One thread. Suites (exact targets ``BTMatrix.random(..., seed=s)``, float64):

* swamp: in_modes = out_modes = (4, 4, 4), N = 3, R = 4 (ALS stays at ~0.2 on most seeds), seeds 0..n-1;
* mixed: the 30 random small shapes of tests/test_nls.py (d = 3..5, R = 2..4, N = 2..4, at least two
  modes with M_k >= N R);
* hard (< 2 modes): random small shapes with fewer than two modes of size >= N R (no algebraic start);
* hard (no mode): d = 4..6, I_k, J_k = 2..4, R = 2..4, N = 2..5 with no mode of size >= N R
  (``hard_bt_cases``), exact and with 1e-3 Gaussian noise (column "within 1.05x": fits whose error is at
  most 1.05 times the noise's share of the target's norm);
* random: random small shapes drawn without any restriction (both regimes, as they come).

Columns: fits with relative error < 1e-6 out of the suite, median and max seconds per fit (wall clock;
the hard tables give process CPU seconds, far less load-dependent on a shared machine), and fits
that report "converged" with an error above 1e-3 and above 1e-8 (both should be 0). Budgets are
counted in work, so the recovered counts do not depend on the machine's load; the seconds do. "fit_bt als/auto/nls" are
``fit_bt(..., method=...)`` with defaults. "ALS+NLS"
is 5 sweeps of decompose's joint ALS from a random orthonormal start, then ``nls_refine``
(max_iter 100). Finally one large case: 1024 x 1024 (modes 4x8x8x4 -> 4x8x8x4), exact N=4 R=8.

``--operator`` times the product ``(J^T J) v`` that every CG iteration of Gauss-Newton makes (one
vector, as in CG): ``_GN.apply`` next to the formulation it replaced (one dual chain per skipped
mode, contractions by einsum; kept here as the reference), the largest difference between them, and
the median of repeats per product.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import statistics
import time

import sys

import torch

torch.set_num_threads(1)
_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, _ROOT)  # this checkout's btcore
sys.path.insert(0, os.path.join(_ROOT, "tests"))  # the tests' case draws

from btcore import BTMatrix
from btcore.decompose import fit_bt, interleave
from btcore.decompose.als import ALSRun, random_orthonormal
from btcore.decompose.nls import _GN, _cross_gram, nls_fit, nls_refine, random_start
from decompose_cases import hard_bt_cases, noisy, random_bt_cases


def _cases(n, seed, hard):
    """``n`` random small shapes; ``hard`` True/False keeps only shapes without/with the algebraic regime,
    None keeps every draw (the unrestricted suite). The same draws as the tests' suites."""
    return random_bt_cases(n, seed, regime={None: None, False: "algebraic", True: "hard"}[hard])


def _als(W, T, im, om, R, N, s):
    _, info = fit_bt(W, im, om, R, N, method="als", warn=False)
    return info.relative_error, info.converged


def _auto(W, T, im, om, R, N, s):
    _, info = fit_bt(W, im, om, R, N, warn=False)
    return info.relative_error, info.converged


def _nls_method(W, T, im, om, R, N, s):
    _, info = fit_bt(W, im, om, R, N, method="nls", warn=False)
    return info.relative_error, info.converged


def _als_nls(W, T, im, om, R, N, s, sweeps=5):
    Tn = T / T.norm()
    g = torch.Generator().manual_seed(100 + s)
    U = [random_orthonormal((N, m, R), g, T.dtype, "cpu") for m in T.shape]
    als = ALSRun(Tn, U, 1e-12, 6)
    for _ in range(sweeps):
        als.sweep()
    res = nls_refine(Tn, als.U, als.C, max_iter=100)
    return res.rel_error, res.status == "converged"


def _nls_fit(W, T, im, om, R, N, s):
    res = nls_fit(T, (R,) * len(im), N, seed=s, max_iter=100)[0]
    return res.rel_error, res.status == "converged"


METHODS = {"fit_bt als": _als, "fit_bt auto": _auto, "fit_bt nls": _nls_method, "ALS+NLS": _als_nls,
           "nls_fit": _nls_fit}
FAST = ["fit_bt als", "fit_bt auto", "fit_bt nls"]


def _suite(name, cases, methods):
    rows = []
    for mname in methods:
        fn = METHODS[mname]
        ok, times, false_conv, conv8 = 0, [], 0, 0
        for im, om, R, N, s in cases:
            W = BTMatrix.random(im, om, R, N, seed=s, dtype=torch.float64).to_dense()
            T = interleave(W, im, om)
            t = time.perf_counter()
            err, conv = fn(W, T, im, om, R, N, s)
            times.append(time.perf_counter() - t)
            ok += err < 1e-6
            false_conv += bool(conv) and err > 1e-3  # "converged" far from the exact structure
            conv8 += bool(conv) and err > 1e-8  # "converged" above float64 precision on an exact target
        rows.append(f"| {name} | {mname} | {ok}/{len(cases)} | {statistics.median(times):.2f} | {max(times):.2f} "
                    f"| {false_conv} | {conv8} |")
        print(rows[-1], flush=True)
    return rows


def _hard_table(n):
    """The hard suite (no mode of size >= N R), exact and with 1e-3 noise, fit_bt auto and nls."""
    cases = hard_bt_cases(n, 1)
    print("| hard (no mode >= NR), d = 4..6, N = 2..5 | method | target | recovered (< 1e-6) / within 1.05x noise "
          "| median CPU s | max CPU s | slowest success, CPU s | 'converged' above 1e-8 (exact) |")
    print("|---|---|---|---|---|---|---|---|")
    for method in ("auto", "nls"):
        for level in (0.0, 1e-3):
            ok, cpus, conv8, slowest = 0, [], 0, 0.0
            for im, om, R, N, s in cases:
                W = BTMatrix.random(im, om, R, N, seed=s, dtype=torch.float64).to_dense()
                floor = 0.0
                if level:
                    W, floor = noisy(W, level, seed=s + 1)
                c = time.process_time()
                _, info = fit_bt(W, im, om, R, N, method=method, warn=False)
                cpus.append(time.process_time() - c)
                err = info.relative_error
                success = err < 1e-6 if not level else err <= 1.05 * floor
                ok += success
                slowest = max(slowest, cpus[-1]) if success else slowest
                conv8 += (not level) and info.converged and err > 1e-8
            print(f"| | {method} | {'exact' if not level else '1e-3 noise'} | {ok}/{len(cases)} "
                  f"| {statistics.median(cpus):.2f} | {max(cpus):.2f} | {slowest:.2f} | {conv8 if not level else '-'} |",
                  flush=True)


def _apply_einsum_chains(op, v):
    """(J^T J) v as computed before ``_GN.apply`` shared the chains' prefix: one dual chain per
    skipped mode and einsum contractions (the reference of ``--operator``)."""
    dU, dC = op.split(v)
    d, N, ranks = op.d, op.N, op.ranks
    NN, B = N * N, v.shape[0]
    Q = [_cross_gram(op.U[k], dU[k]) for k in range(d)]

    def chain(skip):
        states = op.chains[skip]
        E = dC.unsqueeze(1).expand((B, N) + tuple(dC.shape[1:])).reshape(B, NN, ranks[0], -1)
        for j, r in enumerate(ranks):
            E = E.reshape(B, NN, r, -1)
            if j != skip:
                E = torch.matmul(op.P[j].reshape(1, NN, r, r), E) + torch.matmul(Q[j].reshape(B, NN, r, r), states[j])
            E = E.transpose(2, 3).contiguous()
        return E.reshape((B, N, N) + ranks)

    hC = chain(d).sum(2)
    hU = []
    for k in range(d):
        A = op._rank_contract(chain(k), k)
        h = torch.einsum("mar,bnmrs->bnas", op.U[k], A) + torch.einsum("bmar,nmrs->bnas", dU[k], op.G[k])
        hU.append(h)
    return op.join(hU, hC)


def _operator_table(repeats=400):
    print("| modes M_k | R | N | parameters | einsum chains, ms | shared prefix + matmul, ms | ratio | max difference |")
    print("|---|---|---|---|---|---|---|---|")
    for sizes, R, N in [((6, 12, 6, 12), 4, 5), ((4, 6, 12, 8), 3, 5), ((6, 4, 6, 6, 4, 6), 2, 5),
                        ((12, 12, 12), 4, 4), ((16, 64, 64, 16), 8, 4)]:
        U, C = random_start(sizes, (R,) * len(sizes), N, seed=0)
        op = _GN(U, C)
        v = torch.randn(1, op.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        diff = float((op.apply(v) - _apply_einsum_chains(op, v)).abs().max())
        med = {}
        for name, fn in (("ref", lambda: _apply_einsum_chains(op, v)), ("new", lambda: op.apply(v))):
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            med[name] = statistics.median(ts) * 1e3
        print(f"| {'x'.join(map(str, sizes))} | {R} | {N} | {op.n_params:,} | {med['ref']:.3f} | {med['new']:.3f} "
              f"| {med['ref'] / med['new']:.2f}x | {diff:.1e} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="only the fit_bt methods, swamp and random suites")
    ap.add_argument("--hard", action="store_true", help="with --quick: the hard suite too")
    ap.add_argument("--no-large", action="store_true")
    ap.add_argument("--hard-only", action="store_true", help="only the hard table (no mode >= N R)")
    ap.add_argument("--operator", action="store_true", help="only the (J^T J) v product, before and now")
    args = ap.parse_args()
    n = args.seeds
    print(f"threads: 1, load average {os.getloadavg()[0]:.1f}")
    if args.operator:
        _operator_table()
        return
    if args.hard_only:
        _hard_table(n)
        return
    print("| suite | method | recovered (< 1e-6) | median s | max s | 'converged' with error > 1e-3 | > 1e-8 |")
    print("|---|---|---|---|---|---|---|")
    swamp = [((4, 4, 4), (4, 4, 4), 4, 3, s) for s in range(n)]
    methods = FAST if args.quick else list(METHODS)
    _suite("swamp (4,4,4)^2 N=3 R=4", swamp, methods)
    _suite("random (d=3..5, R=2..4, N=2..4, unrestricted)", _cases(n, 2, hard=None), FAST)
    if not args.quick:
        _suite("mixed (tests' 30 shapes)", _cases(n, 0, hard=False), methods)
    if not args.quick or args.hard:
        _suite("hard (< 2 modes >= NR)", _cases(n, 1, hard=True), FAST)
        print()
        _hard_table(n)
    if not args.no_large:
        im = om = (4, 8, 8, 4)
        W = BTMatrix.random(im, om, 8, 4, seed=0, dtype=torch.float64).to_dense()
        T = interleave(W, im, om)
        print()
        print("| 1024 x 1024, 4x8x8x4 -> 4x8x8x4, exact N=4 R=8 | rel. error | seconds | status |")
        print("|---|---|---|---|")
        t = time.perf_counter()
        _, info = fit_bt(W, im, om, 8, 4, warn=False)
        print(f"| fit_bt (auto) | {info.relative_error:.1e} | {time.perf_counter() - t:.1f} | {info.reason} |", flush=True)
        t = time.perf_counter()
        res, kind = nls_fit(T, (8,) * 4, 4, seed=0)
        print(f"| nls_fit ({kind} start) | {res.rel_error:.1e} | {time.perf_counter() - t:.1f} | {res.status} |",
              flush=True)
        t = time.perf_counter()
        Tn = T / T.norm()
        g = torch.Generator().manual_seed(100)
        U = [random_orthonormal((4, m, 8), g, T.dtype, "cpu") for m in T.shape]
        als = ALSRun(Tn, U, 1e-12, 6)
        for _ in range(5):
            als.sweep()
        t1 = time.perf_counter()
        res = nls_refine(Tn, als.U, als.C, max_iter=20)
        t2 = time.perf_counter()
        print(f"| 5 ALS sweeps + nls_refine (max_iter 20, {res.iterations} its, "
              f"{(t2 - t1) / max(res.iterations, 1):.2f} s/it) | {res.rel_error:.1e} | {t2 - t:.1f} | {res.status} |",
              flush=True)


if __name__ == "__main__":
    main()
