"""Unit tests for app/charts_approx.py: Pareto front, sweep budgets, downsampling, teaching text, figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app import charts_approx as ca
from btcore import decompose as dec


# -- pure helpers ----------------------------------------------------------------------------------
def test_pareto_front_basic_and_sorted_by_params():
    pts = [(100, 0.5), (50, 0.9), (200, 0.5), (400, 0.1), (300, 0.6), (50, 0.95)]
    assert ca.pareto_front(pts) == [1, 0, 3]


def test_pareto_front_ties_missing_and_empty():
    assert ca.pareto_front([]) == []
    assert ca.pareto_front([(10, None), (20, float("nan")), (30, 0.2)]) == [2]
    assert ca.pareto_front([(10, 0.2), (10, 0.2)]) == [0]  # exact duplicates: the first
    # a point with the same params and a lower error dominates
    assert ca.pareto_front([(10, 0.3), (10, 0.2)]) == [1]


def test_pareto_front_no_point_dominated_and_all_others_dominated():
    rng = np.random.default_rng(0)
    pts = [(int(p), float(e)) for p, e in zip(rng.integers(1, 1000, 60), rng.random(60))]
    front = set(ca.pareto_front(pts))
    for i, (p, e) in enumerate(pts):
        dominated = any((q <= p and f <= e) and (q < p or f < e) for q, f in pts)
        assert (i in front) == (not dominated and all(pts[j] != (p, e) for j in range(i)))


def test_sweep_budgets():
    b = ca.sweep_budgets(1000, 65536, 5)
    assert b == [250, 500, 1000, 2000, 4000]
    assert ca.sweep_budgets(1000, 65536, 0) == []
    assert ca.sweep_budgets(1000, 65536, 1) == [1000]
    four = ca.sweep_budgets(1000, 65536, 4)
    assert len(four) == 4 and four == sorted(four) and 1000 not in four
    # capped at half the dense size, de-duplicated
    capped = ca.sweep_budgets(30000, 65536, 5)
    assert max(capped) == 32768 and len(capped) == len(set(capped))
    assert min(ca.sweep_budgets(10, 65536, 5)) >= 8


def test_downsample_block_means_and_ragged():
    A = np.arange(16, dtype=float).reshape(4, 4)
    assert np.array_equal(ca.downsample(A, 4), A)
    B = ca.downsample(A, 2)
    assert B.shape == (2, 2)
    assert B[0, 0] == pytest.approx(np.mean([0, 1, 4, 5]))
    R = np.ones((5, 300))
    D = ca.downsample(R, 128)
    assert D.shape == (5, 100) and np.allclose(D, 1.0)  # ragged groups averaged over what they hold
    E = ca.downsample(np.arange(5.0)[:, None], 2)
    assert E.ravel().tolist() == [1.0, 3.5]  # groups of 3: (0,1,2), (3,4)
    with pytest.raises(ValueError):
        ca.downsample(np.zeros(4))


def test_fit_bytes_is_btcores_estimate_of_the_largest_fit():
    im = om = (4, 4, 4, 4)
    sizes = (16,) * 4
    tt = {"format": "TT", "ranks": (1, 4, 4, 4, 1), "blocks": None}
    small = {"format": "BT", "ranks": (2,) * 4, "blocks": 2}
    big_cp = {"format": "CP", "ranks": (1,) * 4, "blocks": 300}
    three_dense = 8 * 3 * 65536
    assert ca.fit_bytes(im, om, [tt]) == three_dense  # TT-SVD, and the page's target + reconstruction + residual
    assert ca.fit_bytes(im, om, []) == three_dense
    # the fits need at least what fit_bt checks before allocating, for each of them
    for t in (small, big_cp):
        assert ca.fit_bytes(im, om, [tt, small, big_cp]) >= dec.als_memory_bytes(sizes, t["ranks"], t["blocks"])
    assert ca.fit_bytes(im, om, [tt, small, big_cp]) == dec.als_memory_bytes(sizes, (1,) * 4, 300) > three_dense
    assert ca.fit_bytes(im, om, [big_cp]) > ca.fit_bytes(im, om, [small])  # the Gram work arrays grow as N^2


# -- teaching text ---------------------------------------------------------------------------------
def _r(fmt: str, params: int, err: float, **extra) -> dict:
    """A result row as the page makes it: error text and precision flag from the fit's FitInfo."""
    info = dec.FitInfo(format=fmt, method="ALS", relative_error=err, at_precision=err < dec.AT_PRECISION,
                       params=params)
    return {"format": fmt, "params": params, "rel_error": err, "error_text": info.error_text,
            "at_precision": info.at_precision, **extra}


