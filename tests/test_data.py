"""btcore.data: the synthetic action task (determinism, balance, shapes) and the clip-folder loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from btcore.data import (ACTION_NAMES, ClipSet, SyntheticActions, load_clip_folder, mean_frame_features,
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


# -- clip folders ----------------------------------------------------------------------------------

def _png_clip(folder, n, colour, size=(20, 24)):
    from PIL import Image

    folder.mkdir(parents=True)
    for t in range(n):
        img = np.zeros(size + (3,), np.uint8)
        img[:, : 2 + 3 * t] = colour
        Image.fromarray(img).save(folder / f"frame_{t + 1}.png")


@pytest.fixture
def clip_root(tmp_path):
    root = tmp_path / "ucf"
    # class "jump": frame folders in UCF11-style group folders; class "walk": arrays and a GIF
    _png_clip(root / "jump" / "v_jump_01" / "c01", 5, (255, 0, 0))
    _png_clip(root / "jump" / "v_jump_01" / "c02", 3, (200, 10, 10))
    _png_clip(root / "jump" / "v_jump_02" / "c01", 12, (250, 0, 0))
    (root / "walk").mkdir()
    np.save(root / "walk" / "a.npy", np.random.default_rng(0).integers(0, 255, (7, 30, 30, 3), dtype=np.uint8))
    np.save(root / "walk" / "b.npy", np.random.default_rng(1).random((4, 3, 10, 10)).astype(np.float32))
    from PIL import Image

    gif = [Image.fromarray(np.full((12, 12, 3), 40 * k, np.uint8)) for k in range(4)]
    gif[0].save(root / "walk" / "c.gif", save_all=True, append_images=gif[1:], duration=40, loop=0)
    return root


def test_load_clip_folder(clip_root):
    train, val = load_clip_folder(clip_root, (3, 16, 16), frames=4, val_fraction=0.34, seed=0)
    assert isinstance(train, ClipSet)
    assert train.class_names == ("jump", "walk")
    assert len(train) + len(val) == 6
    assert len(val) == 2 and sorted(val.y.tolist()) == [0, 1]  # one held-out clip per class
    assert train.x.shape[1:] == (4, 768) and val.x.shape[1:] == (4, 768)
    assert torch.isfinite(train.x).all() and float(train.x.abs().max()) <= 1.0 + 1e-5
    # frame size and channels follow the request
    grey, _ = load_clip_folder(clip_root, "8x8", frames=2, val_fraction=0.0)
    assert grey.x.shape == (6, 2, 64)
    # a red clip stays red after resizing: channel 0 brighter than channel 2
    jump = train.x[train.y == 0].reshape(-1, 4, 3, 16, 16)
    assert float(jump[:, :, 0].mean()) > float(jump[:, :, 2].mean())


def test_clip_folder_errors(tmp_path, clip_root):
    with pytest.raises(ValueError, match="does not exist"):
        load_clip_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_clip_folder(tmp_path / "empty")
    one = tmp_path / "one"
    _png_clip(one / "only" / "c1", 2, (1, 2, 3))
    with pytest.raises(ValueError, match="at least two"):
        load_clip_folder(one)
    (clip_root / "talk").mkdir()
    (clip_root / "talk" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="holds no clips.*notes.txt.*accepted"):
        load_clip_folder(clip_root)
    (clip_root / "talk" / "v1.avi").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match="video decoder.*ffmpeg"):
        load_clip_folder(clip_root)
    (clip_root / "talk" / "v1.avi").unlink()
    bad = clip_root / "talk" / "clip1"
    bad.mkdir()
    (bad / "0001.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a readable image"):
        load_clip_folder(clip_root)
    (bad / "0001.png").unlink()
    np.save(bad / "0001.npy", np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="frame must be"):
        load_clip_folder(clip_root)


# -- resolve_data_path: paths confined to a data root ------------------------------------------------

def test_resolve_data_path_inside_the_root(tmp_path):
    from btcore.data import resolve_data_path

    root = tmp_path / "data"
    (root / "ucf" / "clap").mkdir(parents=True)
    assert resolve_data_path("ucf", root) == (root / "ucf").resolve()
    assert resolve_data_path(root / "ucf", root) == (root / "ucf").resolve()  # absolute, inside
    assert resolve_data_path("ucf/./clap", root) == (root / "ucf" / "clap").resolve()
    (root / "alias").symlink_to(root / "ucf")  # a symlink that stays inside is fine
    assert resolve_data_path("alias", root) == (root / "ucf").resolve()
    with pytest.raises(ValueError, match="no such folder in the data root"):
        resolve_data_path("missing", root)
    with pytest.raises(ValueError, match="data root .*not a folder"):
        resolve_data_path("ucf", tmp_path / "nowhere")


def test_resolve_data_path_refuses_dotdot_and_escaping_symlinks(tmp_path):
    from btcore.data import resolve_data_path

    root = tmp_path / "data"
    (root / "ucf").mkdir(parents=True)
    secret = tmp_path / "secret"
    (secret / "cls").mkdir(parents=True)
    for bad in ("../secret", "ucf/../../secret", "ucf/.."):
        with pytest.raises(ValueError, match="'..' is not allowed"):
            resolve_data_path(bad, root)
    with pytest.raises(ValueError, match="outside the data root"):
        resolve_data_path(secret, root)  # an absolute path elsewhere
    with pytest.raises(ValueError, match="outside the data root"):
        resolve_data_path("/", root)
    (root / "link").symlink_to(secret)
    with pytest.raises(ValueError, match=r"leads to .*secret, outside the data root"):
        resolve_data_path("link", root)
    (root / "ucf" / "deep").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the data root"):
        resolve_data_path("ucf/deep/secret", root)


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
