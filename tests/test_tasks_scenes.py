"""Generated captioning scenes: the captions describe the images (read back by a rule), seeding, controls."""

import re
import time

import numpy as np
import pytest
from scipy import ndimage

from btcore.tasks.captioning import Vocabulary
from btcore.tasks.scenes import (COLOURS, IMAGE_MODES, IMAGE_SHAPE, SHAPES, SIZES, SceneConfig, caption_config,
                                 make_scenes, scene_vocabulary)

_OBJ = r"a (small|large) (\w+) (\w+)"
_ONE = re.compile(rf"^{_OBJ} (on the left|on the right|at the top|at the bottom)$")
_TWO = re.compile(rf"^{_OBJ} (left of|above) {_OBJ}$")


def _templates(cx, cy, r):
    """The grammar's shapes written out independently: (5, ..., 32, 32) masks, in SHAPES order."""
    g = np.arange(32) + 0.5
    dx, dy = g[None, :] - cx[..., None, None], g[:, None] - cy[..., None, None]
    ax, ay = abs(dx), abs(dy)
    return np.stack([dx**2 + dy**2 <= r * r, np.maximum(ax, ay) <= 0.85 * r,
                     (dy <= r) & (dy >= -r) & (2 * ax <= dy + r), ax + ay <= r,
                     ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))])


def _read_object(image, mask):
    """(size, colour, shape, centroid) of one object, read from its pixels."""
    ys, xs = np.nonzero(mask)
    rgb = image[:, ys, xs].mean(1)
    colour = min(COLOURS, key=lambda c: np.sum((np.asarray(COLOURS[c]) - rgb) ** 2))
    mx, my = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    best = (-1.0, None, None)
    offsets = np.linspace(-0.75, 0.75, 7)
    for size, r in SIZES.items():  # best IoU over the shapes, sizes and sub-pixel centres
        cx, cy = np.meshgrid(mx + offsets, my + offsets)
        t = _templates(cx, cy, r)  # (5, 7, 7, 32, 32)
        iou = (t & mask).sum((-1, -2)) / np.maximum((t | mask).sum((-1, -2)), 1)
        k = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[k] > best[0]:
            best = (float(iou[k]), size, SHAPES[k[0]])
    assert best[0] > 0.8, f"no shape fits the object well (IoU {best[0]:.2f})"
    return best[1], colour, best[2], (xs.mean(), ys.mean())


def _check_scene(image, caption):
    labels, n = ndimage.label(image.max(0) > 0.45, structure=np.ones((3, 3)))
    parts = [labels == k for k in range(1, n + 1)]
    parts = [m for m in parts if m.sum() >= 6]  # a few isolated noise pixels; the smallest object has ~30
    n = len(parts)
    objs = [_read_object(image, m) for m in parts]
    one, two = _ONE.match(caption), _TWO.match(caption)
    assert one or two, caption
    if one:
        assert n == 1, (caption, n)
        size, colour, shape, (x, y) = objs[0]
        dx, dy = x - 16, y - 16
        where = (("on the left" if dx < 0 else "on the right") if abs(dx) > abs(dy)
                 else ("at the top" if dy < 0 else "at the bottom"))
        assert (size, colour, shape, where) == one.groups(), caption
        return
    assert n == 2, (caption, n)
    (a, b) = objs
    horizontal = abs(a[3][0] - b[3][0]) > abs(a[3][1] - b[3][1])
    axis = 0 if horizontal else 1
    first, second = sorted(objs, key=lambda o: o[3][axis])  # the left (upper) object is named first
    g = two.groups()
    assert g[3] == ("left of" if horizontal else "above"), caption
    assert first[:3] == g[:3] and second[:3] == g[4:], caption
    assert first[:3] != second[:3]


@pytest.mark.parametrize("config", [SceneConfig(train=20, val=300),
                                    SceneConfig(train=20, val=300, colours=7, shapes=5, noise=0.1, seed=3),
                                    SceneConfig(train=20, val=100, max_objects=1, colours=2, shapes=5, seed=9)])
def test_captions_describe_their_images(config):
    _, val = make_scenes(config)
    for image, refs in zip(val.images.numpy(), val.captions):
        _check_scene(image, refs[0])


