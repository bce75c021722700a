"""What the Training page draws beside the curves: a task's preview dict -> images, HTML, rows (pure).

A task's :meth:`~btcore.tasks.base.Task.preview` is a JSON-able dict with a ``"kind"``:

* ``"images"`` (generation): ``samples`` (one grid of prior samples), ``originals`` and
  ``reconstructions`` (fixed validation digits), ``canvas`` (one sample's canvas step by step);
* ``"captions"`` (captioning): ``examples`` of ``image``, ``truth``, ``caption`` and ``correct``
  (one flag per caption word);
* ``"predictions"`` (action): ``examples`` of label, prediction and its probability.

The trainer puts one on every evaluation event (``previews=True``); the page's job keeps each run's
newest (:func:`app.training.worker.split_preview`). Images are upscaled by whole factors (nearest neighbour: every pixel stays a sharp
square, as a projector must show them) and returned as ``uint8`` arrays that ``st.image`` draws as they are.
"""

from __future__ import annotations

import html
import json

import numpy as np

from btcore.tasks.images import grid_png_bytes

__all__ = ["preview_kind", "to_pixels", "strip", "image_panels", "caption_cells",
           "captions_json", "prediction_rows", "samples_png", "KINDS"]

#: The preview kinds the page draws.
KINDS = ("images", "captions", "predictions")
_GAP = 2  # pixels between the images of a strip (at display scale), white


def preview_kind(previews: dict[str, dict]) -> str | None:
    """The kind shared by ``previews`` (None when there are none or the kind is not one the page draws)."""
    kinds = {p.get("kind") for p in previews.values()}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    return kind if kind in KINDS else None


def to_pixels(image, scale: int = 1) -> np.ndarray:
    """A grey (H x W) or colour (H x W x 3) image in [0, 1] as ``uint8``, each pixel a ``scale`` x ``scale`` square.

    Values outside [0, 1] are clipped (a sample is a probability; rounding may overshoot).
    """
    a = np.asarray(image, dtype=np.float64)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise ValueError(f"an image must be H x W or H x W x 3, got shape {a.shape}")
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    return np.round(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255).astype(np.uint8)


def strip(images, scale: int = 1, gap: int = _GAP) -> np.ndarray:
    """Images of one shape side by side (upscaled by ``scale``), separated by ``gap`` white pixels."""
    tiles = [to_pixels(im, scale) for im in images]
    if not tiles:
        raise ValueError("a strip needs at least one image")
    if len({t.shape for t in tiles}) != 1:
        raise ValueError("the images of a strip must all have the same shape")
    sep = np.full((tiles[0].shape[0], gap) + tiles[0].shape[2:], 255, dtype=np.uint8)
    parts = [tiles[0]]
    for t in tiles[1:]:
        parts += [sep, t]
    return np.concatenate(parts, axis=1)


def image_panels(preview: dict, scale: int = 3) -> dict[str, np.ndarray]:
    """The pictures of a generation preview: ``"samples"`` (the grid), ``"originals"``, ``"reconstructions"``
    (strips of the fixed validation digits) and ``"canvas"`` (t = 1..T of one sample), each ``uint8``.

    The samples' grid is drawn at half of ``scale`` (at least 1): it holds grid x grid images.
    """
    if preview.get("kind") != "images":
        raise ValueError(f"not an image preview (kind {preview.get('kind')!r})")
    out = {"samples": to_pixels(preview["samples"], max(1, scale // 2 + scale % 2))}
    for key in ("originals", "reconstructions", "canvas"):
        if preview.get(key):
            out[key] = strip(preview[key], scale)
    return out


def samples_png(preview: dict, scale: int = 4) -> bytes:
    """The grid of prior samples as PNG bytes (greyscale, upscaled ``scale`` times)."""
    return grid_png_bytes(np.asarray(preview["samples"], dtype=np.float64), scale=scale)


def _words(ex: dict) -> str:
    words = str(ex.get("caption", "")).split()
    flags = list(ex.get("correct") or [])
    out = []
    for i, w in enumerate(words):
        ok = i < len(flags) and bool(flags[i])
        style = "color:#1a7f37" if ok else "color:#d62728;font-weight:700;text-decoration:underline"
        out.append(f'<span style="{style}">{html.escape(w)}</span>')
    return " ".join(out) if out else '<span style="color:#888">(empty)</span>'


def caption_cells(previews: dict[str, dict]) -> list[dict]:
    """One cell per validation image of the caption previews: ``{"index", "image", "html"}``.

    ``html`` is the true caption (italic) and, on a line each, every run's current caption with right
    words green and wrong words red and underlined. ``previews``: run name -> a ``"captions"`` preview;
    every text is HTML-escaped.
    """
    runs = [r for r, p in previews.items() if p.get("kind") == "captions"]
    if not runs:
        return []
    cells = []
    for i, ex in enumerate(previews[runs[0]]["examples"]):
        lines = [f"<div style='font-style:italic;color:#444'>true: {html.escape(str(ex.get('truth', '')))}</div>"]
        for r in runs:
            exs = previews[r]["examples"]
            if i < len(exs):
                lines.append(f"<div><b>{html.escape(r)}</b>: {_words(exs[i])}</div>")
        cells.append({"index": int(ex.get("index", i)), "image": ex.get("image"), "html": "".join(lines)})
    return cells


def captions_json(previews: dict[str, dict]) -> str:
    """The runs' current captions (and the truths, per image index) as JSON, without the images."""
    out = {r: [{k: ex.get(k) for k in ("index", "truth", "caption", "correct")} for ex in p.get("examples", [])]
           for r, p in previews.items() if p.get("kind") == "captions"}
    return json.dumps(out, indent=1)


def prediction_rows(previews: dict[str, dict]) -> list[dict]:
    """One row per validation clip: its label and each run's prediction with its probability (a mark when wrong)."""
    runs = [r for r, p in previews.items() if p.get("kind") == "predictions"]
    if not runs:
        return []
    rows = []
    for i, ex in enumerate(previews[runs[0]]["examples"]):
        row = {"clip": f"#{int(ex['index'])}", "label": str(ex["label_name"])}
        for r in runs:
            exs = previews[r]["examples"]
            if i < len(exs):
                e = exs[i]
                row[r] = f"{'' if e['correct'] else '✗ '}{e['predicted_name']} ({e['probability']:.0%})"
        rows.append(row)
    return rows
