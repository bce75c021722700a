"""Tests of btcore.decompose.tr: TR-SVD + ALS fits and TR rank capping."""

import numpy as np
import pytest
import torch

from btcore.decompose import relative_error
from btcore.decompose.fitinfo import FitInfo
from btcore.decompose.tr import cap_tr_ranks, fit_tr
from btcore.formats import TRSpec
from btcore.ring import TRMatrix, interleaved

F64 = torch.float64


@pytest.mark.parametrize("in_modes, out_modes, ranks, seed", [
    ((3, 4, 5), (4, 3, 2), 3, 0),
    ((2, 3, 4), (3, 2, 2), (2, 3, 2), 2),
    ((4, 4, 4), (2, 2, 2), 2, 1),  # the first TR-SVD start stalls at 25%: another start recovers it
    ((2, 3, 2, 3), (3, 2, 2, 2), (2, 2, 3, 2), 0),
    ((2, 2, 2, 2, 2), (2, 2, 1, 2, 2), 2, 1),
])
def test_fit_tr_recovers_an_exact_tr_structure(in_modes, out_modes, ranks, seed):
    W = TRMatrix.random(in_modes, out_modes, ranks, seed=seed, dtype=F64).to_dense()
    M, info = fit_tr(W, in_modes, out_modes, ranks)
    assert isinstance(M, TRMatrix) and isinstance(info, FitInfo)
    assert info.format == "TR" and info.method == "TR-SVD+ALS"
    assert info.relative_error < 1e-8 and relative_error(W, M) < 1e-8
    assert info.status == "converged" and info.converged and info.at_precision
    assert M.spec == TRSpec(in_modes, out_modes, ranks) and info.spec == M.spec and info.params == M.num_params
    assert info.errors[-1] == info.relative_error
    assert all(b <= a for a, b in zip(info.errors, info.errors[1:]))
    assert info.start_kinds[0] == "tr-svd" and len(info.start_errors) == len(info.start_kinds)
    assert info.start_errors[info.chosen_start] == info.relative_error


def test_one_start_can_stall_where_the_fit_does_not():
    W = TRMatrix.random((4, 4, 4), (2, 2, 2), 2, seed=1, dtype=F64).to_dense()
    _, one = fit_tr(W, (4, 4, 4), (2, 2, 2), 2, restarts=0)
    assert one.start_errors[0] > 0.1 and one.chosen_start > 0 and one.relative_error < 1e-8
    assert one.total_iterations > one.iterations


def test_tr_svd_error_equals_tensorly_tensor_ring():
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import tensor_ring
    from tensorly.tr_tensor import tr_to_tensor

    im, om = (4, 3, 4), (2, 5, 3)
    W = np.random.default_rng(0).standard_normal((48, 30))
    backend = tl.get_backend()
    for rk in (2, (2, 3, 4)):
        M, info = fit_tr(W, im, om, rk, max_iter=0)
        assert info.method == "TR-SVD" and info.iterations == 0 and info.reason == "direct"
        T = interleaved(W, im, om)
        rank = [rk] * 4 if isinstance(rk, int) else [rk[-1], *rk]
        ref = np.asarray(tr_to_tensor(tensor_ring(T, rank)))  # numpy input: no backend switch
        ref_err = np.linalg.norm(T - ref) / np.linalg.norm(T)
        assert info.relative_error == pytest.approx(ref_err, rel=1e-9)
        assert relative_error(W, M) == pytest.approx(ref_err, rel=1e-9)
        # ALS from that start (start 0) only lowers it; the kept run is the best of all starts
        _, refined = fit_tr(W, im, om, rk, restarts=0, max_iter=20)
        assert refined.start_errors[0] < ref_err and refined.relative_error == min(refined.start_errors)
        if refined.chosen_start == 0:
            assert refined.errors[0] == pytest.approx(ref_err, rel=1e-9)
    assert tl.get_backend() == backend  # nothing here changes tensorly's global backend


def test_fit_reports_stalled_or_max_iter_on_a_generic_matrix():
    W = np.random.default_rng(1).standard_normal((24, 24))
    _, info = fit_tr(W, (2, 3, 4), (4, 3, 2), 2, max_iter=3, restarts=0)
    assert info.status == "max_iter" or info.status == "stalled"
    assert not info.converged and info.relative_error > 0.1 and info.grad_norm > 0
    assert info.iterations <= 3


def test_fit_is_deterministic():
    W = np.random.default_rng(2).standard_normal((24, 24))
    a, ia = fit_tr(W, (2, 3, 4), (4, 3, 2), 2, max_iter=15)
    b, ib = fit_tr(W, (2, 3, 4), (4, 3, 2), 2, max_iter=15)
    assert ia.errors == ib.errors and all(torch.equal(x, y) for x, y in zip(a.cores, b.cores))


