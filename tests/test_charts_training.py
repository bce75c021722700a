"""app.charts_training: the loss and accuracy figures, pure functions of the trainer's events."""

from __future__ import annotations

from app import charts_training as ct
from app.charts import FORMAT_COLORS


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
