"""Tests of btcore.decompose: BT (ALS), TT-SVD, Tucker, CP fits, errors, budgets."""

import math
import threading

import numpy as np
import pytest
import torch

import btcore
from btcore import BTMatrix, TTMatrix, bt_params, tt_params
from btcore.decompose import (
    AT_PRECISION, FitInfo, budget_candidates, cap_bt_ranks, cap_tt_ranks, compare_formats, fit_bt, fit_cp,
    fit_tt, fit_tucker, relative_error,
)



def _bt(im, om, rank, blocks, seed=0):
    return BTMatrix.random(im, om, rank, blocks, seed=seed, dtype=torch.float64).to_dense()


def _noisy(W, level, seed=1):
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(W.shape, generator=g, dtype=torch.float64)
    E = E * (level * W.norm() / E.norm())
    Wn = W + E
    return Wn, float(E.norm() / Wn.norm())


def _nonincreasing(errors):
    return all(b <= a for a, b in zip(errors, errors[1:]))


# ---------------------------------------------------------------------------------------------
# exact recovery (noise-free, float64)
# ---------------------------------------------------------------------------------------------

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
    import btcore.decompose as dec

    monkeypatch.setattr(dec, "_DIRECT_CORE_MAX", 4)
    im, om = (4, 4, 4), (4, 4, 4)
    W = _bt(im, om, 3, 2, seed=1)
    M, info = fit_bt(W, im, om, 3, 2, seed=0)
    assert info.relative_error < 1e-6, info.errors[-5:]


def test_fit_tucker_recovers_exact_tucker():
    im, om = (3, 4, 5), (4, 3, 2)
    W = _bt(im, om, 3, 1, seed=3)
    M, info = fit_tucker(W, im, om, 3)
    assert info.format == "Tucker" and M.spec.blocks == 1
    assert info.relative_error < 1e-6 and relative_error(W, M) < 1e-6


def test_fit_cp_recovers_exact_cp():
    im, om = (3, 4, 5), (4, 3, 2)
    W = _bt(im, om, 1, 4, seed=3)
    M, info = fit_cp(W, im, om, 4)
    assert info.format == "CP" and M.spec.ranks == (1, 1, 1) and M.spec.blocks == 4
    assert info.relative_error < 1e-6 and relative_error(W, M) < 1e-6


@pytest.mark.parametrize("ranks", [3, (2, 5), (1, 3, 4, 1)])
def test_fit_tt_recovers_exact_tt(ranks):
    im, om = (3, 4, 5), (4, 3, 2)
    W = TTMatrix.random(im, om, ranks, seed=4, dtype=torch.float64).to_dense()
    M, info = fit_tt(W, im, om, ranks)
    assert isinstance(M, TTMatrix) and info.format == "TT" and info.method == "TT-SVD"
    assert info.relative_error < 1e-6 and relative_error(W, M) < 1e-6
    assert M.spec.ranks == TTMatrix.random(im, om, ranks).spec.ranks


def test_fit_tt_matches_tensorly_tensor_train_matrix():
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import tensor_train_matrix
    from tensorly.tt_matrix import tt_matrix_to_tensor

    im, om = (4, 3, 4), (2, 5, 3)
    W = np.random.default_rng(0).standard_normal((48, 30))
    backend = tl.get_backend()
    M, info = fit_tt(W, im, om, (1, 4, 6, 1))
    ttm = tensor_train_matrix(W.reshape(im + om), (1, 4, 6, 1))  # numpy input: no backend switch
    ref = np.asarray(tt_matrix_to_tensor(ttm)).reshape(48, 30)
    ref_err = np.linalg.norm(W - ref) / np.linalg.norm(W)
    assert info.relative_error == pytest.approx(ref_err, rel=1e-9)
    assert relative_error(W, M) == pytest.approx(ref_err, rel=1e-9)
    assert tl.get_backend() == backend  # nothing here changes tensorly's global backend


# ---------------------------------------------------------------------------------------------
# noisy recovery, monotonicity, reproducibility
# ---------------------------------------------------------------------------------------------

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
    _, info = fit_bt(W, im, om, 2, 2, seed=0, restarts=4, init="random", screen_iter=3, max_iter=10)
    assert info.start_kinds == ["random"] * 4 and len(info.start_errors) == 4
    assert info.start_errors[info.chosen_start] == min(info.start_errors)
    assert info.iterations <= 10 + 10  # kept run: max_iter compressed/direct + refinement
    assert info.total_iterations >= info.iterations


