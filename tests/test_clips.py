"""btcore.clips: the UCF11-layout clip-folder loader and the data root."""

from __future__ import annotations

import io

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
    with pytest.raises(ValueError, match=r"leads outside the data root") as err:
        resolve_data_path("link", root)
    assert "secret" not in str(err.value)  # the link's target is never named
    (root / "ucf" / "deep").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the data root"):
        resolve_data_path("ucf/deep/secret", root)



# -- the walk of a clip folder: links out are skipped, loops end, no name from outside is shown -------

def _two_classes(root):
    _png_clip(root / "jump" / "c1", 3, (255, 0, 0))
    _png_clip(root / "walk" / "c1", 3, (0, 255, 0))


def test_links_leading_outside_the_root_are_neither_listed_nor_read(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "private"
    _two_classes(root)
    _png_clip(outside / "leak_class" / "c1", 3, (0, 0, 255))
    _png_clip(outside / "leak_clip", 3, (0, 0, 255))
    np.save(tmp_path / "leak.npy", np.ones((3, 8, 8), np.float32))
    clean, _ = load_clip_folder(root, (3, 8, 8), frames=3, val_fraction=0.0)
    (root / "leak_class").symlink_to(outside / "leak_class")  # a class folder that is a link out
    (root / "jump" / "leak_clip").symlink_to(outside / "leak_clip")  # a clip folder that is a link out
    (root / "walk" / "leak.npy").symlink_to(tmp_path / "leak.npy")  # a clip file that is a link out
    (root / "walk" / "c1" / "frame_9.png").symlink_to(outside / "leak_clip" / "frame_1.png")  # one frame out
    (root / "walk" / "broken.npy").symlink_to(tmp_path / "missing.npy")
    train, _ = load_clip_folder(root, (3, 8, 8), frames=3, val_fraction=0.0)
    assert train.class_names == ("jump", "walk") and len(train) == 2
    assert torch.equal(train.x, clean.x)  # exactly the clips inside the root, nothing else read
    (root / "jump" / "inside").symlink_to(root / "walk" / "c1")  # a link that stays inside is a clip
    assert len(load_clip_folder(root, (3, 8, 8), frames=3, val_fraction=0.0)[0]) == 3


def test_a_class_whose_files_all_lie_outside_names_none_of_them(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "private"
    _two_classes(root)
    (outside / "secret_dir").mkdir(parents=True)
    (outside / "secret_dir" / "passwords.txt").write_text("x")
    (outside / "secret_file.txt").write_text("x")
    (root / "talk").symlink_to(outside / "secret_dir")  # skipped: not a class at all
    (root / "hum").mkdir()
    (root / "hum" / "notes.txt").write_text("x")
    (root / "hum" / "elsewhere.txt").symlink_to(outside / "secret_file.txt")
    (root / "hum" / "group").symlink_to(outside / "secret_dir")
    with pytest.raises(ValueError, match="class folder hum of .* holds no clips .found files such as notes.txt.") as err:
        load_clip_folder(root, (3, 8, 8), frames=3)
    for name in ("secret", "passwords", "elsewhere", "private"):
        assert name not in str(err.value)


def test_symlink_loops_inside_the_root_end(tmp_path):
    root = tmp_path / "data"
    _two_classes(root)
    (root / "jump" / "group").mkdir()
    (root / "jump" / "group" / "back").symlink_to(root / "jump")  # a loop through an ancestor
    (root / "jump" / "group" / "self").symlink_to(root / "jump" / "group")
    (root / "jump" / "group" / "top").symlink_to(root)  # a link to the root itself
    (root / "walk" / "a").symlink_to(root / "walk" / "b")  # a two-link loop, neither resolves
    (root / "walk" / "b").symlink_to(root / "walk" / "a")
    (root / "walk" / "c1" / "again").symlink_to(root / "walk" / "c1")
    train, _ = load_clip_folder(root, (3, 8, 8), frames=3, val_fraction=0.0)
    assert train.class_names == ("jump", "walk") and len(train) == 2


def test_walk_depth_is_bounded(tmp_path, monkeypatch):
    import btcore.clips

    root = tmp_path / "data"
    _two_classes(root)
    deep = root / "jump" / "a" / "b" / "c" / "d"
    _png_clip(deep / "clip", 2, (1, 2, 3))
    monkeypatch.setattr(btcore.clips, "MAX_DEPTH", 2)
    with pytest.raises(ValueError, match="nest deeper than 2 levels"):
        load_clip_folder(root, (3, 8, 8), frames=3)


# -- decompression bombs: declared sizes are checked before anything is inflated ---------------------

def _npz_bomb(path, shape, dtype=np.uint8):
    """A .npz whose member declares ``shape`` but holds a valid header and zeros (deflates to almost nothing)."""
    import zipfile

    from numpy.lib import format as npy_format

    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(8):  # 8 MiB of zeros: enough to be a real bomb's start, read if not checked
                f.write(zeros)


def test_a_small_npz_declaring_gigabytes_is_refused_before_reading(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _two_classes(root)
    bomb = root / "walk" / "bomb.npz"
    _npz_bomb(bomb, (8, 3, 16384, 16384))  # 6 GiB declared
    assert bomb.stat().st_size < 100_000
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k))
    with pytest.raises(ValueError, match=r"bomb.npz declares a 8 x 3 x 16,384 x 16,384 array of uint8 .6.0 GiB once "
                                         r"read., above the 512.0 MiB limit"):
        load_clip_folder(root, (3, 8, 8), frames=3)
    assert not reads  # refused from the header alone


def test_a_npy_clip_or_frame_declaring_too_much_is_refused(tmp_path, monkeypatch):
    import btcore.clips

    root = tmp_path / "data"
    _two_classes(root)
    np.save(root / "walk" / "big.npy", np.zeros((4, 64, 64, 3), np.uint8))  # 48 KiB
    monkeypatch.setattr(btcore.clips, "MAX_CLIP_BYTES", 32 * 1024)
    with pytest.raises(ValueError, match=r"big.npy declares a 4 x 64 x 64 x 3 array of uint8 .48.0 KiB once read."):
        load_clip_folder(root, (3, 8, 8), frames=3)
    (root / "walk" / "big.npy").unlink()
    np.save(root / "walk" / "c1" / "frame_0.npy", np.zeros((128, 128, 3)))  # one 384 KiB .npy frame
    with pytest.raises(ValueError, match=r"frame_0.npy declares a 128 x 128 x 3 array of float64"):
        load_clip_folder(root, (3, 8, 8), frames=1)


def test_images_declaring_too_many_pixels_are_refused_before_decoding(tmp_path, monkeypatch):
    import btcore.clips
    from PIL import Image

    root = tmp_path / "data"
    _two_classes(root)
    monkeypatch.setattr(btcore.clips, "MAX_CLIP_BYTES", 100 * 100 * 4 * 3)  # three RGBA frames of 100 x 100
    gif = [Image.fromarray(np.full((100, 100, 3), 60 * k, np.uint8)) for k in range(4)]
    gif[0].save(root / "walk" / "long.gif", save_all=True, append_images=gif[1:], duration=40, loop=0)
    with pytest.raises(ValueError, match=r"long.gif: 4 frame.s. of 100 x 100 pixels would decode to"):
        load_clip_folder(root, (3, 8, 8), frames=2)
    (root / "walk" / "long.gif").unlink()
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(root / "jump" / "c1" / "frame_2.png")
    with pytest.raises(ValueError, match=r"frame_2.png: 1 frame.s. of 200 x 200 pixels"):
        load_clip_folder(root, (3, 8, 8), frames=3)


# -- stop and progress: checked per folder listed and per file read ---------------------------------

def _count_reads(monkeypatch):
    import btcore.clips

    reads = []
    real = btcore.clips._read_image
    monkeypatch.setattr(btcore.clips, "_read_image", lambda p: reads.append(p) or real(p))
    return reads


def test_a_stop_ends_loading_at_the_next_file(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for k in range(4):  # 2 classes x 4 clips x 6 frames: 48 files
        _png_clip(root / "jump" / f"c{k}", 6, (255, 0, 0))
        _png_clip(root / "walk" / f"c{k}", 6, (0, 255, 0))
    reads = _count_reads(monkeypatch)
    full = load_clip_folder(root, (3, 8, 8), frames=6, val_fraction=0.0)
    assert full is not None and len(reads) == 48
    for after in (0, 1, 5, 13):  # mid-clip as well as between clips
        reads.clear()
        assert load_clip_folder(root, (3, 8, 8), frames=6, should_stop=lambda: len(reads) >= after) is None
        assert len(reads) == after


def test_a_stop_ends_the_walk_of_a_tree_with_loops(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _two_classes(root)
    (root / "jump" / "group").mkdir()
    (root / "jump" / "group" / "back").symlink_to(root / "jump")
    (root / "walk" / "self").symlink_to(root / "walk")
    reads, asked = _count_reads(monkeypatch), []
    assert load_clip_folder(root, (3, 8, 8), frames=3, should_stop=lambda: asked.append(1) or len(asked) > 2) is None
    assert reads == [] and len(asked) == 3  # stopped in the walk: no clip read


def test_progress_is_the_share_of_clips_read(clip_root):
    seen = []
    train, val = load_clip_folder(clip_root, (3, 8, 8), frames=2, progress=seen.append)
    assert seen == [k / 6 for k in range(7)] and len(train) + len(val) == 6


def test_the_estimate_counts_the_split_exactly_and_times_a_sample(tmp_path, monkeypatch):
    from btcore.clips import clip_folder_estimate

    root = tmp_path / "data"
    for k in range(5):
        _png_clip(root / "jump" / f"c{k}", 4, (255, 0, 0))
    for k in range(3):
        _png_clip(root / "walk" / f"c{k}", 4, (0, 255, 0))
    reads = _count_reads(monkeypatch)
    est = clip_folder_estimate(root, (3, 8, 8), frames=4, val_fraction=0.25, sample=3)
    assert len(reads) == 3 * 4  # three clips sampled (jump, walk, jump), four frames each
    train, val = load_clip_folder(root, (3, 8, 8), frames=4, val_fraction=0.25)
    assert (est["classes"], est["train"], est["val"]) == (2, len(train), len(val)) == (2, 6, 2)
    assert est["seconds"] > 0
    (root / "walk2").mkdir()
    with pytest.raises(ValueError, match="class folder walk2 of .* holds no clips"):  # as the loader refuses it
        clip_folder_estimate(root)