ROWS = [_r("BT", 1024, 0.0099), _r("TT", 960, 0.41), _r("Tucker", 945, 0.0101), _r("CP", 975, 0.2)]
SWEEP = [_r(f, b, e, budget=b)
         for b, errs in ((500, {"BT": 0.3, "TT": 0.6, "Tucker": 0.4, "CP": 0.35}),
                         (1000, {"BT": 0.01, "TT": 0.41, "Tucker": 0.0101, "CP": 0.2}))
         for f, e in errs.items()]


def test_explain_names_the_winner_ties_and_worst():
    text = ca.explain(ROWS, SWEEP, "bt", (256, 256), noise=0.01)
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
    loud = ca.explain(rows, [], "bt", (256, 256), noise=0.3)
    assert "relative size 0.3" in loud and f"≈ {ca.noise_floor(0.3):.2g}" in loud and "≈ 0.29" in loud
    assert "1%" not in loud and "0.01" not in loud
    assert "BT wins here, as expected" in loud and "at the noise floor" in loud
    # the measured winner is not the built-in format: the text says so instead of claiming a win
    tt_wins = ca.explain([_r("BT", 1024, 0.2), _r("TT", 960, 0.0101)], [], "bt", (256, 256), noise=0.01)
    assert "**Measured: TT beats BT here** (0.0101 against 0.2), unlike the expectation" in tt_wins
    assert "BT wins" not in tt_wins and "as expected" not in tt_wins
    bt_wins_tt = ca.explain([_r("BT", 1024, 0.0101), _r("TT", 960, 0.3)], [], "tt", (256, 256), noise=0.01)
    assert "exact TT-matrix (ranks 4)" in bt_wins_tt and "BT beats TT here" in bt_wins_tt
    # winner as expected but above the floor: the text says it did not get there
    short = ca.explain([_r("BT", 100, 0.2), _r("TT", 100, 0.4)], [], "bt", (256, 256), noise=0.01)
    assert "BT wins here, as expected" in short and "above the noise floor" in short
    # no noise: exact to numerical precision is the expectation
    exact = ca.explain([_r("TT", 960, 1e-13), _r("Tucker", 945, 0.3)], [], "tt", (256, 256), noise=0.0)
    assert "with no noise" in exact and "TT wins here, as expected" in exact and "at numerical precision." in exact
    # a tie for the lowest error, and a run without the built-in format
    tie = ca.explain([_r("Tucker", 945, 0.0100), _r("BT", 1024, 0.0102)], [], "bt", (256, 256), noise=0.01)
    assert "BT ties for the lowest error, as expected" in tie
    assert "BT was not fitted" in ca.explain([_r("TT", 960, 0.4)], [], "bt", (256, 256), noise=0.01)
    assert ca.noise_floor(0.01) == pytest.approx(0.01, rel=1e-4) and ca.noise_floor(0.0) == 0.0


def test_explain_random_and_tall_and_precision():
    text = ca.explain(ROWS, [], "gaussian", (4096, 256))
    assert "random matrix" in text and "√(1 − P/IJ)" in text
    assert "keeping 1,024 of the 1,048,576 entries exactly gives 1.000" in text  # BT, the best row
    assert "BT, reaches 0.0099" in text
    assert "tall" in text
    prec = ca.explain([_r("TT", 10, 1e-12), _r("BT", 10, 3e-12)], [], "kernel", (256, 256))
    assert "1.0e-12 (at numerical precision)" in prec and "BT ties" in prec and "float64 precision" in prec
    assert ca.explain([], [], "upload", (4, 4)).startswith("**Your matrix")
    assert "stored in BT format" in ca.explain([], [], "trained_bt", (48, 24))
    assert "random matrix" in ca.explain([], [], "trained_dense", (48, 24))
    far = ca.explain([_r("TT", 10, 1e-6), _r("CP", 10, 0.1)], [], "tt", (4, 4), noise=0.0)
    assert "over 1,000x the error" in far


