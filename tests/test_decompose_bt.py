"""Tests of btcore.decompose.bt (and its ALS engine, btcore.decompose.als): the Block-Term fit."""

import math
import threading

import numpy as np
import pytest
import torch

import btcore
from btcore import BTMatrix
from btcore.decompose import (
    DEFAULT, FitInfo, cap_bt_ranks, cap_tt_ranks, fit_bt, fit_cp, fit_tt, fit_tucker, relative_error,
)
from decompose_cases import bt_dense as _bt, hard_bt_cases, noisy as _noisy, nonincreasing as _nonincreasing
from decompose_cases import random_bt_cases


@pytest.mark.parametrize("im, om, rank, blocks", [
    ((4, 4, 4), (4, 4, 4), 3, 2),          # d = 3, direct core solve
    ((2, 4, 4, 2), (4, 4, 4, 2), 2, 2),    # d = 4
    ((4, 8, 8, 4), (2, 2, 2, 2), 2, 3),    # compressed path (tall modes)
])
def test_fit_bt_recovers_exact_bt(im, om, rank, blocks):
    W = _bt(im, om, rank, blocks, seed=1)
    M, info = fit_bt(W, im, om, rank, blocks, seed=0)
    assert isinstance(M, BTMatrix) and isinstance(info, FitInfo)
    assert info.relative_error < 1e-6
    assert relative_error(W, M) < 1e-6
    assert M.spec.blocks == blocks and M.spec.ranks == (rank,) * len(im)
    assert info.at_precision and info.converged
    assert M.dtype == torch.float64


def test_fit_bt_recovers_exact_bt_with_cg_core_solve(monkeypatch):
    # force the warm-started CG solve of the joint core system (used when N * prod R > 768)
    import btcore.decompose.als as als

    monkeypatch.setattr(als, "_DIRECT_CORE_MAX", 4)
    im, om = (4, 4, 4), (4, 4, 4)
    W = _bt(im, om, 3, 2, seed=1)
    M, info = fit_bt(W, im, om, 3, 2, seed=0)
    assert info.relative_error < 1e-6, info.errors[-5:]


def test_fit_bt_1024_bt_structure_with_noise_reaches_noise_level():
    # the case: random BT (N=2, R=3), 1024 x 1024, modes 4x8x8x4 both sides, 1% noise
    im = om = (4, 8, 8, 4)
    W, noise = _noisy(_bt(im, om, 3, 2, seed=0), 0.01)
    M, info = fit_bt(W, im, om, 3, 2, seed=0)
    assert info.relative_error <= 1.1 * noise
    assert relative_error(W, M) == pytest.approx(info.relative_error, rel=1e-6)
    assert _nonincreasing(info.errors)


def test_fit_bt_greedy_like_hosvd_start_is_not_what_is_kept():
    # the HOSVD (greedy-like) start stalls far above the noise; a random start reaches it
    im, om = (4, 4, 4), (4, 4, 4)
    W, noise = _noisy(_bt(im, om, 2, 2, seed=5), 0.01)
    M, info = fit_bt(W, im, om, 2, 2, seed=0, restarts=3)
    assert info.start_kinds[0] == "hosvd" and len(info.start_errors) == 3
    assert info.relative_error <= 1.1 * noise


