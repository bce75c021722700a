"""app.study.charts and app.study.run.live_rows on hand-made study rows: traces, Pareto line, recommendation."""

from __future__ import annotations

import math

import pytest

from app.study.charts import PHASE_NAMES, compress_figure, front_figure, speed_figure
from app.study.run import live_rows


def _row(run, fmt, params, metric, *, phase="trained", pareto=False, recommended=False, speed=100.0):
    return {"run": run, "format": fmt, "phase": phase, "params": params, "val_metric": metric, "pareto": pareto,
            "recommended": recommended, "examples_per_s": speed}


ROWS = [_row("dense", "dense", 50_000, 0.6), _row("TT a", "tt", 900, 0.7, pareto=True),
        _row("BT a", "bt", 800, 0.5, pareto=True), _row("BT b", "bt", 2_500, 0.8, pareto=True, recommended=True),
        _row("TT b", "tt", 2_900, float("nan"))]


def test_front_figure_colours_formats_draws_the_front_and_marks_the_recommendation():
    fig = front_figure(ROWS, "validation accuracy").to_dict()
    by = {t["name"]: t for t in fig["data"]}
    assert list(by["BT"]["x"]) == [800, 2_500] and list(by["TT"]["x"]) == [900]  # the NaN row is left out
    assert by["BT"]["marker"]["color"] != by["TT"]["marker"]["color"]
    assert list(zip(by["Pareto front"]["x"], by["Pareto front"]["y"])) == [(800, 0.5), (900, 0.7), (2_500, 0.8)]
    star = by["recommended: BT b"]
    assert (star["x"][0], star["y"][0]) == (2_500, 0.8)
    assert fig["layout"]["xaxis"]["type"] == "log"  # 800 .. 50,000: more than a decade
    assert list(fig["layout"]["xaxis"]["tickvals"]) == [1_000, 2_000, 5_000, 10_000, 20_000, 50_000]


def test_speed_figure_plots_measured_speed():
    rows = ROWS[:4] + [_row("c", "bt", 400, 0.4, phase="compressed", speed=None)]
    fig = speed_figure(rows, "acc").to_dict()
    xs = sorted(x for t in fig["data"] if not t["name"].startswith("recommended") for x in t["x"])
    assert xs == [100.0] * 4


def test_compress_figure_has_the_three_series():
    rows = [_row("BT @1", "bt", 800, 0.6), _row("BT c @1", "bt", 780, 0.3, phase="compressed"),
            _row("BT f @1", "bt", 780, 0.55, phase="finetuned"), _row("dense", "dense", 9_000, 0.7)]
    fig = compress_figure(rows, "acc").to_dict()
    assert [t["name"] for t in fig["data"]] == list(PHASE_NAMES.values())
    assert [list(t["y"]) for t in fig["data"]] == [[0.6], [0.3], [0.55]]  # dense is not compressed: left out


def test_live_rows_follow_the_trainer_events():
    events = [{"event": "start", "run": "dense", "input_map_params": 9_000},
              {"event": "end", "run": "dense", "status": "done", "val_acc": 0.5, "examples_per_s": 10.0},
              {"event": "start", "run": "BT", "input_map_params": 700}]
    rows = live_rows(events, "val_acc")
    assert [(r["run"], r["status"], r["val_acc"]) for r in rows] == [("dense", "done", 0.5), ("BT", "training", None)]


@pytest.mark.parametrize("speeds", [[199.6, 200.2, 200.9, 200.0], [100, 200, 3_000], [50, 52, 55, 80],
                                    [1_500, 1_510], [3, 40_000, 900], [1_234.5, 1_234.5], [0.4, 0.9]])
def test_speed_ticks_are_distinct_horizontal_and_do_not_overlap(speeds):
    rows = [_row(f"r{i}", "bt", 800 + i, 0.5, speed=v) for i, v in enumerate(speeds)]
    axis = speed_figure(rows, "acc").to_dict()["layout"]["xaxis"]
    vals, text = list(axis["tickvals"]), list(axis["ticktext"])
    assert axis["tickangle"] == 0 and 2 <= len(vals) <= 8 and len(set(text)) == len(text)
    pos = [math.log10(v) for v in vals] if axis["type"] == "log" else vals
    lo, hi = (pos[0], pos[-1]) if axis["type"] == "linear" else (math.log10(min(speeds)), math.log10(max(speeds)))
    lo, hi = min(lo, pos[0]), max(hi, pos[-1])
    width_px = 560  # half of a 1400 px page, less the margins
    for (a, ta), (b, tb) in zip(zip(pos, text), zip(pos[1:], text[1:])):  # ~7 px a character at 12 px, 10 px apart
        assert (b - a) / (hi - lo) * width_px >= 3.5 * (len(ta) + len(tb)) + 10, (ta, tb)
    if axis["type"] == "linear":
        assert axis["range"][0] <= min(speeds) and max(speeds) <= axis["range"][1]
        assert all(float(t.replace(",", "")) == pytest.approx(v) for t, v in zip(text, vals))
