"""btcore.train.outcome: runs end "diverged" or "stalled" with the likely cause, never "done" with a blown-up loss."""

from __future__ import annotations

import json
import math

import pytest
import torch

from btcore.data import ClipSet
from btcore.tasks.action import chance_level, stall_margin
from btcore.train import TrainConfig, train
from btcore.train.outcome import Watch
from train_helpers import FRAME, data, small_config  # noqa: F401 (data is a fixture)


def test_huge_sgd_learning_rate_diverges_naming_the_learning_rate(data):
    res = train(small_config("bt", optimizer="sgd", lr=1000, grad_clip=None, epochs=2), *data)
    assert res.status == "diverged"
    assert "learning rate is likely too high" in res.reason and "1e+03" in res.reason
    assert "enable gradient clipping" in res.reason


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_learning_rate_one_without_clipping_never_ends_done(data, optimizer):
    res = train(small_config("bt", optimizer=optimizer, lr=1.0, grad_clip=None, epochs=2), *data)
    assert res.status in ("diverged", "stalled")
    assert "learning rate" in res.reason and "too high" in res.reason


def test_nan_data_is_blamed_on_the_data():
    x = torch.randn(64, 4, 768)
    bad = ClipSet(x, torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    x[3, 1, 2] = float("nan")  # after ClipSet's own check (which refuses NaN): data spoiled later
    res = train(small_config("tt", batch_size=64, epochs=2), bad, bad)
    assert res.status == "diverged" and "the data" in res.reason and "1 non-finite input" in res.reason
    assert "learning rate" not in res.reason.split(";")[0]


def test_weight_decay_inf_is_refused_and_a_huge_one_is_named(data):
    with pytest.raises(ValueError, match="weight_decay must be a finite number"):
        small_config("bt", weight_decay=float("inf"))
    res = train(small_config("bt", optimizer="sgd", lr=0.1, weight_decay=1e3, epochs=2), *data)
    assert res.status == "diverged" and "weight decay is too strong" in res.reason


def test_tiny_learning_rate_stalls_at_chance(data):
    res = train(small_config("bt", lr=1e-6, epochs=4), *data)
    assert res.status == "stalled" and "too low: raise it" in res.reason
    assert res.final["steps"] == 32  # half of the 64 steps, then it stops
    assert math.isfinite(res.final["val_acc"])


def test_a_learning_run_is_done(data):
    res = train(small_config("bt"), *data)
    assert res.status == "done" and res.final["val_acc"] > 0.5


def test_gradient_explosion_and_checks():
    w = Watch(lr=0.1, weight_decay=0.0, clipped=True, grad_factor=100.0)
    assert w.gradient(1.0, 1) is None and w.gradient(50.0, 2) is None
    assert "gradient norm exploded" in w.gradient(500.0, 3)
    assert "non-finite" in w.gradient(float("nan"), 4)
    w = Watch(lr=0.1, weight_decay=0.0, clipped=False, diverge_factor=10.0)
    assert w.loss(2.0, 1) is None and w.loss(19.0, 2) is None and "rose to 21" in w.loss(21.0, 3)
    assert w.validation(float("inf"), 0.5, 4, 10)[0] == "diverged"
    assert "weights became non-finite" in w.parameters(False, 5)
    assert chance_level(8) == 0.125 and stall_margin(0.125, 10_000) == 0.02


def test_checks_can_be_turned_off(data):
    res = train(small_config("bt", lr=1e-6, epochs=2, stall_fraction=None), *data)
    assert res.status == "done"
    with pytest.raises(ValueError, match="diverge_factor must be a number above 1"):
        TrainConfig(small_config("bt").model, diverge_factor=0.5)
    with pytest.raises(ValueError, match="stall_fraction must be between 0 and 1"):
        TrainConfig(small_config("bt").model, stall_fraction=2)


def _replayed_loss(cfg, data, step):
    """The training loss of ``step``, recomputed by a run without the divergence checks that stops there."""
    import dataclasses
    replay = dataclasses.replace(cfg, diverge_factor=None, grad_factor=None, max_steps=step)
    steps = [e for e in train(replay, *data).history if e["event"] == "step"]
    assert steps[-1]["step"] == step
    return steps[-1]["train_loss"]


def test_the_end_says_where_a_run_diverged_in_numbers(data):
    cfg = small_config("bt", lr=1000.0, grad_clip=None, epochs=2)
    events = []
    res = train(cfg, *data, callback=events.append)
    end = events[-1]
    assert res.status == "diverged" and end["event"] == "end" and end["stop_check"] == "loss"
    steps = [e["step"] for e in events if e["event"] == "step"]
    # the diverging step is the one after the last reported step, and its loss is the one that step computes
    assert end["stop_step"] == res.stop_step == steps[-1] + 1
    assert end["stop_loss"] == res.stop_loss
    assert res.stop_loss == pytest.approx(_replayed_loss(cfg, data, res.stop_step), rel=1e-5)
    assert res.stop_loss > cfg.diverge_factor * events[1]["train_loss"]
    assert f"step {res.stop_step}:" in res.reason and f"{res.stop_loss:.3g}" in res.reason
    assert res.to_dict()["stop_step"] == res.stop_step


def test_runs_that_end_otherwise_say_how(data):
    done = train(small_config("bt", max_steps=3, stall_fraction=None), *data)
    assert done.status == "done"
    assert (done.stop_step, done.stop_loss, done.stop_check) == (None, None, None)
    stalled = train(small_config("bt", lr=1e-6, epochs=4), *data)
    assert stalled.status == "stalled" and stalled.stop_check == "stall"
    assert stalled.stop_step == stalled.final["steps"] == 32 and stalled.stop_loss is None
    x = torch.randn(64, 4, 768)
    bad = ClipSet(x, torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    x[3, 1, 2] = float("nan")
    spoiled = train(small_config("tt", batch_size=64, epochs=2), bad, bad)
    assert (spoiled.stop_step, spoiled.stop_loss, spoiled.stop_check) == (1, None, "inputs")


def test_the_cli_end_line_carries_the_stopping_point(capsys):
    from btcore.train import main
    from train_helpers import CLI_SMALL

    assert main(["--model", "bt", *CLI_SMALL, "--lr", "1000", "--clip", "0", "--steps"]) == 1  # 1: a run diverged
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    end = next(ln for ln in lines if ln.get("event") == "end")
    steps = [ln["step"] for ln in lines if ln.get("event") == "step"]
    assert end["status"] == "diverged" and end["stop_check"] in ("loss", "gradient")
    assert end["stop_step"] == (steps[-1] + 1 if steps else 1) and isinstance(end["stop_loss"], float)
    assert f"step {end['stop_step']}:" in end["reason"]
    assert lines[-1]["summary"][0]["stop_step"] == end["stop_step"]
