"""Tests of btcore.decompose.tt: TT-SVD."""

import numpy as np
import pytest
import torch

from btcore import TTMatrix
import btcore
from btcore.decompose import fit_tt, relative_error


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


def test_fit_info_carries_the_fitted_tt_spec():
    W = np.random.default_rng(0).standard_normal((16, 16))
    M, info = fit_tt(W, (4, 4), (4, 4), 50, warn=False)
    assert info.spec.ranks == M.spec.ranks == (1, 16, 1) and info.spec.params == info.params
    assert btcore.formats.describe(info.spec) == "ranks 1-16-1"
