"""Tests of btcore.decompose.bt (and its ALS engine, btcore.decompose.als): the Block-Term fit."""

import math
import threading

import numpy as np
import pytest
import torch

import btcore
from btcore import BTMatrix
from btcore.decompose import FitInfo, cap_bt_ranks, cap_tt_ranks, fit_bt, fit_cp, fit_tt, fit_tucker, relative_error
from decompose_cases import bt_dense as _bt, noisy as _noisy, nonincreasing as _nonincreasing


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
    assert info.iterations <= 10 + 10  # kept run: max_iter compressed/direct + refinement
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
    import btcore.tensors as tensors

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