@pytest.mark.parametrize("case", ["random", "noisy_bt", "cg", "cp", "tucker"])
def test_fit_bt_error_never_increases(case):
    g = np.random.default_rng(3)
    if case == "random":
        im, om, R, N = (4, 4, 4), (4, 4, 2), 3, 3
        W = g.standard_normal((64, 32))
    elif case == "noisy_bt":
        im, om, R, N = (2, 4, 4, 2), (4, 4, 4, 2), 2, 3
        W, _ = _noisy(_bt(im, om, 2, 3, seed=1), 0.05)
    elif case == "cg":
        im, om, R, N = (4, 4, 4), (4, 4, 4), 6, 4
        W = g.standard_normal((64, 64))
    elif case == "cp":
        im, om, R, N = (4, 4, 4), (4, 4, 4), 1, 12
        W = g.standard_normal((64, 64))
    else:
        im, om, R, N = (4, 8, 8, 4), (2, 2, 2, 2), 3, 1
        W = g.standard_normal((1024, 16))
    seen = []
    M, info = fit_bt(W, im, om, R, N, seed=1, max_iter=25, progress=lambda it, e: seen.append((it, e)))
    assert len(info.errors) == info.iterations + 1
    assert _nonincreasing(info.errors), info.errors
    assert info.errors[-1] == pytest.approx(info.relative_error, rel=1e-6)
    assert relative_error(W, M) == pytest.approx(info.relative_error, rel=1e-6)
    assert seen and all(isinstance(it, int) and math.isfinite(e) for it, e in seen)
    assert 0 <= info.relative_error <= 1.0 + 1e-12


def test_fit_bt_is_reproducible_for_a_seed():
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W = np.random.default_rng(0).standard_normal((64, 128))
    M1, i1 = fit_bt(W, im, om, 2, 3, seed=7, max_iter=15)
    M2, i2 = fit_bt(W, im, om, 2, 3, seed=7, max_iter=15)
    assert i1.errors == i2.errors
    for a, b in zip(M1.factors + [M1.core], M2.factors + [M2.core]):
        assert torch.equal(a, b)
    M3, i3 = fit_bt(W, im, om, 2, 3, seed=8, max_iter=15)
    assert i3.errors != i1.errors


def test_fit_bt_starts_and_screening_recorded():
    im, om = (4, 4, 4), (4, 4, 2)
    W = np.random.default_rng(0).standard_normal((64, 32))
    _, info = fit_bt(W, im, om, 2, 2, method="als", seed=0, restarts=4, init="random", screen_iter=3,
                     max_iter=10)
    assert info.start_kinds == ["random"] * 4 and len(info.start_errors) == 4
    assert info.start_errors[info.chosen_start] == min(info.start_errors)
    assert info.iterations <= 10 + DEFAULT.refine_iter  # kept run: max_iter compressed/direct + refinement
    assert info.total_iterations >= info.iterations


def test_ranks_above_mode_size_are_capped_and_reported():
    im, om = (2, 4), (2, 4)  # mode sizes 4 and 16
    W = np.random.default_rng(0).standard_normal((8, 8))
    with pytest.warns(UserWarning, match="capped"):
        M, info = fit_bt(W, im, om, 6, 2, seed=0, max_iter=5)
    assert M.spec.ranks == (4, 4)
    assert info.requested_ranks == (6, 6)
    assert any("mode 1" in n and "size" in n for n in info.notes)
    assert any("product of the other" in n for n in info.notes)
    assert cap_bt_ranks((2, 4), (2, 4), (3, 9)) == ((3, 3), [
        "rank of mode 2 capped from 9 to 3, the product of the other modes' ranks (a Tucker core cannot use more)"])
    ranks, notes = cap_tt_ranks((2, 3, 2), (2, 2, 2), 50)
    assert ranks == (1, 4, 4, 1) and len(notes) == 2  # M = (4, 6, 4): min(4, 24), min(24, 4)


def test_fit_rejects_bad_arguments():
    W = np.ones((6, 6))
    with pytest.raises(ValueError, match="same order"):
        fit_bt(W, (2, 3), (6,), 2, 1)
    with pytest.raises(ValueError, match="blocks"):
        fit_bt(W, (2, 3), (3, 2), 2, 0)
    with pytest.raises(ValueError, match="init"):
        fit_bt(W, (2, 3), (3, 2), 2, 1, init="greedy")
    with pytest.raises(ValueError, match="rank"):
        fit_bt(W, (2, 3), (3, 2), (2, 2, 2), 1)


