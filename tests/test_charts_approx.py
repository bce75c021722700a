"""Unit tests of app/charts_approx.py: the figures of the Approximation page."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.approximation import charts as ca
from app.approximation.analysis import pareto_front
from approx_cases import ROWS, SWEEP, point as _r


def test_error_vs_params_log_log_curves_and_pareto():
    fig = ca.error_vs_params(SWEEP, main=ROWS, dense=65536).to_dict()
    assert fig["layout"]["xaxis"]["type"] == "log" and fig["layout"]["yaxis"]["type"] == "log"
    names = [t.get("name") for t in fig["data"]]
    for f in ("BT", "TT", "Tucker", "CP", ca.PARETO_TRACE):
        assert f in names
    bt = next(t for t in fig["data"] if t["name"] == "BT")
    assert list(bt["x"]) == [500, 1000] and list(bt["y"]) == [0.3, 0.01]
    front = pareto_front([(p.params, p.rel_error) for p in SWEEP])
    ringed = next(t for t in fig["data"] if t["name"] == "on the front")
    assert list(ringed["x"]) == [SWEEP[i].params for i in front]
    assert sum(1 for n in names if n and n.startswith("your ")) == 4
    assert "65,536" in fig["layout"]["xaxis"]["title"]["text"]
    assert not fig["layout"].get("shapes")  # no precision band: every error is well above 1e-8


def test_error_vs_params_reference_precision_band_and_zero():
    pts = [_r("TT", 10, 0.0, budget=10), _r("TT", 20, 1e-3, budget=20)]
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
    assert titles[0] == "target W" and "BT<br>error 0.5" in titles
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


def test_error_vs_params_your_markers_and_ticks_below_a_decade():
    """Errors within one decade: a linear axis with at most 8 ticks (a log axis would show no label);
    "your" markers in the legend, distinct per format, at the fitted (params, error)."""
    from app.charts import MAX_TICKS, YOUR_MARKERS

    sweep = [_r("BT", 500, 0.02, 500), _r("BT", 1000, 0.0101, 1000), _r("TT", 480, 0.05, 500), _r("TT", 990, 0.03, 1000)]
    fig = ca.error_vs_params(sweep, main=ROWS[:1] + [_r("TT", 960, 0.0102)]).to_dict()
    y = fig["layout"]["yaxis"]
    assert y["type"] == "linear" and y["nticks"] == MAX_TICKS
    yours = {t["name"]: t for t in fig["data"] if t["name"].startswith("your ")}
    assert set(yours) == {"your BT", "your TT"}
    assert yours["your BT"]["x"] == [1024] and yours["your BT"]["y"] == [0.0099]
    assert yours["your TT"]["x"] == [960] and yours["your TT"]["y"] == [0.0102]
    assert all(t["showlegend"] for t in yours.values())
    assert yours["your TT"]["marker"]["symbol"] == YOUR_MARKERS["TT"]["symbol"] != yours["your BT"]["marker"]["symbol"]
    names = [t["name"] for t in fig["data"]]
    assert names.index("your TT") < names.index("your BT")  # the larger ring first, the star on top


def test_error_vs_params_many_decades_has_at_most_eight_labels():
    """A smooth kernel's errors span 1e-15..1: decade steps so at most 8 labels, not 16."""
    from app.charts import MAX_TICKS, value_axis

    sweep = [_r("BT", 10 * 2**k, 10.0 ** -k, 10 * 2**k) for k in range(16)]
    fig = ca.error_vs_params(sweep).to_dict()
    y = fig["layout"]["yaxis"]
    assert y["type"] == "log" and {k: y[k] for k in ("dtick", "tick0")} == \
        {k: value_axis([p.rel_error for p in sweep])[k] for k in ("dtick", "tick0")}
    lo, hi = -15, 0
    assert (hi - lo) / y["dtick"] + 1 <= MAX_TICKS


def test_advice_front_marks_the_suggestion():
    import btcore
    from app.charts import value_axis

    W = btcore.target_matrices.make_target("bt", (4, 4), (4, 4), 0, rank=2, blocks=1, noise=0.01)
    df = btcore.suggest_formats(W, budget=120, max_order=2)
    fig = ca.advice_front(df).to_dict()
    best = btcore.recommended(df)
    star = next(t for t in fig["data"] if t["name"] == ca.SUGGESTED_TRACE)
    assert star["x"] == [best.params] and star["y"] == [pytest.approx(best.error)]
    total = sum(len(t["x"]) for t in fig["data"] if t["name"] in ("BT", "TT", "Tucker", "CP", "TR"))
    assert total == len(df)  # every candidate drawn
    front = next(t for t in fig["data"] if t["name"] == ca.PARETO_TRACE)
    assert set(front["x"]) == set(df[df["pareto"]]["params"])
    y = fig["layout"]["yaxis"]
    expect = value_axis([max(e, 1e-16) for e in df["error"]])
    assert {k: y.get(k) for k in expect} == expect
    assert fig["layout"]["xaxis"]["type"] == "log" and "budget 120" in fig["layout"]["xaxis"]["title"]["text"]


