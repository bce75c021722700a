"""app.training.charts: the loss and accuracy figures, pure functions of the trainer's events."""

from __future__ import annotations

import math

from app.training import charts as ct
from app.charts import FORMAT_COLORS
from btcore.train.outcome import Watch


def _events():
    start = {"event": "start", "run": "BT", "params": 100, "input_map_params": 10, "total_steps": 4,
             "config": {"model": {"kind": "bt"}}}
    steps = [{"event": "step", "run": "BT", "step": i, "epoch": i / 2, "train_loss": 2.0 - 0.1 * i, "train_acc": 0.5,
              "step_time": 0.01, "examples_per_s": 3200.0} for i in (1, 2, 3)]
    ev = {"event": "eval", "run": "BT", "step": 2, "epoch": 1.0, "train_loss": 1.85, "train_acc": 0.4,
          "val_loss": 1.9, "val_acc": 0.3}
    dense = [{"event": "start", "run": "LSTM", "params": 1000, "total_steps": 4, "config": {"model": {"kind": "dense"}}},
             {"event": "step", "run": "LSTM", "step": 1, "train_loss": float("nan"), "step_time": 0.02,
              "examples_per_s": 1600.0},
             {"event": "end", "run": "LSTM", "status": "diverged", "reason": "non-finite loss"}]
    return [start, *steps, ev, *dense]


def test_chart_builders():
    events = _events()
    loss = ct.loss_figure(events)
    names = [t.name for t in loss.data]
    assert names == ["BT train", "BT validation"]  # the NaN step of LSTM draws nothing
    assert list(loss.data[0].x) == [1, 2, 3] and loss.data[0].line.color == FORMAT_COLORS["BT"]
    acc = ct.accuracy_figure(events, chance=0.25)
    assert [t.name for t in acc.data] == ["BT train", "BT validation"] and list(acc.data[1].y) == [0.3]
    assert ct.run_color("x", "tt", 0) == FORMAT_COLORS["TT"]


def test_x_axes_steps_examples_seconds():
    events = _events()
    for e in events:
        if e.get("event") in ("step", "eval"):
            e["examples"], e["run_s"] = 32 * e["step"], 0.5 * e["step"]
    assert list(ct.loss_figure(events, x="examples").data[0].x) == [32, 64, 96]
    fig = ct.accuracy_figure(events, x="run_s")
    assert list(fig.data[1].x) == [1.0] and fig.layout.xaxis.title.text == ct.X_AXES["run_s"]
    import pytest

    with pytest.raises(ValueError, match="x must be one of"):
        ct.loss_figure(events, x="epochs")


def test_sweep_figures():
    rows = [{"kind": "bt", "rank": r, "blocks": n, "input_map_params": 100 * r * n, "val_acc": 0.1 * r + 0.05 * n}
            for r in (2, 4) for n in (1, 2)]
    rows += [{"kind": "tt", "rank": None, "blocks": None, "input_map_params": 500, "val_acc": 0.6},
             {"kind": "dense", "rank": None, "blocks": None, "input_map_params": 9000, "val_acc": 0.7}]
    fig = ct.sweep_figure(rows, chance=0.125)
    assert len(fig.data) == 1 and list(fig.data[0].text)[0] == "R=2, N=1"
    assert len(fig.layout.shapes) == 3  # TT, dense and chance lines
    heat = ct.sweep_heatmap(rows)
    assert list(heat.data[0].y) == ["R=2", "R=4"] and list(heat.data[0].x) == ["N=1", "N=2"]
    assert heat.data[0].z[1][1] == rows[3]["val_acc"]


def test_a_run_with_one_or_two_steps_shows_markers():
    events = [{"event": "start", "run": "TT", "config": {"model": {"kind": "tt"}}},
              {"event": "step", "run": "TT", "step": 1, "train_loss": 1.45}]
    (trace,) = ct.loss_figure(events).data
    assert "markers" in trace.mode and list(trace.y) == [1.45]
    many = events + [{"event": "step", "run": "TT", "step": s, "train_loss": 1.4} for s in (2, 3)]
    assert ct.loss_figure(many).data[0].mode == "lines"


# -- the diverging point, the task's metric ---------------------------------------------------------
def _diverged_events(reason: str, batch: int = 4, *, step: int | None = None, loss: float | None = None,
                     check: str | None = "loss"):
    return [{"event": "start", "run": "BT", "batch": batch, "config": {"model": {"kind": "bt"}}},
            {"event": "step", "run": "BT", "step": 1, "train_loss": 1.8, "examples": batch, "run_s": 0.05},
            {"event": "end", "run": "BT", "status": "diverged", "reason": reason, "run_s": 0.1, "stop_step": step,
             "stop_loss": loss, "stop_check": check}]


def test_the_diverging_point_is_drawn_at_the_loss_the_trainer_stopped_at():
    watch = Watch(lr=1000.0, weight_decay=0.0, clipped=False)
    assert watch.loss(1.8, 1) is None
    reason = watch.loss(2.95e4, 2)  # the trainer's own outcome record
    events = _diverged_events(reason, step=2, loss=2.95e4)
    assert ct.diverged_points(events) == [{"run": "BT", "step": 2, "loss": 2.95e4, "examples": 8, "run_s": 0.1}]
    fig = ct.loss_figure(events)
    point = next(t for t in fig.data if t.name == "BT diverged")
    assert list(point.x) == [1, 2] and list(point.y) == [1.8, 2.95e4]  # joined to the last reported step
    assert list(point.marker.symbol) == ["circle", "x"] and "2.95e+04" in point.text[-1]
    assert fig.layout.yaxis.type == "log"
    on_examples = next(t for t in ct.loss_figure(events, "examples").data if t.name == "BT diverged")
    assert list(on_examples.x) == [4, 8]