def test_zero_matrix_fits_exactly():
    M, info = fit_bt(np.zeros((6, 6)), (2, 3), (3, 2), 2, 2)
    assert info.relative_error == 0.0 and float(M.to_dense().abs().max()) == 0.0
    Mt, it = fit_tt(np.zeros((6, 6)), (2, 3), (3, 2), 2)
    assert it.relative_error == 0.0
    assert relative_error(np.zeros((6, 6)), Mt) == 0.0


def test_should_stop_cancels_and_returns_best_so_far():
    im, om = (4, 4, 4), (4, 4, 4)
    W = np.random.default_rng(0).standard_normal((64, 64))
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 4

    M, info = fit_bt(W, im, om, 3, 2, seed=0, should_stop=stop)
    assert info.reason == "stopped" and not info.converged
    assert info.total_iterations <= 4
    assert relative_error(W, M) == pytest.approx(info.relative_error, rel=1e-6)


def test_memory_estimate_raises_before_allocating(monkeypatch):
    import btcore.memory as tensors

    monkeypatch.setattr(tensors, "available_memory", lambda device=None: 10_000)
    with pytest.raises(ValueError, match="fewer blocks|lower rank|smaller"):
        fit_bt(np.ones((64, 64)), (4, 4, 4), (4, 4, 4), 3, 2)


def test_fits_in_threads_do_not_touch_tensorly_backend():
    tl = pytest.importorskip("tensorly")
    before = tl.get_backend()
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W = _bt(im, om, 2, 2, seed=0).numpy()
    out = {}

    def work(i):
        out[i] = fit_bt(W, im, om, 2, 2, seed=i, max_iter=40)[1].relative_error

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 2 and all(e < 1e-6 for e in out.values())
    assert tl.get_backend() == before


def test_single_start_is_random_for_bt_and_hosvd_for_tucker():
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W = _bt(im, om, 2, 2, seed=0)
    _, info = fit_bt(W, im, om, 2, 2, seed=0, restarts=1)
    assert info.start_kinds == ["random"] and info.relative_error < 1e-6
    _, info = fit_tucker(W, im, om, 2)
    assert info.start_kinds == ["hosvd"]


def test_fit_info_carries_the_capped_spec():
    im, om = (2, 4), (2, 4)
    W = np.random.default_rng(0).standard_normal((8, 8))
    M, info = fit_bt(W, im, om, 6, 2, seed=0, max_iter=5, warn=False)
    assert info.spec.ranks == M.spec.ranks == info.ranks and info.spec.blocks == 2
    assert info.spec.params == info.params
    assert btcore.formats.describe(info.spec) == "R=4, N=2"
    _, cp = fit_cp(W, im, om, 3)
    assert btcore.formats.describe(cp.spec) == "rank 3"


# ---- methods, honest status, phases, scale, settings ----------------------------------------------

def _swamp_target(seed):
    im = om = (4, 4, 4)
    return im, om, _bt(im, om, 4, 3, seed=seed)


def test_auto_escapes_the_als_swamp_and_als_reports_it_honestly():
    im, om, W = _swamp_target(1)
    _, als = fit_bt(W, im, om, 4, 3, method="als", seed=0)
    assert als.relative_error > 1e-3  # the ALS swamp of this case
    assert not als.converged and als.status in ("stalled", "max_iter")
    assert als.grad_norm > 1e-5  # the default gtol
    for method in ("auto", "nls"):
        M, info = fit_bt(W, im, om, 4, 3, method=method, seed=0)
        assert info.relative_error < 1e-8 and relative_error(W, M) < 1e-8
        assert info.converged and info.status == "converged"


