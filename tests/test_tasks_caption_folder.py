"""Caption folders: COCO JSON, JSON lines and CSV captions, resizing, vocabularies, clear errors, the data root."""

import json

import numpy as np
import pytest
from PIL import Image

from btcore.tasks.caption_folder import load_caption_folder, read_captions
from btcore.tasks.captioning import Vocabulary

COLOURS = {"a.png": (255, 0, 0), "b.png": (0, 255, 0), "c.png": (0, 0, 255), "d.png": (255, 255, 0)}
CAPTIONS = {"a.png": ["A red picture.", "Red, all red!"], "b.png": ["a green picture"],
            "c.png": ["a blue picture"], "d.png": ["a yellow picture"]}


def _folder(tmp_path, size=(40, 30), layout="json"):
    root = tmp_path / "data"
    folder = root / "set"
    folder.mkdir(parents=True)
    for name, rgb in COLOURS.items():
        Image.new("RGB", size, rgb).save(folder / name)
    if layout == "json":
        images = [{"id": k, "file_name": n} for k, n in enumerate(COLOURS)]
        ann = [{"image_id": k, "caption": c} for k, n in enumerate(COLOURS) for c in CAPTIONS[n]]
        (folder / "captions.json").write_text(json.dumps({"images": images, "annotations": ann}))
    elif layout == "jsonl":
        lines = [json.dumps({"file_name": n, "captions": CAPTIONS[n]}) for n in COLOURS]
        (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    else:
        rows = ["file_name,caption"] + [f'{n},"{c}"' for n in COLOURS for c in CAPTIONS[n]]
        (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    return root, folder


@pytest.mark.parametrize("layout", ["json", "jsonl", "csv"])
def test_loads_resizes_and_normalises(tmp_path, layout):
    root, _ = _folder(tmp_path, layout=layout)
    train, val, vocab = load_caption_folder("set", root, val_fraction=0.25, seed=0)
    assert len(train) + len(val) == 4 and len(val) == 1
    assert train.images.shape[1:] == (3, 32, 32)
    both = list(zip(train.images, train.captions)) + list(zip(val.images, val.captions))
    by_caption = {refs[0]: img.numpy() for img, refs in both}
    assert set(by_caption) == {"a red picture", "a green picture", "a blue picture", "a yellow picture"}
    red = by_caption["a red picture"]  # a uniform image stays uniform through the resize
    np.testing.assert_allclose(red, np.broadcast_to(np.array([1.0, 0, 0])[:, None, None], red.shape), atol=1e-6)
    assert dict((refs[0], refs) for _, refs in both)["a red picture"] == ("a red picture", "red all red")
    assert set(vocab.words) == {"a", "red", "green", "blue", "yellow", "picture", "all"}
    assert vocab.words[0] in ("a", "red")  # most frequent first


def test_layouts_agree(tmp_path):
    got = []
    for layout in ("json", "jsonl", "csv"):
        root, folder = _folder(tmp_path / layout, layout=layout)
        name = next(folder.glob("captions.*"))
        got.append(sorted(read_captions(name)))
    assert got[0] == got[1] == got[2]


def test_grey_frames_max_images_and_coco_subfolders(tmp_path):
    root, folder = _folder(tmp_path)
    (folder / "ann").mkdir()
    (folder / "captions.json").rename(folder / "ann" / "coco.json")
    (folder / "img").mkdir()
    for n in COLOURS:
        (folder / n).rename(folder / "img" / n)
    train, val, _ = load_caption_folder("set", root, captions="ann/coco.json", images="img", image_shape=(1, 8, 8),
                                        max_images=2, val_fraction=0.0)
    assert len(train) == 2 and len(val) == 0 and train.images.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(train.images[0].numpy(), 0.299 * 1.0, atol=2e-3)  # red in grey (Pillow's L)


def test_fixed_vocabulary_unknown_word(tmp_path):
    root, _ = _folder(tmp_path)
    vocab = Vocabulary(("a", "red", "green", "blue", "picture", "all"))
    with pytest.raises(ValueError, match="image d.png: unknown word 'yellow' in caption 'a yellow picture'"):
        load_caption_folder("set", root, vocabulary=vocab)


def test_wrong_size_without_resizing(tmp_path):
    root, _ = _folder(tmp_path)
    with pytest.raises(ValueError, match="image a.png is 40x30 pixels, expected 32x32; .*resize=True"):
        load_caption_folder("set", root, resize=False)
    root2, _ = _folder(tmp_path / "ok", size=(32, 32))
    train, val, _ = load_caption_folder("set", root2, resize=False)
    assert len(train) + len(val) == 4


def test_unreadable_and_missing_images(tmp_path):
    root, folder = _folder(tmp_path)
    (folder / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="image b.png: not a readable image"):
        load_caption_folder("set", root)
    (folder / "b.png").unlink()
    with pytest.raises(ValueError, match="image b.png, named in the captions file, is missing"):
        load_caption_folder("set", root)


def test_empty_folder_and_missing_captions(tmp_path):
    root = tmp_path / "data"
    (root / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match="the folder holds no images and no captions file"):
        load_caption_folder("empty", root)
    root, folder = _folder(tmp_path / "x")
    (folder / "captions.json").unlink()
    with pytest.raises(ValueError, match="the folder has 4 images but no captions file"):
        load_caption_folder("set", root)
    with pytest.raises(ValueError, match="captions file other.json is missing"):
        load_caption_folder("set", root, captions="other.json")
    (folder / "captions.jsonl").write_text("")
    with pytest.raises(ValueError, match="lists no captioned images"):
        load_caption_folder("set", root)


@pytest.mark.parametrize("text, match", [
    ("{", "not JSON"),
    ('{"images": []}', "needs lists 'images' and 'annotations'"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "caption": "a"}]}',
     "refers to image_id 2"),
    ('{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "caption": "..."}]}',
     "has no words"),
])
def test_bad_captions_files(tmp_path, text, match):
    root, folder = _folder(tmp_path)
    (folder / "captions.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_caption_folder("set", root)


def test_bad_csv_and_jsonl(tmp_path):
    root, folder = _folder(tmp_path, layout="csv")
    (folder / "captions.csv").write_text("name,text\na.png,a red\n")
    with pytest.raises(ValueError, match="columns file_name,caption"):
        load_caption_folder("set", root)
    (folder / "captions.csv").unlink()
    (folder / "captions.jsonl").write_text('{"file_name": "a.png", "caption": "a"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        load_caption_folder("set", root)


def test_nothing_outside_the_data_root(tmp_path):
    root, folder = _folder(tmp_path)
    outside = tmp_path / "secret"
    outside.mkdir()
    Image.new("RGB", (32, 32)).save(outside / "s.png")
    (outside / "captions.json").write_text("{}")
    with pytest.raises(ValueError, match="'..' is not allowed"):
        load_caption_folder("../secret", root)
    with pytest.raises(ValueError, match="outside the data root"):
        load_caption_folder(outside, root)
    (root / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the data root"):
        load_caption_folder("link", root)
    with pytest.raises(ValueError, match="without '..'"):
        load_caption_folder("set", root, captions="../secret/captions.json")
    (folder / "out.json").symlink_to(outside / "captions.json")
    with pytest.raises(ValueError, match="captions file out.json: leads outside the data root") as err:
        load_caption_folder("set", root, captions="out.json")
    assert "secret" not in str(err.value)  # the message does not name where the link leads
    (folder / "a.png").unlink()
    (folder / "a.png").symlink_to(outside / "s.png")
    with pytest.raises(ValueError, match="image a.png: leads outside the data root") as err:
        load_caption_folder("set", root)
    assert "secret" not in str(err.value)


def test_memory_limit_checked_before_reading(tmp_path):
    root, _ = _folder(tmp_path)
    with pytest.raises(ValueError, match="4 images of 3x32x32 need 48.0 KiB, above the 1,000 B limit"):
        load_caption_folder("set", root, max_bytes=1000)
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\) with C = 1 or 3"):
        load_caption_folder("set", root, image_shape=(2, 32, 32))
