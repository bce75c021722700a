"""Generated scenes with exact captions: the data of the captioning task.

A scene is a 3 x 32 x 32 float image in [0, 1] (3,072 = 8x8x8x6 values, the action task's frame)
on a black background holding one or two objects. An object has a shape (circle, square, triangle,
diamond, cross), a colour (red, green, blue, yellow, magenta, cyan, white) and a size (small: half
extent 4 px, large: 7 px). The caption follows a small grammar:

* one object: ``a <size> <colour> <shape> on the left | on the right | at the top | at the bottom``;
  the object's centre is at most 12 px from that edge and within 3 px of the middle across;
* two objects: ``a <size> <colour> <shape> left of | above a <size> <colour> <shape>``; the first
  object named is the left (or upper) one, the two are apart along that axis (at least 1.5 px of
  background between them) and overlap across it, so no other relation word would be true.

Two objects of one scene always differ in at least one word (size, colour or shape), so the caption
names each of them unambiguously, and objects never overlap, so every word is exactly true.

Generation is vectorised (coordinate grids, no per-pixel loops), seeded by ``(seed, split)`` and
cached in-process: the default set (2,000 train + 300 validation scenes) takes well under a second.
Difficulty: ``max_objects`` (1 or 2), ``colours`` and ``shapes`` (how many of the lists above are
used, in order) and ``noise`` (std of Gaussian pixel noise, clipped to [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..shapes import check_positive_int
from .base import DictRecord
from .captioning import CaptionConfig, CaptionSet, Vocabulary

__all__ = ["IMAGE_SHAPE", "IMAGE_MODES", "SHAPES", "COLOURS", "SIZES", "SceneConfig", "scene_vocabulary",
           "make_scenes", "scene_split", "caption_config"]

#: Scene images are (C, H, W) = 3 x 32 x 32; flattened they are tensorized as 8x8x8x6.
IMAGE_SHAPE = (3, 32, 32)
IMAGE_MODES = (8, 8, 8, 6)
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
#: RGB of each colour word (the first ``SceneConfig.colours`` are used).
COLOURS = {"red": (0.92, 0.12, 0.12), "green": (0.15, 0.80, 0.20), "blue": (0.20, 0.35, 1.00),
           "yellow": (0.95, 0.90, 0.15), "magenta": (0.90, 0.20, 0.90), "cyan": (0.15, 0.90, 0.95),
           "white": (0.95, 0.95, 0.95)}
#: Half extent in pixels of each size word.
SIZES = {"small": 4.0, "large": 7.0}
_POSITIONS = ("on the left", "on the right", "at the top", "at the bottom")
_RELATIONS = ("left of", "above")
_GRAMMAR = ("a", "on", "the", "at", "of") + tuple(p.split()[-1] for p in _POSITIONS) + ("above",)
_MARGIN, _GAP, _EDGE = 0.5, 1.5, 12.0  # px from the border; background between two objects; "near an edge"
_SQUARE = 0.85  # a square's half side per unit of size, so its area is close to the circle's
_ARM = 0.3  # a cross's arm half-width per unit of size
_MAX_SCENES = 20_000
_SPLITS = {"train": 0, "val": 1}


@dataclass(frozen=True)
class SceneConfig(DictRecord):
    """What to generate: split sizes, difficulty and seed; validated on construction.

    Fields
    ------
    train, val : int
        Scenes in the training and validation splits.
    max_objects : 1 or 2
        Each scene holds 1..max_objects objects (uniformly).
    colours : int in 1..7
        How many colour words are used (the first of :data:`COLOURS`).
    shapes : int in 1..5
        How many shape words are used (the first of :data:`SHAPES`).
    noise : float in [0, 0.3]
        Std of the Gaussian pixel noise.
    seed : int >= 0
    """

    train: int = 2000
    val: int = 300
    max_objects: int = 2
    colours: int = 4
    shapes: int = 3
    noise: float = 0.05
    seed: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self) -> "SceneConfig":
        """Check every field; ``ValueError`` naming the field and the fix."""
        for name in ("train", "val"):
            n = check_positive_int(getattr(self, name), name)
            if n > _MAX_SCENES:
                raise ValueError(f"{name} = {n:,} scenes is above the limit of {_MAX_SCENES:,} "
                                 f"({_MAX_SCENES * 12 // 1024:,} MiB of images); use fewer scenes")
            object.__setattr__(self, name, n)
        checks = (("max_objects", 2, "a 32 x 32 scene holds at most two non-overlapping objects side by side"),
                  ("colours", len(COLOURS), f"the colour words are {', '.join(COLOURS)}"),
                  ("shapes", len(SHAPES), f"the shape words are {', '.join(SHAPES)}"))
        for name, hi, why in checks:
            v = check_positive_int(getattr(self, name), name)
            if v > hi:
                raise ValueError(f"{name} must be between 1 and {hi}, got {v} ({why})")
            object.__setattr__(self, name, v)
        noise = self.noise
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= float(noise) <= 0.3:
            raise ValueError(f"noise must be a number in [0, 0.3] (the pixel noise std; more hides the objects), "
                             f"got {noise!r}")
        object.__setattr__(self, "noise", float(noise))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        return self


def scene_vocabulary(config: SceneConfig = SceneConfig()) -> Vocabulary:
    """Every word the grammar can use with ``config``'s colours and shapes, in a fixed order."""
    words = _GRAMMAR + tuple(SIZES) + tuple(COLOURS)[:config.colours] + SHAPES[:config.shapes]
    if config.max_objects == 1:
        words = tuple(w for w in words if w not in ("of", "above"))
    return Vocabulary(words)