@pytest.mark.parametrize("method", ["auto", "als", "nls"])
def test_phases_cover_the_history(method):
    im, om = (4, 4, 4), (4, 4, 2)
    W = np.random.default_rng(0).standard_normal((64, 32))
    _, info = fit_bt(W, im, om, 2, 2, method=method, seed=0, max_iter=20)
    assert info.history is info.errors and info.phases
    assert info.phases[0][1] == 0 and info.phases[-1][2] == len(info.errors) - 1
    for (m1, a1, b1), (m2, a2, b2) in zip(info.phases, info.phases[1:]):
        assert b1 == a2 and m1 != m2
    assert {m for m, _, _ in info.phases} <= {"ALS", "NLS"}
    if method == "nls":
        assert "NLS" in {m for m, _, _ in info.phases}
    assert _nonincreasing(info.errors)
    assert info.status in ("converged", "stalled", "max_iter", "stopped")
    # a Gaussian random matrix is far from any BT optimum's zero error: no first-order claim without it
    if info.converged:
        assert info.grad_norm <= 1e-5


def test_max_iter_and_stalled_are_not_converged():
    im, om, W = _swamp_target(1)
    _, info = fit_bt(W, im, om, 4, 3, method="als", seed=0, restarts=1, max_iter=3)
    assert info.status == "max_iter" and not info.converged and info.reason == "max_iter"
    _, info = fit_bt(W, im, om, 4, 3, method="als", seed=0, tol=0.5)  # a loose relative-change stop
    assert info.status == "stalled" and not info.converged
    assert "stalled" in info.error_text and any("restarts" in n for n in info.notes)


def test_stopped_status():
    im, om, W = _swamp_target(2)
    _, info = fit_bt(W, im, om, 4, 3, seed=0, should_stop=lambda: True)
    assert info.status == "stopped" and not info.converged


def test_hard_regime_ends_in_time_and_is_honest():
    # no two modes with M_k >= N R: no algebraic start; Gauss-Newton is capped by time_limit
    im, om = (3, 4, 4, 2), (3, 3, 3, 4)
    W = _bt(im, om, 4, 4, seed=5)
    M, info = fit_bt(W, im, om, 4, 4, method="nls", seed=0, time_limit=1.0)
    assert info.seconds < 20
    assert info.converged == (info.status == "converged")
    if info.relative_error > 1e-3:
        assert not info.converged


@pytest.mark.parametrize("factor", [1e160, 1e-170])
def test_scale_invariance(factor):
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W = _bt(im, om, 2, 2, seed=0)
    _, ref = fit_bt(W, im, om, 2, 2, seed=0)
    Ws = W * factor
    M, info = fit_bt(Ws, im, om, 2, 2, seed=0)
    assert info.relative_error < 1e-8 and info.converged
    assert relative_error(Ws, M) < 1e-8
    assert info.errors == pytest.approx(ref.errors, rel=1e-6, abs=1e-12)
    D = M.to_dense()
    assert bool(torch.isfinite(D).all()) and float(D.abs().max()) > 0
    assert float(torch.linalg.norm((D / factor) - W) / torch.linalg.norm(W)) < 1e-8
    Mt, it = fit_tt(Ws, im, om, 4)
    _, it_ref = fit_tt(W, im, om, 4)
    assert it.relative_error == pytest.approx(it_ref.relative_error, rel=1e-6, abs=1e-12)
    assert relative_error(Ws, Mt) == pytest.approx(it_ref.relative_error, rel=1e-6, abs=1e-12)
    _, tk = fit_tucker(Ws, im, om, 2)
    _, tk_ref = fit_tucker(W, im, om, 2)
    assert tk.relative_error == pytest.approx(tk_ref.relative_error, rel=1e-6)
    # ALS: a run cut by the wall-clock time_limit of Gauss-Newton is not reproducible to 1e-6
    _, cp = fit_cp(Ws, im, om, 3, max_iter=10, method="als")
    _, cp_ref = fit_cp(W, im, om, 3, max_iter=10, method="als")
    assert cp.relative_error == pytest.approx(cp_ref.relative_error, rel=1e-6)