def test_convergence_shades_the_gauss_newton_phase_where_the_history_says():
    import json

    from app.approximation import charts as ca

    hist = [0.5, 0.3, 0.2, 0.19, 0.189, 1e-3, 1e-8, 1e-13]
    phases = [("ALS", 0, 4), ("NLS", 4, 7)]
    spec = json.loads(ca.convergence({"BT": hist, "TT": [0.4]}, phases={"BT": phases, "TT": []}).to_json())
    (band,) = [s for s in spec["layout"]["shapes"] if s.get("type") == "rect"]
    assert (band["x0"], band["x1"]) == (4, 7)
    labels = [a["text"] for a in spec["layout"]["annotations"]]
    assert labels == ["BT: Gauss-Newton (NLS)"]
    assert spec["layout"]["title"]["text"] == "Convergence"
    plain = json.loads(ca.convergence({"BT": hist}, phases={"BT": [("ALS", 0, 7)]}).to_json())
    assert not plain["layout"].get("shapes") and plain["layout"]["title"]["text"] == "ALS convergence"


def test_grey_images_same_scale_square_pixels_and_titles_that_fit():
    rng = np.random.default_rng(0)
    T = rng.uniform(size=(64, 48))
    recons = {f: np.clip(T + 0.1 * rng.standard_normal(T.shape), -0.2, 1.2) for f in ("BT", "TT", "Tucker", "CP")}
    errors = {f: "1.234e-01" for f in recons}
    figure = ca.grey_images(T, recons, shape=(64, 48), errors=errors)
    fig = figure.to_dict()
    data = fig["data"]
    assert len(data) == 5 and all(d["type"] == "heatmap" for d in data)
    assert all(d["zmin"] == 0.0 and d["zmax"] == 1.0 and d["zsmooth"] is False and not d["showscale"] for d in data)
    assert [tuple(c) for c in data[0]["colorscale"]] == [(0.0, "rgb(0, 0, 0)"), (1.0, "rgb(255, 255, 255)")]
    np.testing.assert_array_equal(np.asarray(figure.data[0].z), T)  # the picture itself, not a resample
    lay = fig["layout"]
    for k in range(1, 6):  # every panel: square pixels (y anchored to its own x at ratio 1)
        ax = lay["yaxis" if k == 1 else f"yaxis{k}"]
        assert ax["scaleanchor"] == ("x" if k == 1 else f"x{k}") and ax["scaleratio"] == 1
    # five panels across a 1,200 px page leave about 210 px each: no title line may need more than
    # about 30 characters at 12 px, or neighbouring titles run into each other
    titles = [a["text"] for a in lay["annotations"]]
    assert titles[0] == "target W" and all(max(len(line) for line in t.split("<br>")) <= 30 for t in titles)
    assert lay["margin"]["t"] >= 60  # room for the second line
    heat = ca.heatmaps(T, recons, errors=errors).to_dict()
    assert all(max(len(line) for line in a["text"].split("<br>")) <= 30 for a in heat["layout"]["annotations"])


def test_log_error_axes_write_decades_in_full_size_text_and_annotations_are_12px():
    """Plotly's "power" exponents are 70% of the tick font (10.5 px); the page writes 10⁻² instead."""
    fig = ca.convergence({"BT": [0.5, 0.05, 1e-3], "TT": [0.2]},
                         phases={"BT": [("ALS", 0, 1), ("NLS", 1, 2)]}).to_dict()
    y = fig["layout"]["yaxis"]
    assert y.get("exponentformat") != "power" and y["ticktext"] == ["10⁻³", "10⁻²", "10⁻¹", "10⁰"]
    assert y["tickvals"] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert all(a["font"]["size"] >= 12 for a in fig["layout"].get("annotations", []))
    pts = [_r("BT", 100, 1e-12, budget=100), _r("BT", 1000, 0.5, budget=1000)]
    fig = ca.error_vs_params(pts).to_dict()
    assert fig["layout"]["yaxis"].get("exponentformat") != "power" and "10⁻¹²" in fig["layout"]["yaxis"]["ticktext"]
    assert all(a["font"]["size"] >= 12 for a in fig["layout"].get("annotations", []))