def test_full_rank_fit_is_exact_and_dtype_follows_w():
    W = torch.randn(24, 24, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    from btcore.formats import tr_exact_ranks

    rk = tr_exact_ranks((2, 3, 4), (4, 3, 2))
    M, info = fit_tr(W, (2, 3, 4), (4, 3, 2), rk)
    assert M.dtype == torch.float32 and info.relative_error < 1e-10 and info.method == "TR-SVD"
    assert fit_tr(W.double(), (2, 3, 4), (4, 3, 2), 2, max_iter=0)[0].dtype == F64


def test_capped_ranks_are_reported():
    W = np.random.default_rng(0).standard_normal((16, 16))
    with pytest.warns(UserWarning, match="capped"):
        M, info = fit_tr(W, (4, 4), (4, 4), (1, 50))
    assert info.requested_ranks == (1, 50) and info.ranks == M.spec.ranks == (1, 16)
    assert info.notes == ["TR rank 2 capped from 50 to 16, the largest useful rank of that bond given the others"]
    rk, notes = cap_tr_ranks((4, 4), (4, 4), 7)
    assert rk == (4, 4) and "lowered to (4, 4)" in notes[0]
    assert cap_tr_ranks((4, 4), (4, 4), 3) == ((3, 3), [])


def test_smaller_tr_svd_bonds_are_grown_without_changing_the_start():
    # r_3 r_1 = 9 > 8, the rank of the 8 x 3 unfolding of the first merged mode: TR-SVD lowers a bond
    W = np.random.default_rng(3).standard_normal((8, 9))
    M, info = fit_tr(W, (2, 2, 2), (1, 3, 3), (3, 3, 3), max_iter=0)
    assert M.spec.ranks == (3, 3, 3)
    assert any("grown" in n for n in info.notes)
    assert info.relative_error == pytest.approx(relative_error(W, M), rel=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_iter": -1}, "max_iter must be an integer >= 0"),
    ({"restarts": 1.5}, "restarts must be an integer >= 0"),
    ({"tol": -1.0}, "tol must be a finite number >= 0"),
    ({"seed": -3}, "seed must be None or an integer"),
    ({"dtype": torch.int32}, "dtype must be None, torch.float32 or torch.float64"),
])
def test_fit_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_tr(np.zeros((6, 6)), (2, 3), (3, 2), 2, **kwargs)


def test_fit_validates_the_matrix():
    with pytest.raises(ValueError, match="W has shape"):
        fit_tr(np.zeros((6, 5)), (2, 3), (3, 2), 2)
    bad = np.ones((6, 6))
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_tr(bad, (2, 3), (3, 2), 2)


def test_zero_matrix_fits_with_zero_error():
    M, info = fit_tr(np.zeros((6, 6)), (2, 3), (3, 2), 2)
    assert info.relative_error == 0.0 and float(M.to_dense().abs().max()) == 0.0


def test_progress_counts_sweeps_and_should_stop_returns_the_best_so_far():
    W = TRMatrix.random((2, 3, 4), (3, 2, 2), (2, 3, 2), seed=2, dtype=F64).to_dense()
    seen = []
    _, info = fit_tr(W, (2, 3, 4), (3, 2, 2), (2, 3, 2), progress=lambda it, e: seen.append((it, e)))
    assert [it for it, _ in seen] == list(range(1, info.total_iterations + 1))
    calls = []

    def stop_after_five():
        calls.append(1)
        return len(calls) > 5

    M, stopped = fit_tr(W, (2, 3, 4), (3, 2, 2), (2, 3, 2), should_stop=stop_after_five)
    assert stopped.status == stopped.reason == "stopped" and not stopped.converged
    assert stopped.iterations == stopped.total_iterations == 5 and stopped.start_kinds == ["tr-svd"]
    assert stopped.relative_error == pytest.approx(relative_error(W, M), rel=1e-9)
    # the same first five sweeps as the full fit's first start, cut short
    assert stopped.errors[1:] == list(np.minimum.accumulate([stopped.errors[0]] + [e for _, e in seen[:5]]))[1:]
    with pytest.raises(ValueError, match="progress must be a callable"):
        fit_tr(W, (2, 3, 4), (3, 2, 2), 2, progress=3)


def test_fit_tr_work_budget_bounds_starts_and_sweeps():
    # a random target has no ring structure: without a budget every start runs to its stopping rule
    W = np.random.default_rng(3).standard_normal((64, 64))
    im, om = (4, 4, 4), (4, 4, 4)
    _, free = fit_tr(W, im, om, 3, max_iter=40, warn=False)
    M, info = fit_tr(W, im, om, 3, max_iter=40, max_starts=2, sweep_budget=50, warn=False)
    assert len(free.start_kinds) > 2 and free.total_iterations > 50
    assert info.start_kinds == free.start_kinds[:len(info.start_kinds)] and len(info.start_kinds) <= 2
    assert info.total_iterations <= 50
    # the first start is the same run in both (the budget only ends the loop early)
    assert info.start_errors[0] == free.start_errors[0]
    _, again = fit_tr(W, im, om, 3, max_iter=40, max_starts=2, sweep_budget=50, warn=False)
    assert again.errors == info.errors and again.relative_error == info.relative_error
    with pytest.raises(ValueError, match="sweep_budget"):
        fit_tr(W, im, om, 3, sweep_budget=0)