@pytest.mark.parametrize("field, value", [
    ("ridge", float("nan")), ("ridge", -1.0), ("ridge", float("inf")), ("tol", float("nan")), ("tol", -1e-3),
    ("gtol", float("nan")), ("max_iter", 0), ("restarts", 0), ("screen_iter", 0), ("nls_iter", 0),
    ("cg_iter", 0), ("refine_iter", -1), ("seed", -1), ("seed", 2**64), ("seed", 1.5), ("dtype", torch.int64),
    ("dtype", "float16"), ("method", "lbfgs"), ("time_limit", float("nan")), ("oversample", -0.5),
    ("compress", "yes"), ("max_iter", 2.5),
])
def test_every_bad_setting_names_its_field(field, value):
    W = np.random.default_rng(0).standard_normal((16, 16))
    with pytest.raises(ValueError, match=field):
        fit_bt(W, (4, 4), (4, 4), 2, 2, **{field: value})


def _random_cases(n, seed):
    """n random exact-BT cases, d = 3..5, R = 2..4, N = 2..4, drawn without restricting the regime."""
    return random_bt_cases(n, seed)


def test_auto_keeps_a_gauss_newton_run_going_while_it_converges_fast():
    # 9x12x12x8, N=4, R=4 (no mode of size N R): only Gauss-Newton from a further start finds it, in 9
    # iterations. Capped at 6 a run (as a time share on a loaded machine would), the run that was still
    # converging goes on instead of being reported "first-order" at 1.6e-5.
    im, om, R, N = (3, 4, 4, 2), (3, 3, 3, 4), 4, 4
    W = BTMatrix.random(im, om, R, N, seed=5, dtype=torch.float64).to_dense()
    _, info = fit_bt(W, im, om, R, N, nls_iter=6, warn=False)
    assert info.relative_error < 1e-6 and info.converged
    nls = [b - a for m, a, b in info.phases if m == "NLS"]
    assert nls and nls[0] > 6


def test_gauss_newton_is_not_stopped_by_the_gradient_test_while_the_error_still_halves():
    # 8x9x6x4, N=3, R=3: the Jacobian is ill-conditioned, and the relative gradient fell below tol at
    # error 4.9e-6, while each Gauss-Newton step was still cutting the error manyfold
    im, om, R, N = (2, 3, 3, 2), (4, 3, 2, 2), 3, 3
    W = BTMatrix.random(im, om, R, N, seed=23, dtype=torch.float64).to_dense()
    _, info = fit_bt(W, im, om, R, N, warn=False)
    assert info.relative_error < 1e-8 and info.converged


def test_a_run_cut_off_while_its_error_still_falls_is_not_converged_whatever_its_gradient():
    im = om = (4, 4, 4)
    W = BTMatrix.random(im, om, 4, 3, seed=1, dtype=torch.float64).to_dense()
    # gtol = 1: every gradient passes the first-order test, but 12 sweeps end with the error still
    # falling (0.40 -> 0.24 over the last 10)
    _, info = fit_bt(W, im, om, 4, 3, method="als", restarts=1, max_iter=12, gtol=1.0, warn=False)
    assert info.errors[-11] - info.errors[-1] > 0.01 * info.errors[-11]
    assert info.status == "max_iter" and not info.converged


def test_nls_tries_its_other_starts_after_a_local_minimum():
    # 6x6x6, N=2, R=4: Gauss-Newton from the best ALS start converges to a local minimum at 0.046
    # (the gradient goes to 1e-10 there); the next start reaches the exact structure
    im, om, R, N = (3, 3, 2), (2, 2, 3), 4, 2
    W = BTMatrix.random(im, om, R, N, seed=5, dtype=torch.float64).to_dense()
    _, info = fit_bt(W, im, om, R, N, method="nls", warn=False)
    assert info.relative_error < 1e-8 and info.converged
    assert min(info.start_errors) < 1e-8 < max(info.start_errors)


