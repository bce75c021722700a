"""btcore.tasks.base: Task.load_data, the stoppable data of every task, equals Task.data and reports progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from btcore.tasks import make_task


def _png_folder(root):
    from PIL import Image

    for cls, colour in (("jump", (255, 0, 0)), ("walk", (0, 255, 0))):
        for k in range(3):
            (root / cls / f"c{k}").mkdir(parents=True)
            for t in range(3):
                Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(root / cls / f"c{k}" / f"{t}.png")
    return root


def _tasks(tmp_path):
    return {"action": make_task("action", frame_shape=(3, 8, 8), frames=3, classes=4, train_size=300, val_size=40),
            "action folder": make_task("action", data_source=str(_png_folder(tmp_path / "clips")),
                                       frame_shape=(3, 8, 8), frames=3),
            "generation": make_task("generation", image_size=8, train_size=100),
            "captioning": make_task("captioning", train_size=40, val_size=10)}


def _same(a, b) -> None:
    for part_a, part_b in zip(a, b):
        assert len(part_a) == len(part_b)
        idx = np.arange(len(part_a))
        for x, y in zip(part_a.get(idx), part_b.get(idx)):
            assert torch.equal(x, y)


@pytest.mark.parametrize("name", ["action", "action folder", "generation", "captioning"])
def test_load_data_is_data_with_progress_and_a_stop(tmp_path, name):
    task = _tasks(tmp_path)[name]
    seen = []
    loaded = task.load_data(3, progress=seen.append)
    _same(loaded, task.data(3))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen) and all(0 <= f <= 1 for f in seen)
    assert task.load_data(3, should_stop=lambda: True) is None


@pytest.mark.parametrize("name", ["action", "captioning"])
def test_a_stop_between_pieces_ends_the_data(tmp_path, name):
    task, asked = _tasks(tmp_path)[name], []
    assert task.load_data(0, should_stop=lambda: asked.append(1) or len(asked) > 1) is None
    assert len(asked) == 2  # the first piece was made, the stop came before the second


def test_the_generation_and_captioning_configs_share_one_base():
    from btcore.tasks.base import ImageMapConfig
    from btcore.tasks.captioning import CaptionConfig
    from btcore.tasks.generation import GenerationConfig
    from btcore.tasks.scenes import caption_config

    gen, cap = GenerationConfig(kind="bt", rank=3, blocks=2), caption_config("tt", tt_ranks=5)
    assert isinstance(gen, ImageMapConfig) and isinstance(cap, ImageMapConfig)
    assert (gen.describe(), cap.describe()) == ("BT-DRAW (R=3, N=2)", "TT-LSTM captioner (ranks 5)")
    assert gen.controls() == {"rank": 3, "blocks": 2, "tt_ranks": 4, "tr_ranks": 4} and gen.cell == cap.cell == "lstm"
    assert GenerationConfig.from_dict(gen.to_dict()) == gen and CaptionConfig.from_dict(cap.to_dict()) == cap
    with pytest.raises(ValueError, match=r"unknown GenerationConfig field\(s\) \['colour'\]"):
        GenerationConfig.from_dict({**gen.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match=r"^rank/blocks for the BT image map 8x8x8x6 -> 16x4x4x2: "):
        caption_config("bt", rank=100)
    with pytest.raises(ValueError, match="blocks must be at least 1"):
        GenerationConfig(blocks=0)


def test_step_memory_counts_weights_gradients_optimiser_state_and_activations():
    from btcore.tasks.base import step_memory

    assert step_memory(10, 0, "adam") == {"params": 40, "low": 40 * 4, "training": 40 * 4}  # weights, grads, 2 moments
    sgd = step_memory(10, 5, "sgd")  # one momentum; the activations' bytes from half to twice 4 bytes each
    assert (sgd["low"], sgd["training"]) == (40 * 3 + 2 * 5, 40 * 3 + 8 * 5)
