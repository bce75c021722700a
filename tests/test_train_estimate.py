"""btcore.train.estimate: the timed probe's estimate is within 2x of the measured run."""

from __future__ import annotations

from btcore.train import probe_seconds, train
from train_helpers import data, small_config  # noqa: F401 (data is a fixture)


def test_estimate_within_2x_of_measured(data):
    train_set, val_set = data
    cfg = small_config("bt", epochs=2)
    est = probe_seconds(cfg, len(train_set), len(val_set), 6, data=train_set, steps=3)
    assert est["steps"] == 32 and est["evals"] == 2 and est["step_s"] > 0
    res = train(cfg, *data, estimated_s=est["estimated_s"])
    measured = res.final["run_s"]
    assert 0.5 * measured <= est["estimated_s"] <= 2.0 * measured
    assert res.history[0]["run_s"] > 0 and res.final["estimated_s"] == est["estimated_s"]


def test_probe_without_data_uses_the_shapes(data):
    cfg = small_config("tt", epochs=1, max_steps=5)
    est = probe_seconds(cfg, 512, 128, 6)
    assert est["steps"] == 5 and est["estimated_s"] > 0