@pytest.mark.slow
def test_recovery_rate_over_a_random_suite():
    ok = false_converged = 0
    cases = _random_cases(30, 2)  # the random suite of bench/nls.py
    for im, om, R, N, s in cases:
        W = BTMatrix.random(im, om, R, N, seed=s, dtype=torch.float64).to_dense()
        _, info = fit_bt(W, im, om, R, N, seed=0, warn=False)
        ok += info.relative_error < 1e-6
        false_converged += info.converged and info.relative_error > 1e-3
    assert false_converged == 0
    assert ok >= 29  # measured 29/30; the miss (12x12x9, N=4, R=4: no mode of size N R) ends max_iter


def test_hard_structure_without_any_mode_of_size_n_r_is_recovered():
    # sizes 6, 12, 12, 8 with N R = 15: no mode is large enough for the algebraic start; the subspace
    # start's best-ranked plan finds low-rank members that are no block's own, a later plan separates
    # the blocks (before, every start ended in a swamp at 0.17 after 577 iterations)
    im, om, R, N = (2, 3, 4, 2), (3, 4, 3, 4), 3, 5
    W = BTMatrix.random(im, om, R, N, seed=2, dtype=torch.float64).to_dense()
    _, info = fit_bt(W, im, om, R, N, warn=False)
    assert info.relative_error < 1e-8 and info.converged
    assert info.start_kinds[info.chosen_start] == "subspace"


def test_hard_structure_without_any_single_mode_or_pair_plan_is_recovered_by_the_tucker_search():
    # sizes 4, 6, 12, 8 with N R = 15 (hard_bt_cases(30, 1)[26]): no mode, and no merged pair with one
    # free mode, gives the subspace start a plan, and every ALS and Gauss-Newton start stayed in a swamp
    # near 0.1 (about 9 s). Merged (12, 4) against the Tucker subspaces of (6, 8) separates the blocks
    im, om, R, N = (2, 2, 4, 2), (2, 3, 3, 4), 3, 5
    W = BTMatrix.random(im, om, R, N, seed=26, dtype=torch.float64).to_dense()
    M, info = fit_bt(W, im, om, R, N, warn=False)
    assert float(torch.linalg.norm(M.to_dense() - W) / torch.linalg.norm(W)) < 1e-6
    assert info.relative_error < 1e-8 and info.converged
    assert info.start_kinds[info.chosen_start] == "subspace"


def test_an_als_run_cut_by_its_budget_while_converging_is_finished_by_gauss_newton():
    # sizes 8, 9, 6, 8, 4 with N R = 16 (no algebraic or subspace start): a random start's ALS run
    # reaches 2.9e-6 at max_iter, still falling tenfold per 10 sweeps, with a gradient already below
    # gtol. That small gradient is no convergence: Gauss-Newton finishes the run in a few steps
    im, om, R, N = (4, 3, 2, 4, 2), (2, 3, 3, 2, 2), 4, 4
    W = BTMatrix.random(im, om, R, N, seed=7, dtype=torch.float64).to_dense()
    _, info = fit_bt(W, im, om, R, N, warn=False)
    assert info.relative_error < 1e-8 and info.converged
    assert [m for m, _, _ in info.phases] == ["ALS", "NLS"]


# ----------------------------------------------------------------------------------------------
# The ALS engine's contractions against explicit einsums (float64)
# ----------------------------------------------------------------------------------------------

_ALS_SHAPES = [((32, 8, 4, 4, 4, 16), 131, 2), ((4, 4, 4, 4, 4, 4), 3, 2), ((16, 16, 16, 16), 60, 2),
               ((12, 8, 6, 12), 5, 4), ((8, 8, 8), 7, 3), ((5, 6), 3, 2)]