def _place_single(rng, n: int, r: np.ndarray):
    """Centres (cx, cy) and position ids of lone objects of half extent ``r`` (n,)."""
    pos = rng.integers(0, len(_POSITIONS), n)
    u, v = rng.random(n), rng.random(n)
    lo = r + _MARGIN
    near = lo + u * (_EDGE - lo)  # centre within _EDGE px of the named edge
    along = np.where(pos % 2 == 0, near, 32.0 - near)
    across = 16.0 - 3.0 + 6.0 * v  # within 3 px of the middle, so no other position word applies
    horizontal = pos < 2
    return np.where(horizontal, along, across), np.where(horizontal, across, along), pos


def _place_pair(rng, n: int, r: np.ndarray):
    """Centres (n, 2) of two objects (half extents r (n, 2)) and relation ids; object 0 is left/above."""
    rel = rng.integers(0, len(_RELATIONS), n)
    slack = 32.0 - 2 * _MARGIN - 2 * r.sum(1) - _GAP
    a, b = np.sort(rng.random((n, 2)), axis=1).T
    first = _MARGIN + a * slack + r[:, 0]
    second = first + r[:, 0] + _GAP + (b - a) * slack + r[:, 1]
    along = np.stack([first, second], 1)
    # across: a shared line +-1 px, so the two overlap across the axis (|offset| <= 2 < r0 + r1)
    across = (8.5 + 15.0 * rng.random(n))[:, None] + rng.uniform(-1.0, 1.0, (n, 2))
    horizontal = (rel == 0)[:, None]
    return np.where(horizontal, along, across), np.where(horizontal, across, along), rel


