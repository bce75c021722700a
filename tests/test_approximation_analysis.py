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
