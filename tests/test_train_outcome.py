"""btcore.train.outcome: runs end "diverged" or "stalled" with the likely cause, never "done" with a blown-up loss."""

from __future__ import annotations

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