# ---------------------------------------------------------------------------------------------
# inputs, ranks, dtypes, callbacks, memory
# ---------------------------------------------------------------------------------------------

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


def test_inputs_numpy_torch_and_dtypes():
    im, om = (2, 3), (3, 2)
    W = _bt(im, om, 2, 1, seed=0)
    M64, _ = fit_tucker(W.numpy(), im, om, 2)
    M32, _ = fit_tucker(W.float(), im, om, 2)
    assert M64.dtype == torch.float64 and M32.dtype == torch.float32
    Mt, info = fit_tt(W.float(), im, om, 2, dtype=torch.float64)
    assert Mt.dtype == torch.float64
    assert set(info.to_dict()) >= {"relative_error", "errors", "iterations", "seconds", "converged"}
    assert info.to_dict()["relative_error"] == info.relative_error
    assert not hasattr(info, "__getitem__") and not hasattr(info, "keys")  # attributes, not a dict


def test_fit_tt_reports_the_uncapped_request():
    W = np.random.default_rng(0).standard_normal((16, 16))
    with pytest.warns(UserWarning, match="capped"):
        M, info = fit_tt(W, (4, 4), (4, 4), 50)
    assert info.requested_ranks == (1, 50, 1)
    assert info.ranks == (1, 16, 1) and M.spec.ranks == (1, 16, 1)
    assert info.notes == ["TT rank 1 capped from 50 to 16, the largest useful rank between cores 1 and 2"]
    # a request given as all d+1 ranks, or as the inner ones, is normalised the same way
    assert fit_tt(W, (4, 4), (4, 4), (1, 50, 1), warn=False)[1].requested_ranks == (1, 50, 1)
    assert fit_tt(W, (4, 4), (4, 4), [50], warn=False)[1].requested_ranks == (1, 50, 1)
    # nothing capped: requested equals fitted
    _, info = fit_tt(W, (4, 4), (4, 4), 3)
    assert info.requested_ranks == info.ranks == (1, 3, 1) and info.notes == []


def test_interleave_torch_and_numpy():
    from btcore.decompose import interleave

    W = torch.arange(24 * 12, dtype=torch.float64).reshape(24, 12)
    T = interleave(W, (2, 3, 4), (3, 2, 2))
    assert T.shape == (6, 6, 8)
    # merged index (i_k, j_k) -> i_k J_k + j_k, with row i = (i1, i2, i3), column j = (j1, j2, j3) row-major
    for (i1, i2, i3, j1, j2, j3) in [(0, 0, 0, 0, 0, 0), (1, 2, 3, 2, 1, 1), (1, 0, 2, 0, 1, 0)]:
        i, j = (i1 * 3 + i2) * 4 + i3, (j1 * 2 + j2) * 2 + j3
        assert T[i1 * 3 + j1, i2 * 2 + j2, i3 * 2 + j3] == W[i, j]
    np.testing.assert_array_equal(interleave(W.numpy(), (2, 3, 4), (3, 2, 2)), T.numpy())
    # another mode order permutes the merged modes
    torch.testing.assert_close(interleave(W, (2, 3, 4), (3, 2, 2), order=(2, 0, 1)), T.permute(2, 0, 1))
    with pytest.raises(ValueError, match="shape"):
        interleave(W.T, (2, 3, 4), (3, 2, 2))


@pytest.mark.parametrize("W, match", [
    (np.zeros(12), "2-D"),
    (np.zeros((2, 2, 3)), "2-D"),
    (np.full((6, 6), np.nan), "NaN"),
    (np.ones((6, 5)), "shape"),
    (np.array([["a"] * 6] * 6), "numeric"),
])
def test_fit_rejects_bad_matrices(W, match):
    with pytest.raises(ValueError, match=match):
        fit_bt(W, (2, 3), (3, 2), 2, 1)
    with pytest.raises(ValueError, match=match):
        fit_tt(W, (2, 3), (3, 2), 2)


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


def test_relative_error_of_formats_and_dense():
    im, om = (2, 3), (3, 2)
    M = BTMatrix.random(im, om, 2, 2, seed=0, dtype=torch.float64)
    W = M.to_dense()
    assert relative_error(W, M) == 0.0
    assert relative_error(W.numpy(), M.to(dtype=torch.float32)) < 1e-6
    assert relative_error(W, torch.zeros_like(W)) == pytest.approx(1.0)
    assert relative_error(W, 2 * W) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        relative_error(W, torch.zeros(6, 5, dtype=torch.float64))
    assert relative_error(torch.zeros(6, 6), torch.ones(6, 6)) == math.inf