def test_a_non_finite_loss_is_drawn_above_the_others():
    watch = Watch(lr=1000.0, weight_decay=0.0, clipped=False)
    reason = watch.loss(float("nan"), 3)
    events = _diverged_events(reason, step=3, loss=float("nan"))
    points = ct.diverged_points(events)
    assert points[0]["step"] == 3 and points[0]["loss"] is None
    point = next(t for t in ct.loss_figure(events).data if t.name == "BT diverged")
    assert point.y[-1] > 1.8 and math.isfinite(point.y[-1]) and point.text[-1] == "diverged: non-finite"


def test_runs_that_did_not_diverge_have_no_stop_marker():
    events = _diverged_events("finished 1 steps", check=None)
    events[-1]["status"] = "done"
    fig = ct.loss_figure(events)
    assert ct.diverged_points(events) == [] and not [t for t in fig.data if "diverged" in t.name]
    assert fig.layout.yaxis.type is None


def test_the_metric_chart_follows_the_task():
    events = [{"event": "start", "run": "BT", "config": {"model": {"kind": "bt"}}},
              {"event": "eval", "run": "BT", "step": 4, "val_nelbo": 210.0, "train_nelbo": 220.0}]
    fig = ct.metric_figure(events, "val_nelbo", "validation nELBO", higher_is_better=False)
    assert fig.layout.title.text == "Validation nELBO (lower is better)" and fig.layout.yaxis.title.text == "nELBO"
    assert {t.name for t in fig.data} == {"BT train", "BT validation"}
    assert fig.layout.yaxis.range is None  # only accuracy is pinned to [0, 1]
    acc = ct.accuracy_figure([], chance=0.25)
    assert acc.layout.title.text == "Accuracy" and list(acc.layout.yaxis.range) == [0, 1.02]


def test_the_sweep_charts_follow_the_tasks_metric():
    rows = [{"run": f"BT{r}", "kind": "bt", "rank": r, "blocks": 1, "input_map_params": 100 * r,
             "val_nelbo": 200.0 - r} for r in (2, 4)] + [{"run": "TT", "kind": "tt", "input_map_params": 500,
                                                          "val_nelbo": 190.25}]
    fig = ct.sweep_figure(rows, None, "val_nelbo", "validation nELBO")
    assert fig.layout.title.text == "Final validation nELBO vs input-map parameters"
    assert list(fig.data[0].y) == [198.0, 196.0] and fig.layout.yaxis.range is None
    assert fig.layout.annotations[0].text == "TT (500 params): 190.2"
    heat = ct.sweep_heatmap(rows, "val_nelbo", "validation nELBO")
    assert heat.data[0].z[0][0] == 198.0 and heat.data[0].text[1][0] == "196" and heat.data[0].zmax is None
    from app.training import tables
    table = tables.sweep_table(rows, "val_nelbo", "validation nELBO")
    assert table[0]["val nELBO"] == "198" and "val accuracy" not in table[0]


def test_a_real_divergence_is_drawn_where_the_trainer_stopped_also_from_json_lines():
    import json

    from btcore.train import json_line, train
    from train_helpers import TASK, small_config

    events = []
    res = train(small_config("bt", lr=1000.0, grad_clip=None, epochs=1, max_steps=4), *TASK.splits(),
                callback=events.append)
    assert res.status == "diverged" and res.stop_check == "loss"
    for evs in (events, [json.loads(json_line(e)) for e in events]):  # as the page holds them, as the CLI prints them
        point = next(t for t in ct.loss_figure(evs).data if t.name.endswith(" diverged"))
        assert point.x[-1] == res.stop_step and point.y[-1] == res.stop_loss
        assert point.x[0] == res.stop_step - 1  # joined to the last step reported


def test_a_divergence_without_a_loss_has_no_point_and_a_non_finite_one_from_json_is_at_the_top():
    assert ct.diverged_points(_diverged_events("bad inputs", step=1, check="inputs")) == []
    nulled = _diverged_events("non-finite", step=2, loss=None)  # a JSON line writes inf / NaN as null
    point = next(t for t in ct.loss_figure(nulled).data if t.name == "BT diverged")
    assert list(point.x) == [1, 2] and point.y[-1] > 1.8 and point.text[-1] == "diverged: non-finite"


def test_step_ticks_are_whole_numbers():
    from app.training import charts as ctw
    events = [{"event": "start", "run": "a", "kind": "bt"}]
    events += [{"event": "step", "run": "a", "step": s, "examples": 8 * s, "run_s": 0.1 * s, "train_loss": 1.0 / s,
                "epoch": s / 2} for s in (1, 2)]
    events += [{"event": "eval", "run": "a", "step": 2, "examples": 16, "run_s": 0.2, "val_loss": 0.9, "val_acc": 0.3}]
    fig = ctw.loss_figure(events)
    assert fig.layout.xaxis.tickformat == ",d" and fig.layout.xaxis.dtick == 1  # 2 steps: ticks 0, 1, 2
    assert ctw.loss_figure(events, x="run_s").layout.xaxis.dtick is None  # seconds are not counts