# -- figures ---------------------------------------------------------------------------------------
def test_error_vs_params_log_log_curves_and_pareto():
    fig = ca.error_vs_params(SWEEP, main=ROWS, dense=65536).to_dict()
    assert fig["layout"]["xaxis"]["type"] == "log" and fig["layout"]["yaxis"]["type"] == "log"
    names = [t.get("name") for t in fig["data"]]
    for f in ("BT", "TT", "Tucker", "CP", ca.PARETO_TRACE):
        assert f in names
    bt = next(t for t in fig["data"] if t["name"] == "BT")
    assert list(bt["x"]) == [500, 1000] and list(bt["y"]) == [0.3, 0.01]
    front = ca.pareto_front([(p["params"], p["rel_error"]) for p in SWEEP])
    ringed = next(t for t in fig["data"] if t["name"] == "on the front")
    assert list(ringed["x"]) == [SWEEP[i]["params"] for i in front]
    assert sum(1 for n in names if n and n.startswith("your ")) == 4
    assert "65,536" in fig["layout"]["xaxis"]["title"]["text"]
    assert not fig["layout"].get("shapes")  # no precision band: every error is well above 1e-8


def test_error_vs_params_reference_precision_band_and_zero():
    pts = [{"budget": 10, "format": "TT", "params": 10, "rel_error": 0.0},
           {"budget": 20, "format": "TT", "params": 20, "rel_error": 1e-3}]
    fig = ca.error_vs_params(pts, dense=100, reference=True).to_dict()
    tt = next(t for t in fig["data"] if t["name"] == "TT")
    assert min(tt["y"]) > 0  # an exact zero is drawn at the floor of the log axis
    ref = next(t for t in fig["data"] if t["name"] == "keep P entries")
    assert ref["y"][0] == pytest.approx(math.sqrt(1 - 10 / 100))
    assert fig["layout"]["shapes"]  # the float64-precision band


def test_heatmaps_share_one_scale():
    T = np.arange(12.0).reshape(3, 4)
    fig = ca.heatmaps(T, {"BT": T * 0.5, "TT": T + 1}, shape=(300, 400), errors={"BT": "0.5", "TT": "0.1"}).to_dict()
    hm = [t for t in fig["data"] if t["type"] == "heatmap"]
    assert len(hm) == 3
    assert len({t["zmin"] for t in hm}) == 1 and len({t["zmax"] for t in hm}) == 1
    assert 0 <= hm[0]["zmin"] < 0.1 and 10.9 < hm[0]["zmax"] <= 11 and hm[0]["colorscale"][0][1] == "#440154"  # Viridis
    signed = ca.heatmaps(T - 5.5, {"BT": T}).to_dict()["data"][0]
    assert signed["zmin"] == -signed["zmax"]  # signed data: symmetric diverging scale
    assert sum(bool(t.get("showscale")) for t in hm) == 1
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles[0] == "target W" and "BT (error 0.5)" in titles
    assert max(hm[0]["x"]) < 400 and max(hm[0]["y"]) < 300  # coordinates of the full matrix


def test_residual_is_symmetric_and_convergence():
    R = np.array([[-1.0, 3.0], [0.5, 0.0]])
    fig = ca.residual_heatmap(R, "BT").to_dict()
    assert fig["data"][0]["zmin"] == -3.0 and fig["data"][0]["zmax"] == 3.0
    assert "BT" in fig["layout"]["title"]["text"]
    conv = ca.convergence({"BT": [0.5, 0.2, 0.1], "TT": [0.3], "CP": []}).to_dict()
    names = [t["name"] for t in conv["data"]]
    assert names == ["BT", "TT (direct, TT-SVD)"]
    assert conv["layout"]["yaxis"]["type"] == "log"
    assert list(conv["data"][0]["x"]) == [0, 1, 2]