def _als_operands(sizes, N, R, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(sizes, generator=g, dtype=torch.float64)
    U = [torch.linalg.qr(torch.randn(N, m, min(R, m), generator=g, dtype=torch.float64))[0] for m in sizes]
    return T, U


@pytest.mark.parametrize("sizes,N,R", _ALS_SHAPES)
def test_als_contract_matches_einsum_over_every_mode_set(sizes, N, R):
    import itertools

    from btcore.decompose.als import _contract, _takes_kronecker

    T, U = _als_operands(sizes, N, R)
    d, M, Rl = len(sizes), "abcdefgh", "qrstuvwx"
    kron_used = 0
    for k in range(1, d + 1):
        for modes in itertools.combinations(range(d), k):
            X, lab = _contract(T, U, modes)
            out = "".join(Rl[j] if j in modes else M[j] for j in range(d))
            ref = torch.einsum(M[:d] + "," + ",".join(f"z{M[j]}{Rl[j]}" for j in modes) + "->z" + out,
                               T, *[U[j] for j in modes])
            torch.testing.assert_close(torch.einsum(f"{lab}->z{out}", X), ref, rtol=0, atol=1e-12)
            kron_used += _takes_kronecker(T, U, list(modes))
    if sizes == (32, 8, 4, 4, 4, 16):
        assert kron_used > 0  # many blocks on small modes: the Kronecker plan is the one taken


@pytest.mark.parametrize("sizes,N,R", [((4, 4, 4), 40, 2), ((4, 4, 4, 4), 20, 2), ((3, 3, 3), 30, 3),
                                       ((4, 4), 2, 2), ((6, 6, 6), 700, 2)])
def test_pair_products_match_the_definition_in_every_chunk_and_path(sizes, N, R):
    """D[n, m] = C_m x_j (U_j^(n)^T U_j^(m)) for j != skip, by either path (elementwise for R = 2 from
    16 blocks, batched GEMMs otherwise) and over several row chunks (700 blocks)."""
    from btcore.decompose.als import _cross_gram, _pair_products

    _, U = _als_operands(sizes, N, R, seed=1)
    C = torch.randn((N,) + tuple(u.shape[2] for u in U), generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64)
    P = [_cross_gram(u) for u in U]
    d, Rl, Sl = len(sizes), "qrstuvwx", "ijklmnop"
    for skip in (-1, 0, d - 1):
        eq = "m" + Sl[:d] + "," + ",".join(f"nm{Rl[j]}{Sl[j]}" for j in range(d) if j != skip) + "->nm" + \
            "".join(Sl[j] if j == skip else Rl[j] for j in range(d))
        ref = torch.einsum(eq, C, *[P[j] for j in range(d) if j != skip])
        got = torch.empty_like(ref)
        chunks = 0
        for n0, n1, m0, D in _pair_products(P, C, skip=skip):
            assert m0 == 0
            got[n0:n1] = D
            chunks += 1
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
        assert chunks > 1 if N == 700 else chunks == 1
        # upper: each chunk of rows gets the columns from its first row on, the same values
        for n0, n1, m0, D in _pair_products(P, C, skip=skip, upper=True):
            assert m0 == n0 and D.shape[:2] == (n1 - n0, N - n0)
            torch.testing.assert_close(D, ref[n0:n1, n0:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("sizes,N,R,chunk", [((4, 4, 4), 40, 2, 1 << 30), ((4, 4, 4), 40, 2, 900),
                                             ((3, 4, 3, 4), 24, 2, 700), ((3, 3, 3), 12, 3, 1000),
                                             ((4, 4), 5, 2, 1 << 30)])
def test_gram_of_a_mode_update_is_the_design_matrix_gram(monkeypatch, sizes, N, R, chunk):
    """ALSRun._gram(k) = Z^T Z, with Z every block's mode-k design matrix formed densely, whether the
    pair products come in one chunk or several (each chunk then computes only the columns from its
    first row on and mirrors them) and by either path (elementwise at R = 2 from 16 blocks)."""
    import btcore.decompose.als as als

    monkeypatch.setattr(als, "_PAIR_CHUNK", chunk)
    T, U = _als_operands(sizes, N, R, seed=5)
    run = als.ALSRun(T, U, 1e-12, 6)
    d, Ml, Rl = len(sizes), "abcdefgh", "qrstuvwx"
    rows, _ = als._pair_layout(N, run.ranks)
    assert (rows < N) == (chunk < 1 << 30)
    for k in range(d):
        # Y_n = C_n x_{j != k} U_j^(n): mode k keeps its rank index, the others their mode index
        out = "z" + "".join(Rl[j] if j == k else Ml[j] for j in range(d))
        eq = "z" + Rl[:d] + "," + ",".join(f"z{Ml[j]}{Rl[j]}" for j in range(d) if j != k) + "->" + out
        Y = torch.einsum(eq, run.C, *[run.U[j] for j in range(d) if j != k])
        Z = Y.movedim(k + 1, -1).reshape(N, -1, run.ranks[k]).permute(1, 0, 2).reshape(-1, N * run.ranks[k])
        torch.testing.assert_close(run._gram(k), Z.T @ Z, rtol=0, atol=1e-11)


def test_row_chunks_of_the_pair_products_give_the_same_fit(monkeypatch):
    """A fit with its pair products in one chunk or in one row at a time: the same math, so the same
    errors and factors up to rounding (batched GEMMs round by batch size, so not bit for bit; the
    chunks depend on the shapes only, so a fit still repeats exactly)."""
    import btcore.decompose.als as als

    W = BTMatrix.random((4, 3, 4), (3, 4, 2), 3, 5, seed=3, dtype=torch.float64).to_dense()
    W = W + 1e-3 * torch.randn(W.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    fits = []
    for chunk in (1 << 30, 40, 40):
        monkeypatch.setattr(als, "_PAIR_CHUNK", chunk)
        fits.append(fit_bt(W, (4, 3, 4), (3, 4, 2), 3, 5, method="als", seed=0, max_iter=15, warn=False))
    (a, ia), (b, ib), (c, ic) = fits
    np.testing.assert_allclose(ia.history, ib.history, rtol=1e-10)
    torch.testing.assert_close(a.to_dense(), b.to_dense(), rtol=0, atol=1e-10)
    assert ib.history == ic.history and all(torch.equal(x, y) for x, y in zip(b.factors, c.factors))


def test_lstsq_repeats_bit_for_bit_whatever_the_allocation():
    """MKL's gelsy (torch's CPU default) changes its last bits from call to call; btcore's lstsq must not."""
    from btcore.decompose.btmodel import lstsq

    g = torch.Generator().manual_seed(0)
    A = torch.randn(40, 25, generator=g, dtype=torch.float64)
    A = A @ A.T  # rank-deficient, as the subspace start's deflated systems can be
    B = torch.randn(40, 30, generator=g, dtype=torch.float64)
    ref = lstsq(A.clone(), B.clone())
    torch.testing.assert_close(A @ ref, A @ torch.linalg.pinv(A) @ B, rtol=0, atol=1e-9)
    for i in range(20):
        pads = [torch.empty(7 * j + i, dtype=torch.float64) for j in range(3)]  # shift the allocations
        x, y = torch.empty_like(A), torch.empty_like(B)
        x.copy_(A)
        y.copy_(B)
        assert torch.equal(lstsq(x, y), ref), (i, len(pads))


def test_a_hard_fit_through_the_deflated_subspace_search_repeats_bit_for_bit():
    """Hard case 3 (12x6x6x6x8x6, N=5, R=4) is found by the subspace start, whose deflated searches
    solve least-squares systems: with torch's default driver its factors differed on every call."""
    import hashlib

    im, om, R, N, s = hard_bt_cases(30, 1)[3]
    W = BTMatrix.random(im, om, R, N, seed=s, dtype=torch.float64).to_dense()
    digests = []
    for _ in range(2):
        bt, info = fit_bt(W, im, om, R, N, warn=False)
        assert info.relative_error < 1e-10
        h = hashlib.sha256()
        for t in list(bt.factors) + [bt.core]:
            h.update(t.numpy().tobytes())
        digests.append((h.hexdigest(), info.relative_error, tuple(info.history)))
    assert digests[0] == digests[1]
