"""btcore.clips: the UCF11-layout clip-folder loader and the data root."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from btcore.clips import load_clip_folder, resolve_data_path
from btcore.data import ClipSet

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
