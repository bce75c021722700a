"""Honest statuses and reproducible fits (btcore.decompose.bt and .nls): one test per status rule,
and the same fit bit-identical beside CPU-burning processes."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from btcore import BTMatrix
from btcore.decompose import fit_bt, interleave
from btcore.decompose.nls import nls_refine, random_start
from decompose_cases import bt_dense, random_bt_cases


def test_a_run_cut_by_its_sweep_budget_is_never_converged():
    # Tucker (HOOI) of a random matrix flattens within a few sweeps; with tol = 0 ALS never stops by
    # itself and gtol = 1 passes every gradient: the 40-sweep budget ends it, so "max_iter"
    W = np.random.default_rng(0).standard_normal((64, 8))
    _, info = fit_bt(W, (4, 4, 4), (2, 2, 2), 3, 1, method="als", restarts=1, max_iter=40, tol=0.0, gtol=1.0,
                     compress=False)
    assert info.iterations == 40
    assert info.errors[-11] - info.errors[-1] < 0.01 * info.errors[-11]  # not falling any more
    assert info.status == "max_iter" and not info.converged


def test_the_same_run_ending_on_its_own_test_is_converged():
    W = np.random.default_rng(0).standard_normal((64, 8))
    _, info = fit_bt(W, (4, 4, 4), (2, 2, 2), 3, 1, method="als", restarts=1, max_iter=200, tol=1e-9, gtol=1.0,
                     compress=False)
    assert info.iterations < 200 and info.status == "converged" and info.reason == "first-order"


def test_gauss_newton_never_converges_on_its_first_gradient_test():
    # tol = 1e3: the relative gradient passes at the start. Without history the test does not count:
    # the run steps until the error no longer falls
    im = om = (3, 3, 2)
    T = interleave(bt_dense(im, om, 2, 2, seed=4), im, om)
    U, C = random_start(T.shape, (2, 2, 2), 2, seed=1, scale=float(T.norm()))
    res = nls_refine(T, U, C, max_iter=200, tol=1e3, tol_step=1e-12)
    assert res.iterations >= 1 and len(res.history) >= 2
    assert res.history[-1] < res.history[0]
    h = res.history
    assert res.status == "converged" and (h[-2] - h[-1] <= 1e-3 * h[-2] or h[-1] < 1e-13)


def test_gauss_newton_cut_by_its_iteration_budget_is_max_iter():
    im = om = (3, 3, 2)
    T = interleave(bt_dense(im, om, 2, 2, seed=4), im, om)
    U, C = random_start(T.shape, (2, 2, 2), 2, seed=1, scale=float(T.norm()))
    res = nls_refine(T, U, C, max_iter=2, tol=1e-12)
    assert res.iterations == 2 and res.status == "max_iter"


def test_a_wall_clock_cap_says_time_limit_and_not_reproducible():
    im = om = (4, 4, 4)
    W = bt_dense(im, om, 4, 3, seed=1)
    _, info = fit_bt(W, im, om, 4, 3, seed=0, time_limit=0.0)
    assert info.status == "time_limit" and info.reason == "time_limit"
    assert not info.converged and not info.reproducible
    _, free = fit_bt(W, im, om, 4, 3, seed=0)
    assert free.reproducible and free.status == "converged"
    T = interleave(W, im, om)
    U, C = random_start(T.shape, (4, 4, 4), 3, seed=0, scale=float(T.norm()))
    assert nls_refine(T, U, C, time_limit=0.0).status == "time_limit"


@pytest.mark.slow
def test_no_converged_above_1e8_on_exact_targets():
    # exact BT targets of both regimes: a "converged" fit must have found the structure
    cases = random_bt_cases(10, 2) + random_bt_cases(4, 1, regime="hard")
    for im, om, R, N, s in cases:
        W = BTMatrix.random(im, om, R, N, seed=s, dtype=torch.float64).to_dense()
        for method in ("auto", "nls"):
            _, info = fit_bt(W, im, om, R, N, seed=0, method=method, warn=False)
            assert not (info.converged and info.relative_error > 1e-8), (im, om, R, N, method, info.errors[-3:])


def _fit_record(method):
    # the loaded-machine case: (6,6,6) -> (1,1,1), R=3, N=3 (Gauss-Newton, further starts)
    W = np.random.default_rng(7).standard_normal((216, 1))
    M, info = fit_bt(W, (6, 6, 6), (1, 1, 1), 3, 3, seed=0, method=method, warn=False)
    return ([f.clone() for f in M.factors], M.core.clone(), info.errors, info.status, info.phases,
            info.start_errors, info.total_iterations, info.relative_error)


def _same(a, b):
    fa, ca, *ra = a
    fb, cb, *rb = b
    return all(torch.equal(x, y) for x, y in zip(fa, fb)) and torch.equal(ca, cb) and ra == rb


@pytest.mark.slow
def test_fits_are_bit_identical_beside_busy_cpus():
    quiet = {m: _fit_record(m) for m in ("auto", "nls")}
    burners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        busy = {m: _fit_record(m) for m in ("auto", "nls")}
    finally:
        for p in burners:
            p.kill()
            p.wait()
    for m in quiet:
        assert _same(quiet[m], busy[m]), m