def _masks(shape: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean masks (n, k, 32, 32): which pixel centres lie inside each object."""
    grid = np.arange(32, dtype=np.float32) + 0.5
    dx = grid[None, None, None, :] - cx[..., None, None].astype(np.float32)
    dy = grid[None, None, :, None] - cy[..., None, None].astype(np.float32)
    r = r[..., None, None].astype(np.float32)
    ax, ay = np.abs(dx), np.abs(dy)
    inside = [
        dx * dx + dy * dy <= r * r,  # circle
        np.maximum(ax, ay) <= _SQUARE * r,  # square
        (dy <= r) & (ax <= (dy + r) / 2),  # triangle, apex up (dy >= -r follows from ax >= 0)
        ax + ay <= r,  # diamond
        ((ax <= _ARM * r) & (ay <= r)) | ((ay <= _ARM * r) & (ax <= r)),  # cross
    ]
    s = shape[..., None, None]
    return np.select([s == k for k in range(len(inside))], inside, False)


def _describe(size: np.ndarray, colour: np.ndarray, shape: np.ndarray) -> list[str]:
    sizes, colours = tuple(SIZES), tuple(COLOURS)
    return [f"{sizes[a]} {colours[b]} {SHAPES[c]}" for a, b, c in zip(size.tolist(), colour.tolist(), shape.tolist())]


@lru_cache(maxsize=4)  # at most 4 splits of <= 20,000 scenes (234 MiB each)
def _generate(seed: int, split: int, n: int, max_objects: int, colours: int, shapes: int,
              noise: float) -> tuple[torch.Tensor, tuple[str, ...]]:
    rng = np.random.default_rng([seed, split, 7403])
    count = rng.integers(1, max_objects + 1, n)
    shape = rng.integers(0, shapes, (n, 2))
    colour = rng.integers(0, colours, (n, 2))
    size = rng.integers(0, 2, (n, 2))
    same = (shape[:, 0] == shape[:, 1]) & (colour[:, 0] == colour[:, 1]) & (size[:, 0] == size[:, 1])
    size[same, 1] = 1 - size[same, 1]  # two objects of a scene always differ in a word
    r = np.asarray(tuple(SIZES.values()))[size]
    sx, sy, pos = _place_single(rng, n, r[:, 0])
    px, py, rel = _place_pair(rng, n, r)
    two = count == 2
    cx = np.where(two[:, None], px, np.stack([sx, np.zeros(n)], 1))
    cy = np.where(two[:, None], py, np.stack([sy, np.zeros(n)], 1))
    masks = _masks(shape, cx, cy, r) & (np.arange(2)[None, :] < count[:, None])[..., None, None]
    rgb = np.asarray(tuple(COLOURS.values()), dtype=np.float32)[colour]  # (n, 2, 3)
    images = np.einsum("nkhw,nkc->nchw", masks.astype(np.float32), rgb)  # objects never overlap
    if noise > 0:
        images += np.float32(noise) * rng.standard_normal(images.shape, dtype=np.float32)
        np.clip(images, 0.0, 1.0, out=images)
    first, second = _describe(size[:, 0], colour[:, 0], shape[:, 0]), _describe(size[:, 1], colour[:, 1], shape[:, 1])
    captions = tuple(f"a {a} {_RELATIONS[k]} a {b}" if t else f"a {a} {_POSITIONS[p]}"
                     for a, b, t, k, p in zip(first, second, two.tolist(), rel.tolist(), pos.tolist()))
    return torch.from_numpy(images), captions


def make_scenes(config: SceneConfig = SceneConfig()) -> tuple[CaptionSet, CaptionSet]:
    """The (train, validation) :class:`~btcore.tasks.captioning.CaptionSet` s of ``config`` (one caption each).

    Cached in-process on the configuration: the image tensors are shared between calls, so treat
    them as read-only. Split ``s`` depends only on ``(seed, s)`` and the difficulty, not on the
    other split's size.
    """
    return scene_split(config, "train"), scene_split(config, "val")


def scene_split(config: SceneConfig, name: str) -> CaptionSet:
    """Split ``name`` ("train" or "val") of ``config``'s scenes alone (as :func:`make_scenes` makes it; cached)."""
    if not isinstance(config, SceneConfig):
        raise ValueError(f"config must be a SceneConfig, got {type(config).__name__}")
    if name not in _SPLITS:
        raise ValueError(f"name must be one of {', '.join(_SPLITS)}, got {name!r}")
    images, captions = _generate(config.seed, _SPLITS[name], getattr(config, name), config.max_objects,
                                 config.colours, config.shapes, config.noise)
    return CaptionSet(images, captions, f"scenes:{name}")


def caption_config(kind: str = "bt", scene: SceneConfig = SceneConfig(), **overrides) -> CaptionConfig:
    """A :class:`~btcore.tasks.captioning.CaptionConfig` for ``scene``: its vocabulary, 3x32x32 = 8x8x8x6 images.

    ``overrides`` replace fields (hidden_modes, embed, rank, blocks, tt_ranks, max_len).
    """
    base = dict(words=scene_vocabulary(scene).words, kind=kind, image_shape=IMAGE_SHAPE, image_modes=IMAGE_MODES)
    base.update(overrides)
    return CaptionConfig(**base)
