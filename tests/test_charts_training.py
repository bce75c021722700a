"""The Training page's charts: the diverging point on the loss chart, the task's metric chart."""

from __future__ import annotations

import math

from app.training import charts as ct
from btcore.train.outcome import Watch


def _events(reason: str, batch: int = 4):
    return [{"event": "start", "run": "BT", "batch": batch, "config": {"model": {"kind": "bt"}}},
            {"event": "step", "run": "BT", "step": 1, "train_loss": 1.8, "examples": batch, "run_s": 0.05},
            {"event": "end", "run": "BT", "status": "diverged", "reason": reason, "run_s": 0.1}]


def test_the_diverging_point_is_drawn_at_the_loss_the_trainer_stopped_at():
    watch = Watch(lr=1000.0, weight_decay=0.0, clipped=False)
    assert watch.loss(1.8, 1) is None
    reason = watch.loss(2.95e4, 2)  # the trainer's own outcome record
    events = _events(reason)
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
    points = ct.diverged_points(_events(reason))
    assert points[0]["step"] == 3 and points[0]["loss"] is None
    point = next(t for t in ct.loss_figure(_events(reason)).data if t.name == "BT diverged")
    assert point.y[-1] > 1.8 and math.isfinite(point.y[-1]) and point.text[-1] == "diverged: non-finite"


def test_runs_that_did_not_diverge_have_no_stop_marker():
    events = _events("finished 1 steps")
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
