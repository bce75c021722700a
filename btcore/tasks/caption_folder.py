"""A folder of images plus a captions file, loaded into :class:`~btcore.tasks.captioning.CaptionSet` s.

Captions files (in the folder; relative names may go into sub-folders):

* COCO captions JSON (the model layout), ``{"images": [{"id", "file_name"}, ...],
  "annotations": [{"image_id", "caption"}, ...]}``; an image may have several captions (MSCOCO has
  five); images without a caption are skipped.
* JSON lines, one object per line: ``{"file_name": "0001.png", "caption": "a red circle"}`` (or
  ``"captions": [...]``); a file name may repeat to give an image more captions.
* CSV with a header naming the columns ``file_name`` and ``caption`` (one row per caption).

Captions are normalised (:func:`~btcore.tasks.captioning.normalize_caption`: lower case,
punctuation removed). Images are read with Pillow, converted to the model's channels and resized
(bilinear) to its frame; with ``resize=False`` an image of another size is refused. Every path,
the folder's, the captions file's and each image's, is resolved (symlinks followed) and refused
when it leads outside the data root, so nothing outside the root is listed, read or named.

Running the paper's setting on a copy of MSCOCO
-----------------------------------------------
Ye et al. 2018 train BT-LSTM caption decoders on MSCOCO. BT Lab does not download it; with a copy:

1. Put the images and their captions under the data root (``$BTLAB_DATA_ROOT``, by default the
   repository's ``data/``), e.g. ``data/coco/train2014/*.jpg`` and
   ``data/coco/annotations/captions_train2014.json`` (COCO's own file, unchanged: its
   ``file_name`` entries are relative to the folder holding the images, so point ``images`` there).
2. Load a subset that fits in memory, e.g.::

       train, val, vocab = load_caption_folder("coco", root, captions="annotations/captions_train2014.json",
                                               images="train2014", max_images=20000)

3. Build the model for the loaded vocabulary and train it::

       config = CaptionConfig(words=vocab.words, kind="bt", image_shape=(3, 32, 32), image_modes=(8, 8, 8, 6))
       history = train_epochs(Captioner(config), train, val, epochs=10)

The paper feeds CNN image features to the tensorized map; here the map takes the resized pixels,
so the numbers are not the paper's. A larger ``image_shape`` (with ``image_modes`` multiplying to
C*H*W) keeps more of each photo.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from ..clips import resolve_data_path
from ..memory import format_bytes
from ..shapes import check_modes, check_positive_int, prod
from .captioning import CaptionSet, Vocabulary, normalize_caption

__all__ = ["CAPTION_FILES", "IMAGE_EXTENSIONS", "load_caption_folder", "read_captions"]

#: Captions file names looked for, in order, when none is given.
CAPTION_FILES = ("captions.json", "captions.jsonl", "captions.csv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".webp")
_LAYOUTS = ('COCO captions JSON ({"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}), '
            'JSON lines ({"file_name", "caption"} per line) or CSV with columns file_name,caption')


def _inside(base: Path, root: Path, name, what: str) -> Path:
    """``base / name`` resolved, refused when it leaves ``root`` (the message never names where it leads)."""
    raw = Path(str(name))
    if raw.is_absolute() or ".." in raw.parts or not raw.parts:
        raise ValueError(f"{what} {name!s}: give a name relative to the folder, without '..'")
    full = (base / raw).resolve()
    if not full.is_relative_to(root):
        raise ValueError(f"{what} {name!s}: leads outside the data root (a symlink); put the file inside the data root")
    return full


def _coco(data, where: str) -> list[tuple[str, str]]:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{where}: a JSON captions file needs lists 'images' and 'annotations'; accepted: {_LAYOUTS}")
    names = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ValueError(f"{where}: images[{k}] needs an 'id' and a 'file_name'")
        names[im["id"]] = im["file_name"]
    out = []
    for k, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or not isinstance(a.get("caption"), str) or "image_id" not in a:
            raise ValueError(f"{where}: annotations[{k}] needs an 'image_id' and a 'caption'")
        if a["image_id"] not in names:
            raise ValueError(f"{where}: annotations[{k}] refers to image_id {a['image_id']!r}, which is not in 'images'")
        out.append((names[a["image_id"]], a["caption"]))
    return out


def _jsonl(text: str, where: str) -> list[tuple[str, str]]:
    out = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}, line {line_no}: not JSON ({e.msg})") from None
        caps = row.get("captions", [row.get("caption")]) if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row.get("file_name"), str) or not isinstance(caps, list) \
                or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"{where}, line {line_no}: expected {{\"file_name\": ..., \"caption\": ...}}")
        out.extend((row["file_name"], c) for c in caps)
    return out


def _csv(text: str, where: str) -> list[tuple[str, str]]:
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not {"file_name", "caption"} <= set(reader.fieldnames):
        raise ValueError(f"{where}: a CSV captions file needs a header with the columns file_name,caption; "
                         f"got {reader.fieldnames}")
    out = []
    for line_no, row in enumerate(reader, 2):
        if not row.get("file_name") or row.get("caption") is None:
            raise ValueError(f"{where}, line {line_no}: a row needs a file_name and a caption")
        out.append((row["file_name"], row["caption"]))
    return out


def read_captions(path: Path) -> list[tuple[str, str]]:
    """(file name, raw caption) pairs of a captions file (.json COCO layout, .jsonl or .csv)."""
    where = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"captions file {where}: not readable as UTF-8 text ({type(e).__name__})") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return _coco(json.loads(text), where)
        except json.JSONDecodeError as e:
            raise ValueError(f"captions file {where}: not JSON ({e.msg}, line {e.lineno})") from None
    if suffix == ".jsonl":
        return _jsonl(text, where)
    if suffix == ".csv":
        return _csv(text, where)
    raise ValueError(f"captions file {where}: unknown type {suffix or '(none)'}; accepted: {_LAYOUTS}")


def _read_image(path: Path, name: str, shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    from PIL import Image  # Pillow is pinned in requirements.txt; only this loader needs it

    c, h, w = shape
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                if not resize:
                    raise ValueError(f"image {name} is {im.size[0]}x{im.size[1]} pixels, expected {w}x{h}; "
                                     "resize the images or load with resize=True")
                im = im.resize((w, h), Image.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"image {name}: not a readable image ({type(e).__name__}); accepted: "
                         f"{', '.join(IMAGE_EXTENSIONS)}") from None
    return a[None] if c == 1 else np.moveaxis(a, -1, 0)


def _find_captions(folder: Path, root: Path, captions) -> Path:
    if captions is not None:
        path = _inside(folder, root, captions, "captions file")
        if not path.is_file():
            raise ValueError(f"captions file {captions} is missing from the folder; accepted: {_LAYOUTS}")
        return path
    for name in CAPTION_FILES:
        path = _inside(folder, root, name, "captions file")
        if path.is_file():
            return path
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
    what = "holds no images and no captions file" if not images else f"has {len(images)} images but no captions file"
    raise ValueError(f"the folder {what}: expected one of {', '.join(CAPTION_FILES)} ({_LAYOUTS}), or name the "
                     "file with captions=")


def _split(n: int, val_fraction, seed: int) -> np.ndarray:
    """Boolean mask of the validation images: ``val_fraction`` of them (at least one when n >= 2)."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return mask


