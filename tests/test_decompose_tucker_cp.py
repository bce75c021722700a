"""Tests of btcore.decompose.tucker_cp: Tucker (HOOI) and CP fits."""

import warnings

import numpy as np
import pytest

from btcore.decompose import fit_cp, fit_tucker, interleave, relative_error
from decompose_cases import bt_dense as _bt


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


def _real_targets():
    """A 64 x 64 crop of scikit-image's camera photo and scikit-learn's digits matrix (1792 x 64)."""
    skimage_data = pytest.importorskip("skimage.data")
    datasets = pytest.importorskip("sklearn.datasets")
    crop = skimage_data.camera()[192:256, 224:288].astype(np.float64) / 255.0
    digits = datasets.load_digits().data[:1792].astype(np.float64)
    return [("camera crop", crop, (4, 4, 4), (4, 4, 4)), ("digits", digits, (7, 4, 8, 8), (2, 2, 4, 4))]


def _tensorly_error(kind, W, im, om, rank):
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import parafac, tucker

    assert tl.get_backend() == "numpy"  # tensorly's process-wide backend is left alone
    T = interleave(W, im, om)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # random_state: tensorly fills factor columns beyond a mode size at random (seeded here)
        M = (tl.tucker_to_tensor(tucker(T, rank=[min(rank, n) for n in T.shape], random_state=0)) if kind == "Tucker"
             else tl.cp_to_tensor(parafac(T, rank=rank, random_state=0)))
    return float(np.linalg.norm(T - M) / np.linalg.norm(T))


@pytest.mark.parametrize("kind,rank", [("Tucker", 3), ("Tucker", 6), ("CP", 4), ("CP", 12)])
def test_tucker_and_cp_as_accurate_as_tensorly_on_real_targets(kind, rank):
    fit = fit_tucker if kind == "Tucker" else fit_cp
    for name, W, im, om in _real_targets():
        M, info = fit(W, im, om, rank, warn=False)
        ref = _tensorly_error(kind, W, im, om, rank)
        # CP-ALS from different starts ends in different local minima: 0.2% is the band they share
        assert info.relative_error <= ref * (1.0005 if kind == "Tucker" else 1.002), (name, info.relative_error, ref)
        assert info.relative_error == pytest.approx(relative_error(W, M), rel=1e-9)
