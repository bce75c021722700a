"""btcore.tasks.generation_task: the image-generation task through the trainer (data, loss, metrics, outcomes, previews)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from btcore.contract import set_rates
from btcore.tasks import TASKS, make_task
from btcore.tasks.generation import nelbo, preview
from btcore.tasks.generation_task import DigitImages, GenerationTask
from btcore.train import TrainConfig, compare, load_checkpoint, pin_contraction_rates, save_checkpoint, train
from btcore.train.sweep import sweep_configs, sweep_rows

#: A tiny DRAW on 8 x 8 digits (64 = 4x4x2x2 pixels): seconds per run on one core.
TASK = GenerationTask(image_size=8, train_size=400, steps=3, latent=4)
SMALL = dict(hidden=16, d=4, rank=2, blocks=2, tt_ranks=2)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    pin_contraction_rates()
    yield TASK.data(0)
    set_rates("cpu", torch.float32, None)


def _config(kind, **kw):
    opts = dict(epochs=2, lr=1e-2, batch_size=50, seed=0, task="generation", device="cpu")
    opts.update(kw)
    return TrainConfig(TASK.model_config(kind, **SMALL), **opts)


def _train(config, train_set, val_set, **kw):
    return train(config, train_set, val_set, task=TASK, **kw)


def test_registered_with_its_metric():
    assert TASKS["generation"] is GenerationTask
    t = make_task("generation")
    assert (t.metric, t.higher_is_better, t.metric_label) == ("val_nelbo", False, "validation nELBO (nats/image)")
    assert t.model_config("bt").image_modes == (4, 7, 4, 7)  # the paper's 784 = 4x7x4x7


def test_data_are_the_digits_split_by_the_seed(data):
    train_set, val_set = data
    assert (len(train_set), len(val_set)) == (400, 1797 - 400)
    (x,) = train_set.get([0, 5])
    assert x.shape == (2, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(TASK.data(0)[0].images, train_set.images) and not torch.equal(TASK.data(1)[0].images,
                                                                                    train_set.images)


@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_a_short_seeded_run_lowers_the_validation_nelbo(data, kind):
    train_set, val_set = data
    res = _train(_config(kind), train_set, val_set)
    evals = [e for e in res.history if e["event"] == "eval"]
    model = TASK.build_model(res.config.model, init=torch.Generator().manual_seed(0))
    start = nelbo(model, val_set.images)
    assert res.status == "done" and len(evals) == 2
    assert evals[-1]["val_nelbo"] < start - 0.05 * start  # 5 % below the nELBO at initialisation
    assert evals[-1]["val_kl"] >= 0 and evals[-1]["val_nelbo"] == pytest.approx(
        evals[-1]["val_bce"] + evals[-1]["val_kl"])


def test_the_trainer_scores_what_the_library_scores(data):
    """One evaluation batch holding the whole validation set: the trainer's val_nelbo is nelbo() of the model."""
    train_set, val_set = data
    small_val = DigitImages(val_set.images[:60], 8)
    res = _train(_config("bt", epochs=1), train_set, small_val)
    assert res.final["val_nelbo"] == pytest.approx(nelbo(res.model, small_val.images), rel=1e-6)


def test_same_seed_same_history_other_seed_another(data):
    train_set, val_set = data
    strip = (lambda h: [{k: v for k, v in e.items() if k in ("train_loss", "val_nelbo", "step")} for e in h])
    a, b = (_train(_config("tt", epochs=1), train_set, val_set) for _ in range(2))
    c = _train(_config("tt", epochs=1, seed=1), train_set, val_set)
    assert strip(a.history) == strip(b.history) != strip(c.history)


def test_stalled_when_the_nelbo_stays_at_its_start(data):
    """A learning rate too small to move the weights: the nELBO stays within 1 % of its value at initialisation."""
    train_set, val_set = data
    res = _train(_config("dense", lr=1e-9, epochs=4, stall_fraction=0.5), train_set, val_set)
    assert res.status == "stalled" and "validation nELBO" in res.reason and "nats/image" in res.reason


def test_diverged_is_reported_with_its_cause(data):
    train_set, val_set = data
    res = _train(_config("bt", lr=1e5, grad_clip=None, epochs=1), train_set, val_set)
    assert res.status == "diverged" and "learning rate" in res.reason


def test_previews_are_json_and_equal_the_library_preview(data):
    train_set, val_set = data
    seen = []
    res = _train(_config("bt", epochs=1), train_set, val_set, previews=True, callback=seen.append)
    p = next(e["preview"] for e in seen if e["event"] == "eval")
    json.dumps(p)
    assert set(p) == {"task", "kind", "samples", "originals", "reconstructions", "canvas", "size", "grid"}
    assert (p["task"], p["kind"], p["size"], p["grid"]) == ("generation", "images", 8, 6)
    lib = preview(res.model, val_set.images, seed=0, grid=6, digits=8)
    for key, want in (("samples", lib.samples), ("originals", lib.originals), ("reconstructions", lib.reconstructed),
                      ("canvas", lib.canvas)):
        got = np.asarray(p[key])
        assert got.shape == want.shape and np.abs(got - want).max() <= 5e-5, key
    assert np.asarray(p["samples"]).shape == (48, 48) and np.asarray(p["canvas"]).shape == (3, 8, 8)
    assert 0 <= np.min(p["samples"]) and np.max(p["samples"]) <= 1


def test_a_race_and_a_sweep_of_generation_runs(data):
    train_set, val_set = data
    grid = sweep_configs(_config("bt", max_steps=4, epochs=1), [1, 2], [1, 2])
    results = compare([_config("dense", max_steps=4, epochs=1), *grid], train_set, val_set, task=TASK)
    rows = sweep_rows(results, "generation")
    assert [(r["rank"], r["blocks"]) for r in rows] == [(None, None), (1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(r["status"] == "done" and r["val_nelbo"] > 0 for r in rows)


def test_checkpoint_round_trip(data, tmp_path):
    train_set, val_set = data
    res = _train(_config("tt", epochs=1), train_set, val_set)
    path = save_checkpoint(tmp_path / "g.pt", res.model, res.config, res.history)
    model, cfg, history = load_checkpoint(path)
    assert cfg.task == "generation" and cfg.model == res.config.model and history == res.history
    assert nelbo(model, val_set.images) == nelbo(res.model, val_set.images)


def test_estimates_count_the_images_and_the_steps():
    t = make_task("generation")
    assert t.data_bytes() == {"--image-size": 3 * 1797 * 784 * 4}
    small, big = (t.step_bytes(t.model_config("bt"), b) for b in (10, 1000))
    assert big["params"] == small["params"] == 4 * t.model_config("bt").num_params()
    assert big["training"] - small["training"] >= 990 * 8 * 8 * 4 * 784  # T=8 steps of 4 images per row, doubled
    (x,) = t.example_batch(t.model_config("dense"), 3, None)
    assert x.shape == (3, 784)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="steps"):
        GenerationTask(steps=0)
    with pytest.raises(ValueError, match="latent"):
        GenerationTask(latent=0)
    with pytest.raises(ValueError, match="train_size"):
        GenerationTask(train_size=1797)
    with pytest.raises(ValueError, match="image_modes"):
        GenerationTask(image_size=30).model_config("bt", in_modes=(4, 7, 4, 7))