def load_caption_folder(path, root, *, captions=None, images=None, image_shape=(3, 32, 32), resize: bool = True,
                        vocabulary: Vocabulary | None = None, val_fraction: float = 0.2, seed: int = 0,
                        max_images: int | None = None,
                        max_bytes: int = 2 * 1024**3) -> tuple[CaptionSet, CaptionSet, Vocabulary]:
    """Load a folder of images and a captions file into (train, validation, vocabulary).

    Parameters
    ----------
    path : path
        The folder, relative to ``root`` (or absolute inside it).
    root : path
        The data root; nothing outside it is read.
    captions : str, optional
        The captions file, relative to the folder; default the first of :data:`CAPTION_FILES` found.
    images : str, optional
        Sub-folder the captions' file names are relative to (default: the folder itself).
    image_shape : (C, H, W)
        The model's frame; C is 1 (grey) or 3 (RGB).
    resize : bool
        Resize images to H x W (bilinear); when False an image of another size is an error.
    vocabulary : Vocabulary, optional
        A fixed vocabulary: a caption with another word is an error naming the word and the file.
        Default: built from all the captions.
    val_fraction, seed : share of the images held out for validation, and the seed choosing them.
    max_images : int, optional
        Use only the first images (in the captions file's order).
    max_bytes : int
        Refuse to load more than this many bytes of float32 images (checked before reading any).

    Raises
    ------
    ValueError
        A path outside the data root, a missing folder or captions file, no captioned images, a
        missing or unreadable image, one of the wrong size (``resize=False``), an empty caption, an
        unknown word (fixed vocabulary), or too many bytes; the message names the file and the fix.
    """
    shape = check_modes(image_shape, "image_shape")
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"image_shape must be (C, H, W) with C = 1 or 3, got {shape}")
    folder = resolve_data_path(path, root)
    base = Path(root).expanduser().resolve()
    pairs = read_captions(_find_captions(folder, base, captions))
    image_dir = folder if images is None else _inside(folder, base, images, "images folder")
    if not image_dir.is_dir():
        raise ValueError(f"images folder {images}: no such folder")
    by_image: dict[str, list[str]] = {}
    for name, raw in pairs:
        text = normalize_caption(raw)
        if not text:
            raise ValueError(f"the caption {raw!r} of image {name} has no words")
        by_image.setdefault(name, []).append(text)
    names = list(by_image)[: check_positive_int(max_images, "max_images") if max_images is not None else None]
    if not names:
        raise ValueError(f"the captions file lists no captioned images; accepted: {_LAYOUTS}")
    need = len(names) * prod(shape) * 4
    if need > max_bytes:
        raise ValueError(f"{len(names):,} images of {'x'.join(map(str, shape))} need {format_bytes(need)}, above the "
                         f"{format_bytes(max_bytes)} limit; use max_images or a smaller image_shape")
    vocab = vocabulary if vocabulary is not None else Vocabulary.from_captions([c for n in names for c in by_image[n]])
    for n in names:
        for c in by_image[n]:
            try:
                vocab.encode(c)
            except ValueError as e:
                raise ValueError(f"image {n}: {e}") from None
    arrays = []
    for n in names:
        p = _inside(image_dir, base, n, "image")
        if not p.is_file():
            raise ValueError(f"image {n}, named in the captions file, is missing from the folder")
        arrays.append(_read_image(p, n, shape, resize))
    x = torch.from_numpy(np.stack(arrays).astype(np.float32))
    is_val = _split(len(names), val_fraction, seed)
    caps = [tuple(by_image[n]) for n in names]
    src = f"folder:{Path(path)}"
    sets = [CaptionSet(x[torch.from_numpy(m)], tuple(c for c, v in zip(caps, m) if v), src) for m in (~is_val, is_val)]
    return sets[0], sets[1], vocab