def test_default_set_shape_range_vocabulary_and_speed():
    t0 = time.perf_counter()
    train, val = make_scenes(SceneConfig(seed=123))
    assert time.perf_counter() - t0 < 5  # generous bound on a loaded machine; the bench measures the real time
    assert (len(train), len(val)) == (2000, 300)
    assert train.images.shape == (2000, *IMAGE_SHAPE) and int(np.prod(IMAGE_MODES)) == 3 * 32 * 32
    assert float(train.images.min()) >= 0.0 and float(train.images.max()) <= 1.0
    vocab = scene_vocabulary()
    assert len(vocab.words) == 19 and len(scene_vocabulary(SceneConfig(colours=7, shapes=5)).words) == 24
    for refs in train.captions + val.captions:
        vocab.encode(refs[0])  # every word is in the vocabulary
    used = {w for refs in train.captions for w in refs[0].split()}
    assert used == set(vocab.words)  # and every vocabulary word is used
    assert make_scenes(SceneConfig(seed=123))[0].images is train.images  # cached in-process


def test_same_seed_same_scenes_other_seed_others():
    a = make_scenes(SceneConfig(train=50, val=40, seed=5))
    make_scenes.__globals__["_generate"].cache_clear()  # regenerate, not a cache hit
    b = make_scenes(SceneConfig(train=50, val=40, seed=5))
    c = make_scenes(SceneConfig(train=50, val=40, seed=6))
    assert a[0].captions == b[0].captions and np.array_equal(a[0].images, b[0].images)
    assert a[0].captions != c[0].captions
    d = make_scenes(SceneConfig(train=70, val=40, seed=5))  # the validation split does not depend on train's size
    assert d[1].captions == a[1].captions and np.array_equal(d[1].images, a[1].images)
    assert a[0].captions[:40] != a[1].captions  # train and validation are different draws


def test_difficulty_controls():
    train, _ = make_scenes(SceneConfig(train=400, val=10, max_objects=1, colours=2, shapes=1, noise=0.0))
    words = {w for refs in train.captions for w in refs[0].split()}
    assert words <= set(scene_vocabulary(SceneConfig(max_objects=1, colours=2, shapes=1)).words)
    assert words >= {"red", "green", "circle", "small", "large", "left", "top"}
    assert not words & {"blue", "square", "of", "above"}
    assert np.all(np.isin(np.unique(train.images.numpy()), np.unique(np.asarray(list(COLOURS.values())[:2] + [(0,) * 3],
                                                                                 dtype=np.float32))))
    noisy, _ = make_scenes(SceneConfig(train=50, val=10, noise=0.2))
    clean, _ = make_scenes(SceneConfig(train=50, val=10, noise=0.0))
    assert noisy.captions == clean.captions
    bg = noisy.images[clean.images == 0]  # clip(N(0, 0.2), 0, 1): half zero, the rest with mean 0.2 sqrt(2/pi)
    assert 0.48 < float((bg > 0).float().mean()) < 0.52
    assert abs(float(bg[bg > 0].mean()) - 0.2 * np.sqrt(2 / np.pi)) < 0.005


def test_caption_config_uses_the_scene_vocabulary():
    cfg = caption_config("tt", SceneConfig(colours=2), hidden_modes=(2, 2, 2, 2))
    assert cfg.words == scene_vocabulary(SceneConfig(colours=2)).words
    assert cfg.image_modes == IMAGE_MODES and cfg.hidden_modes == (2, 2, 2, 2)
    assert isinstance(cfg.vocabulary, Vocabulary)


@pytest.mark.parametrize("field, value, match", [
    ("max_objects", 3, "max_objects must be between 1 and 2"),
    ("colours", 8, "colours must be between 1 and 7"),
    ("shapes", 0, "shapes must be at least 1"),
    ("noise", 0.5, r"noise must be a number in \[0, 0.3\]"),
    ("noise", "x", "noise must be a number"),
    ("train", 10**6, "train = 1,000,000 scenes is above the limit"),
    ("val", 2.5, "val must be a positive integer"),
    ("seed", -1, "seed must be an integer >= 0"),
])
def test_bad_config_messages(field, value, match):
    with pytest.raises(ValueError, match=match):
        SceneConfig(**{field: value})


def test_config_round_trip():
    cfg = SceneConfig(train=10, val=5, colours=3, noise=0.1, seed=4)
    assert SceneConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown SceneConfig field"):
        SceneConfig.from_dict({"trian": 3})
    with pytest.raises(ValueError, match="config must be a SceneConfig"):
        make_scenes({"train": 3})