def test_public_names_exported():
    for name in ("fit_bt", "fit_tt", "fit_tucker", "fit_cp", "relative_error", "FitInfo",
                 "budget_candidates", "compare_formats"):
        assert hasattr(btcore, name)


# ---------------------------------------------------------------------------------------------
# budgets and comparisons
# ---------------------------------------------------------------------------------------------

def test_budget_candidates_match_the_param_formulas():
    im, om = (4, 8, 8, 4), (4, 8, 8, 4)
    budget = 5400
    rows = budget_candidates(im, om, budget, per_format=3)
    fmts = [r["format"] for r in rows]
    assert set(fmts) == {"BT", "TT", "Tucker", "CP"}
    for r in rows:
        if r["format"] == "TT":
            assert r["params"] == tt_params(im, om, r["ranks"]) and r["blocks"] is None
        else:
            assert r["params"] == bt_params(im, om, r["ranks"], r["blocks"])
        assert r["diff"] == r["params"] - budget
        assert r["compression"] == pytest.approx(1024 * 1024 / r["params"])
    for fmt in ("BT", "TT", "Tucker", "CP"):
        mine = [r for r in rows if r["format"] == fmt]
        assert [abs(r["diff"]) for r in mine] == sorted(abs(r["diff"]) for r in mine)
    bt = [r for r in rows if r["format"] == "BT"]
    assert all(r["blocks"] >= 2 and min(r["ranks"]) >= 2 for r in bt)
    assert abs(bt[0]["diff"]) / budget < 0.1
    cp = [r for r in rows if r["format"] == "CP"][0]
    assert cp["blocks"] == cp["rank"] and abs(cp["diff"]) <= 161  # one CP term is 161 parameters


def test_budget_candidates_paper_setting():
    # UCF11: BT R=4, N=2 has 3,392 parameters; TT ranks 4 have 3,360
    rows = budget_candidates((8, 20, 20, 18), (16, 4, 4, 4), 3392, per_format=20)
    assert any(r["format"] == "BT" and r["ranks"] == (4, 4, 4, 4) and r["blocks"] == 2 and r["params"] == 3392
               for r in rows)
    assert any(r["format"] == "TT" and r["ranks"] == (1, 4, 4, 4, 1) and r["params"] == 3360 for r in rows)
    with pytest.raises(ValueError, match="unknown"):
        budget_candidates((2, 2), (2, 2), 10, formats=("QTT",))


def test_compare_formats_bt_structure_favours_bt():
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W, noise = _noisy(_bt(im, om, 2, 2, seed=0), 0.01)
    budget = bt_params(im, om, 2, 2)
    seen = []
    rows = compare_formats(W, im, om, budget, seed=0, progress=lambda f, it, e: seen.append(f))
    by = {r["format"]: r for r in rows}
    assert set(by) == {"BT", "TT", "Tucker", "CP"}
    for r in rows:
        assert r["rel_error"] is not None and r["seconds"] >= 0 and isinstance(r["info"], FitInfo)
        assert r["compression"] == pytest.approx(W.numel() / r["params"], rel=0.2)
    assert by["BT"]["rel_error"] <= 1.1 * noise
    assert by["BT"]["rel_error"] < by["TT"]["rel_error"]
    assert "BT" in seen


def test_error_text_at_precision():
    info = FitInfo(format="BT", method="ALS", relative_error=1e-13, at_precision=True)
    assert "numerical precision" in info.error_text
    assert AT_PRECISION == 1e-8


def test_single_start_is_random_for_bt_and_hosvd_for_tucker():
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W = _bt(im, om, 2, 2, seed=0)
    _, info = fit_bt(W, im, om, 2, 2, seed=0, restarts=1)
    assert info.start_kinds == ["random"] and info.relative_error < 1e-6
    _, info = fit_tucker(W, im, om, 2)
    assert info.start_kinds == ["hosvd"]


def test_compare_formats_accepts_fit_settings_for_every_format():
    im, om = (2, 4), (4, 2)
    W = np.random.default_rng(1).standard_normal((8, 8))
    rows = compare_formats(W, im, om, 40, seed=0, fit_kwargs={"restarts": 2, "max_iter": 5})
    assert {r["format"] for r in rows} == {"BT", "TT", "Tucker", "CP"}
    tucker = next(r for r in rows if r["format"] == "Tucker")
    assert len(tucker["info"].start_kinds) == 2  # the caller's restarts win over Tucker's default of 1
