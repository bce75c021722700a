"""btcore.tasks.captioning_task: the captioning task through the trainer (data, loss, BLEU-4, outcomes, previews)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from btcore.contract import set_rates
from btcore.tasks import TASKS, make_task
from btcore.tasks.captioning import corpus_bleu, evaluate, positional_unigram_caption, preview
from btcore.tasks.captioning_task import CaptionImages, CaptioningTask
from btcore.tasks.scenes import make_scenes
from btcore.train import TrainConfig, compare, load_checkpoint, pin_contraction_rates, save_checkpoint, train
from btcore.train.sweep import sweep_configs, sweep_rows

#: One-object scenes of 2 colours and 2 shapes: a few epochs of a small captioner learn them.
TASK = CaptioningTask(train_size=400, val_size=60, max_objects=1, colours=2, shapes=2, noise=0.0)
SMALL = dict(hidden=32, d=4, rank=2, blocks=2, tt_ranks=2)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    pin_contraction_rates()
    yield TASK.data(0)
    set_rates("cpu", torch.float32, None)


def _config(kind, **kw):
    opts = dict(epochs=3, lr=1e-2, batch_size=20, seed=0, task="captioning", device="cpu")
    opts.update(kw)
    return TrainConfig(TASK.model_config(kind, **SMALL), **opts)


def _train(config, train_set, val_set, **kw):
    return train(config, train_set, val_set, task=TASK, **kw)


def test_registered_with_its_metrics():
    assert TASKS["captioning"] is CaptioningTask
    t = make_task("captioning")
    assert (t.metric, t.higher_is_better) == ("val_bleu", True)
    assert t.model_config("bt").image_modes == (8, 8, 8, 6)  # 3x32x32 = 3,072


def test_batches_hold_images_and_tokens(data):
    train_set, val_set = data
    images, tokens = train_set.get([0, 1, 2])
    assert images.shape == (3, 3, 32, 32) and tokens.dim() == 2 and bool((tokens[:, 0] == 1).all())
    images, refs = val_set.get([0, 1])
    assert refs.shape[:2] == (2, 1)
    vocab = TASK.vocabulary
    assert vocab.decode(refs[0, 0]) == val_set.set.captions[0][0]


@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_a_short_seeded_run_beats_the_unigram_baseline(data, kind):
    train_set, val_set = data
    res = _train(_config(kind), train_set, val_set)
    base = positional_unigram_caption([c[0] for c in train_set.set.captions])
    base_bleu = corpus_bleu([base] * len(val_set), val_set.set.captions)
    assert res.status == "done"
    assert res.final["val_bleu"] > base_bleu + 1.0, (res.final["val_bleu"], base_bleu)


def test_the_trainer_scores_what_the_library_scores(data):
    """BLEU from statistics summed over batches (of 7) equals sacrebleu's on the whole set; so do the others."""
    train_set, val_set = data
    res = _train(_config("bt", epochs=1), train_set, val_set)
    got = TASK.evaluate(res.model, val_set, batch=7)
    want = evaluate(res.model, val_set.set)
    assert got["val_bleu"] == pytest.approx(want["val_bleu"], abs=1e-9)
    for k in ("val_exact", "val_token_acc", "val_loss"):
        assert got[k] == pytest.approx(want[k], rel=1e-5), k


def test_several_references_per_image_are_all_scored():
    train, val = make_scenes(TASK.scene_config())
    from btcore.tasks.captioning import CaptionSet
    two = CaptionSet(val.images[:4], [(c[0], "a small red circle on the left") for c in val.captions[:4]])
    imgs = CaptionImages(two, TASK.vocabulary)
    _, tokens = imgs.get([0, 1, 2, 3])
    assert tokens.shape[:2] == (4, 2)
    model = TASK.build_model(TASK.model_config("tt", **SMALL), init=torch.Generator().manual_seed(0))
    got = TASK.evaluate(model, imgs, batch=3)
    assert got["val_bleu"] == pytest.approx(evaluate(model, two)["val_bleu"], abs=1e-9)


def test_same_seed_same_history(data):
    train_set, val_set = data
    strip = (lambda h: [{k: v for k, v in e.items() if k in ("train_loss", "val_bleu", "step")} for e in h])
    a, b = (_train(_config("tt", epochs=1), train_set, val_set) for _ in range(2))
    c = _train(_config("tt", epochs=1, seed=1), train_set, val_set)
    assert strip(a.history) == strip(b.history) != strip(c.history)


def test_stalled_when_bleu_stays_at_the_baseline(data):
    train_set, val_set = data
    res = _train(_config("dense", lr=1e-9, epochs=4, stall_fraction=0.5), train_set, val_set)
    assert res.status == "stalled" and "BLEU-4" in res.reason


def test_previews_are_json_and_equal_the_library_preview(data):
    train_set, val_set = data
    seen = []
    res = _train(_config("bt", epochs=1), train_set, val_set, previews=True, callback=seen.append)
    p = next(e["preview"] for e in seen if e["event"] == "eval")
    json.dumps(p)
    assert (p["task"], p["kind"], len(p["examples"])) == ("captioning", "captions", 6)
    lib = preview(res.model, val_set.set, 6)
    for got, want in zip(p["examples"], lib):
        assert set(got) == {"index", "image", "truth", "caption", "correct"}
        assert (got["index"], got["truth"], got["caption"]) == (want.index, want.truth, want.caption)
        assert got["correct"] == list(want.correct) and len(got["correct"]) == len(got["caption"].split())
        img = np.asarray(got["image"])
        assert img.shape == (32, 32, 3) and np.abs(img - want.image).max() <= 5e-5


def test_a_sweep_of_captioning_runs(data):
    train_set, val_set = data
    grid = sweep_configs(_config("bt", max_steps=3, epochs=1, stall_fraction=None), [1, 2], [1])
    rows = sweep_rows(compare(grid, train_set, val_set, task=TASK), "captioning")
    assert [(r["rank"], r["blocks"]) for r in rows] == [(1, 1), (2, 1)]
    assert all(r["status"] == "done" and 0 <= r["val_bleu"] <= 100 for r in rows)


def test_checkpoint_round_trip(data, tmp_path):
    train_set, val_set = data
    res = _train(_config("bt", epochs=1), train_set, val_set)
    model, cfg, _ = load_checkpoint(save_checkpoint(tmp_path / "c.pt", res.model, res.config, res.history))
    assert cfg.task == "captioning" and cfg.model == res.config.model
    assert model.caption(val_set.set.images) == res.model.caption(val_set.set.images)


def test_estimates_count_the_scenes():
    t = make_task("captioning", train_size=100, val_size=10)
    assert t.data_bytes() == {"--train-size": 100 * 3072 * 4, "--val-size": 10 * 3072 * 4}
    images, tokens = t.example_batch(t.model_config("bt"), 4, None)
    assert images.shape == (4, 3, 32, 32) and tokens.shape[0] == 4 and int(tokens.max()) < len(t.vocabulary)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="max_objects"):
        CaptioningTask(max_objects=3)
    with pytest.raises(ValueError, match="noise"):
        CaptioningTask(noise=0.5)
    with pytest.raises(ValueError, match="image_modes"):
        make_task("captioning").model_config("bt", in_modes=(8, 8, 8, 8))
