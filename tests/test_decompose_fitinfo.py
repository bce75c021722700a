"""Tests of btcore.decompose.fitinfo and .inputs: FitInfo, interleave, relative_error, input checks, public names."""

import math

import numpy as np
import pytest
import torch

import btcore
from btcore import BTMatrix
from btcore.decompose import AT_PRECISION, FitInfo, fit_bt, fit_tt, fit_tucker, relative_error
from btcore.decompose.fitinfo import STATUSES
from decompose_cases import bt_dense as _bt


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


def test_error_text_at_precision():
    info = FitInfo(format="BT", method="ALS", relative_error=1e-13, at_precision=True)
    assert "numerical precision" in info.error_text
    assert AT_PRECISION == 1e-8


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


@pytest.mark.parametrize("factor", [1e160, 1e-170, 1e300])
def test_relative_error_is_scale_safe(factor):
    g = np.random.default_rng(1)
    W = g.standard_normal((8, 8))
    M = W + 1e-3 * g.standard_normal((8, 8))
    ref = relative_error(W, M)
    assert relative_error(W * factor, M * factor) == pytest.approx(ref, rel=1e-12)


def test_fit_info_status_fields_and_stalled_text():
    info = FitInfo(format="BT", method="ALS", relative_error=0.2, status="stalled")
    assert "stalled" in info.error_text and "restarts" in info.error_text
    assert info.history is info.errors and info.phases == [] and math.isnan(info.grad_norm)
    assert set(STATUSES) == {"converged", "stalled", "max_iter", "stopped", "time_limit"}
