"""Unit tests of app/approximation/analysis.py: Pareto front, noise floor, teaching text."""

from __future__ import annotations

import numpy as np
import pytest

from app.approximation import analysis as an
from approx_cases import ROWS, SWEEP, point as _r


def test_pareto_front_basic_and_sorted_by_params():
    pts = [(100, 0.5), (50, 0.9), (200, 0.5), (400, 0.1), (300, 0.6), (50, 0.95)]
    assert an.pareto_front(pts) == [1, 0, 3]


def test_pareto_front_ties_missing_and_empty():
    assert an.pareto_front([]) == []
    assert an.pareto_front([(10, None), (20, float("nan")), (30, 0.2)]) == [2]
    assert an.pareto_front([(10, 0.2), (10, 0.2)]) == [0]  # exact duplicates: the first
    # a point with the same params and a lower error dominates
    assert an.pareto_front([(10, 0.3), (10, 0.2)]) == [1]


def test_pareto_front_no_point_dominated_and_all_others_dominated():
    rng = np.random.default_rng(0)
    pts = [(int(p), float(e)) for p, e in zip(rng.integers(1, 1000, 60), rng.random(60))]
    front = set(an.pareto_front(pts))
    for i, (p, e) in enumerate(pts):
        dominated = any((q <= p and f <= e) and (q < p or f < e) for q, f in pts)
        assert (i in front) == (not dominated and all(pts[j] != (p, e) for j in range(i)))


def test_explain_names_the_winner_ties_and_worst():
    text = an.explain(ROWS, SWEEP, "bt", (256, 256), noise=0.01)
    assert "lowest error is **BT**: 0.0099 with 1,024 parameters" in text
    assert "Tucker ties" in text
    assert "TT is worst at 0.41" in text
    assert "BT 2 of 2" in text
    assert "Pareto front" in text
    # the expectation at this noise level, and the measured winner agrees with it
    assert "plus noise of relative size 0.01" in text and "noise floor (≈ 0.01)" in text
    assert "**Measured: BT wins here, as expected** (0.0099; Tucker ties with it), at the noise floor." in text


def test_explain_structured_targets_follow_the_noise_and_the_measured_winner():
    # a larger noise: the text states it and its floor, never the default 1%
    rows = [_r("BT", 1024, 0.29), _r("TT", 960, 0.5)]
    loud = an.explain(rows, [], "bt", (256, 256), noise=0.3)
    assert "relative size 0.3" in loud and f"≈ {an.noise_floor(0.3):.2g}" in loud and "≈ 0.29" in loud
    assert "1%" not in loud and "0.01" not in loud
    assert "BT wins here, as expected" in loud and "at the noise floor" in loud
    # the measured winner is not the built-in format: the text says so instead of claiming a win
    tt_wins = an.explain([_r("BT", 1024, 0.2), _r("TT", 960, 0.0101)], [], "bt", (256, 256), noise=0.01)
    assert "**Measured: TT beats BT here** (0.0101 against 0.2), unlike the expectation" in tt_wins
    assert "BT wins" not in tt_wins and "as expected" not in tt_wins
    bt_wins_tt = an.explain([_r("BT", 1024, 0.0101), _r("TT", 960, 0.3)], [], "tt", (256, 256), noise=0.01)
    assert "exact TT-matrix (ranks 4)" in bt_wins_tt and "BT beats TT here" in bt_wins_tt
    # winner as expected but above the floor: the text says it did not get there
    short = an.explain([_r("BT", 100, 0.2), _r("TT", 100, 0.4)], [], "bt", (256, 256), noise=0.01)
    assert "BT wins here, as expected" in short and "above the noise floor" in short
    # no noise: exact to numerical precision is the expectation
    exact = an.explain([_r("TT", 960, 1e-13), _r("Tucker", 945, 0.3)], [], "tt", (256, 256), noise=0.0)
    assert "with no noise" in exact and "TT wins here, as expected" in exact and "at numerical precision." in exact
    # a tie for the lowest error, and a run without the built-in format
    tie = an.explain([_r("Tucker", 945, 0.0100), _r("BT", 1024, 0.0102)], [], "bt", (256, 256), noise=0.01)
    assert "BT ties for the lowest error, as expected" in tie
    assert "BT was not fitted" in an.explain([_r("TT", 960, 0.4)], [], "bt", (256, 256), noise=0.01)
    assert an.noise_floor(0.01) == pytest.approx(0.01, rel=1e-4) and an.noise_floor(0.0) == 0.0


