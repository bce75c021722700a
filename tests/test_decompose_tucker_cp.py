"""Tests of btcore.decompose.tucker_cp: Tucker (HOOI) and CP fits."""


from btcore.decompose import fit_cp, fit_tucker, relative_error
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
