"""btcore.data: the synthetic action task (determinism, balance, shapes) and ClipSet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from btcore.data import (ACTION_NAMES, ClipSet, SyntheticActions, mean_frame_features,
                         parse_frame_shape)

SMALL = dict(frame_shape=(3, 16, 16), frames=6, classes=8, train_size=48, val_size=24)


def test_shapes_and_range():
    task = SyntheticActions(**SMALL)
    train, val = task.splits()
    x, y = train.get(np.arange(len(train)))
    assert x.shape == (48, 6, 3 * 16 * 16) and x.dtype == torch.float32
    assert y.shape == (48,) and y.dtype == torch.int64
    assert torch.isfinite(x).all()
    assert -3 < float(x.min()) and float(x.max()) < 3
    assert train.features == 768 and train.frames == 6 and train.classes == 8
    assert train.class_names == ACTION_NAMES
    assert len(val) == 24


def test_deterministic_and_independent_of_batching():
    a = SyntheticActions(**SMALL, seed=3).split("train")
    b = SyntheticActions(**SMALL, seed=3).split("train")
    xa, ya = a.get(np.arange(20))
    xb, yb = b.generate([7, 2, 19])  # other order, no cache
    assert torch.equal(xa[[7, 2, 19]], xb) and torch.equal(ya[[7, 2, 19]], yb)
    xc, _ = SyntheticActions(**SMALL, seed=4).split("train").get(np.arange(20))
    assert not torch.equal(xa, xc)
    # train and validation are different clips
    xv, _ = SyntheticActions(**SMALL, seed=3).split("val").get(np.arange(20))
    assert not torch.equal(xa, xv)


def test_class_balance():
    for n, k in ((48, 8), (50, 6), (13, 4)):
        task = SyntheticActions(frame_shape=(3, 16, 16), train_size=n, val_size=10, classes=k)
        counts = np.bincount(task.split("train").labels, minlength=k)
        assert counts.sum() == n and counts.max() - counts.min() <= 1
        assert len(task.split("train").class_counts()) == k


def test_on_the_fly_matches_cache():
    cached = SyntheticActions(**SMALL).split("val")
    streamed = SyntheticActions(**SMALL, cache_bytes=0).split("val")
    assert cached.cached and not streamed.cached
    assert torch.equal(cached.get([1, 5])[0], streamed.get([1, 5])[0])


def test_motion_is_in_the_order_not_the_mean_frame():
    """Reversed clips of a pair have the same mean frame: the class lives in the frame order."""
    task = SyntheticActions(frame_shape=(3, 16, 16), frames=6, train_size=64, val_size=8, noise=0.0, clutter=0)
    x, y = task.split("train").get(np.arange(64))
    # The shape's horizontal centre of mass moves right for class 0 and left for class 1.
    frames = x.reshape(64, 6, 3, 16, 16).sum(2)
    fg = (frames - frames.amin(dim=(2, 3), keepdim=True))
    cols = torch.arange(16.0)
    com = (fg.sum(2) * cols).sum(-1) / fg.sum(2).sum(-1)  # (B, T)
    drift = com[:, -1] - com[:, 0]
    assert (drift[y == 0] > 0).float().mean() > 0.8
    assert (drift[y == 1] < 0).float().mean() > 0.8
    assert mean_frame_features(x).shape == (64, 768)


def test_prepare_can_be_stopped():
    split = SyntheticActions(**{**SMALL, "train_size": 300}).split("train")  # two chunks of at most 256
    seen = []
    assert split.prepare(should_stop=lambda: bool(seen), progress=seen.append) is False
    assert len(seen) == 1 and split._cache is None
    assert split.prepare(progress=seen.append) is True and split.get([0])[0].shape == (1, 6, 768)


def test_grey_and_paper_size():
    grey = SyntheticActions(frame_shape="16x16", train_size=4, val_size=4).split("train")
    assert grey.get([0])[0].shape == (1, 8, 256)
    big = SyntheticActions(frame_shape=(3, 120, 160), frames=4, train_size=2, val_size=2, cache_bytes=0)
    assert big.features == 57_600
    assert big.split("train").get([0, 1])[0].shape == (2, 4, 57_600)


def test_invalid_configs():
    assert parse_frame_shape("3x32x32") == (3, 32, 32)
    assert parse_frame_shape(32) == (3, 32, 32)
    with pytest.raises(ValueError, match="channels"):
        parse_frame_shape((2, 16, 16))
    with pytest.raises(ValueError, match="at least 8"):
        parse_frame_shape("3x4x4")
    with pytest.raises(ValueError, match="classes"):
        SyntheticActions(classes=9)
    with pytest.raises(ValueError, match="frames"):
        SyntheticActions(frames=2)
    with pytest.raises(ValueError, match="split"):
        SyntheticActions().split("bogus")


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0, 1, 2, 5]])
def test_clipset_refuses_labels_outside_the_classes(labels):
    x = torch.zeros(len(labels), 2, 3 * 8 * 8)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\]"):
        ClipSet(x, torch.tensor(labels), (3, 8, 8), ("a", "b", "c"))


def test_clipset_refuses_bad_types_and_shapes():
    x = torch.zeros(2, 2, 192)
    with pytest.raises(TypeError, match="y must be an integer torch.Tensor"):
        ClipSet(x, torch.tensor([0.0, 1.5]), (3, 8, 8), ("a", "b"))
    with pytest.raises(TypeError, match="x must be a floating-point torch.Tensor"):
        ClipSet(x.numpy(), torch.tensor([0, 1]), (3, 8, 8), ("a", "b"))
    with pytest.raises(ValueError, match="has 64 features but x has 192"):
        ClipSet(x, torch.tensor([0, 1]), (1, 8, 8), ("a", "b"))
    ok = ClipSet(x, torch.tensor([0, 1], dtype=torch.int32), (3, 8, 8), ("a", "b"))
    assert ok.y.dtype == torch.int64


def test_synthetic_fields_are_checked():
    with pytest.raises(ValueError, match="noise must be between 0 and 1"):
        SyntheticActions(noise=float("nan"))
    with pytest.raises(TypeError, match="noise must be a number"):
        SyntheticActions(noise="0.1")
    with pytest.raises(ValueError, match="clutter must be an integer from 0 to 64"):
        SyntheticActions(clutter=2.5)
    with pytest.raises(ValueError, match="at most 4096"):
        parse_frame_shape((3, 10**6, 10**6))
    with pytest.raises(TypeError, match="frame shape must be"):
        parse_frame_shape(None)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_clipset_refuses_non_finite_clips(bad):
    x = torch.zeros(3, 2, 192)
    x[1, 1, 7] = bad
    with pytest.raises(ValueError, match=r"ClipSet: 1 of the 1,152 entries of x are NaN or infinite"):
        ClipSet(x, torch.tensor([0, 1, 0]), (3, 8, 8), ("a", "b"))


def test_a_split_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr("btcore.memory.available_memory", lambda device=None: 1024**3)  # 1 GiB free
    with pytest.raises(ValueError, match=r"the labels of 1,000,000,000 clips \(train_size\) needs .*lower train_size"):
        SyntheticActions(train_size=10**9)
    with pytest.raises(ValueError, match="lower val_size"):
        SyntheticActions(val_size=10**9)
    assert len(SyntheticActions(train_size=10**6).split("train")) == 10**6  # 32 MB of label work: fine


def test_a_clip_too_large_to_render_is_refused_before_rendering(monkeypatch):
    monkeypatch.setattr("btcore.memory.available_memory", lambda device=None: 1024**3)  # 1 GiB free
    with pytest.raises(ValueError, match=r"rendering one clip of 1,000,000 frames of 3x32x32 needs .*use fewer frames"):
        SyntheticActions(frames=10**6)  # 12 GB of float32 frames per clip
    with pytest.raises(ValueError, match=r"rendering one clip of 64 frames of 3x4096x4096"):
        SyntheticActions(frames=64, frame_shape=(3, 4096, 4096))
    task = SyntheticActions(frames=16, frame_shape=(3, 64, 64))  # 786 kB per clip: fine
    assert task.split("val").generate([0])[0].shape == (1, 16, 3 * 64 * 64)