def test_explain_random_and_tall_and_precision():
    text = an.explain(ROWS, [], "gaussian", (4096, 256))
    assert "random matrix" in text and "√(1 − P/IJ)" in text
    assert "keeping 1,024 of the 1,048,576 entries exactly gives 1.000" in text  # BT, the best row
    assert "BT, reaches 0.0099" in text
    assert "tall" in text
    prec = an.explain([_r("TT", 10, 1e-12), _r("BT", 10, 3e-12)], [], "kernel", (256, 256))
    assert "1.0e-12 (at numerical precision)" in prec and "BT ties" in prec and "float64 precision" in prec
    assert an.explain([], [], "upload", (4, 4)).startswith("**Your matrix")
    assert "stored in BT format" in an.explain([], [], "trained_bt", (48, 24))
    assert "random matrix" in an.explain([], [], "trained_dense", (48, 24))
    far = an.explain([_r("TT", 10, 1e-6), _r("CP", 10, 0.1)], [], "tt", (4, 4), noise=0.0)
    assert "over 1,000x the error" in far


# -- stalled fits: the rank's limit or the fit's -------------------------------------------------
def _from_modes_matrix(T, im, om):
    """The I x J matrix whose tensorization (modes I_k J_k) is T: the inverse of rank_floor's reshaping."""
    d = len(im)
    X = T.reshape([s for i, j in zip(im, om) for s in (i, j)])
    return X.transpose([2 * k for k in range(d)] + [2 * k + 1 for k in range(d)]).reshape(
        int(np.prod(im)), int(np.prod(om)))


def test_rank_floor_is_the_truncated_svd_tail_of_the_worst_mode_unfolding():
    rng = np.random.default_rng(0)
    im, om = (2, 3), (4, 2)  # modes 8 and 6
    U, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s = np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    T = U[:, :6] @ np.diag(s) @ V.T  # mode-1 unfolding with known singular values (mode 2 is its transpose)
    W = _from_modes_matrix(T, im, om)
    for r in range(7):
        want = np.sqrt(np.sum(s[r:] ** 2) / np.sum(s ** 2))
        assert an.rank_floor(W, im, om, (r, 6)) == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert an.rank_floor(W, im, om, (8, r)) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert an.mode_ranks("BT", (2, 3), 2, 2) == (4, 6) and an.mode_ranks("CP", (1, 1), 5, 2) == (5, 5)
    assert an.mode_ranks("TR", (2, 3), None, 2) == (6, 6) and an.mode_ranks("TT", (1, 2, 1), None, 2) is None


def test_rank_floor_bounds_a_real_tucker_fit_from_below():
    from btcore import decompose as dec
    from btcore.target_matrices import make_target

    im = om = (4, 4, 4)
    W = make_target("gaussian", im, om, 0)
    _, info = dec.fit_tucker(W, im, om, 3)
    floor = an.rank_floor(W, im, om, an.mode_ranks("Tucker", info.ranks, None, 3))
    assert 0 < floor <= info.relative_error <= np.sqrt(3) * floor  # HOOI sits between the bound and sqrt(d) x it


def test_stall_text_says_rank_limited_only_when_the_bound_shows_it_and_names_page_controls():
    limited = an.stall_text("TR", 0.30, 0.29, "quick")
    assert limited.startswith("TR:") and "ranks limit it" in limited
    unknown = an.stall_text("TR", 0.67, 0.28, "quick")
    assert "ranks limit it" not in unknown and "thorough effort (Fit settings" in unknown
    for text in (limited, unknown, an.stall_text("BT", 0.5, None, "thorough"), an.stall_text("Tucker", 0.5, 0.1, "quick")):
        assert "swamp" not in text and "local minimum" not in text and "restart" not in text
    assert "thorough" not in an.stall_text("Tucker", 0.5, 0.1, "quick")  # Tucker's fit is the same at both efforts
    assert "lesson view" in an.stall_text("BT", 0.5, 0.1, "quick", lesson=True)
