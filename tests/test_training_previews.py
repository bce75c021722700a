"""The Training page's preview rendering: hand-made preview dicts -> pixels, strips, HTML, rows."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from app.training import previews as pv


def _digit(v):
    a = np.zeros((28, 28))
    a[4:24, 10:18] = v
    return a.tolist()


def _image_preview(T=5):
    samples = np.linspace(0, 1, 168 * 168).reshape(168, 168)
    return {"task": "generation", "kind": "images", "samples": samples.tolist(),
            "originals": [_digit(1.0) for _ in range(8)], "reconstructions": [_digit(0.5) for _ in range(8)],
            "canvas": [_digit(t / T) for t in range(1, T + 1)], "size": 28, "grid": 6}


def test_pixels_are_nearest_neighbour_squares_in_uint8():
    img = [[0.0, 1.0], [0.5, 2.0]]  # 2.0 is clipped to white
    p = pv.to_pixels(img, 3)
    assert p.dtype == np.uint8 and p.shape == (6, 6)
    assert (p[:3, :3] == 0).all() and (p[:3, 3:] == 255).all() and (p[3:, :3] == 128).all() and (p[3:, 3:] == 255).all()
    rgb = pv.to_pixels(np.ones((2, 3, 3)) * 0.2, 2)
    assert rgb.shape == (4, 6, 3) and (rgb == 51).all()
    with pytest.raises(ValueError, match="H x W"):
        pv.to_pixels(np.zeros((2, 2, 4)))


def test_image_panels_of_a_generation_preview():
    panels = pv.image_panels(_image_preview(T=5), scale=3)
    assert panels["samples"].shape == (168 * 2, 168 * 2)
    # 8 digits of 28*3 px with 7 gaps of 2 px
    assert panels["originals"].shape == (84, 8 * 84 + 7 * 2)
    assert panels["reconstructions"].shape == panels["originals"].shape
    assert panels["canvas"].shape == (84, 5 * 84 + 4 * 2)
    # the reconstructions' stroke is mid grey, the originals' white, the gap white
    assert panels["reconstructions"][30, 40] == 128 and panels["originals"][30, 40] == 255
    assert (panels["originals"][:, 84:86] == 255).all()
    # the canvas brightens step by step
    steps = [panels["canvas"][30, 40 + t * 86] for t in range(5)]
    assert steps == sorted(steps) and steps[0] < steps[-1]
    with pytest.raises(ValueError, match="not an image preview"):
        pv.image_panels({"kind": "captions"})


def test_samples_png_is_the_grid():
    png = pv.samples_png(_image_preview(), scale=2)
    im = Image.open(io.BytesIO(png))
    assert im.size == (336, 336) and im.mode == "L"


def _caption_preview(caption, correct, truth="a red circle left"):
    return {"task": "captioning", "kind": "captions",
            "examples": [{"index": 7, "image": np.full((4, 4, 3), 0.5).tolist(), "truth": truth,
                          "caption": caption, "correct": correct}]}


def test_caption_cells_mark_wrong_words_red_and_escape_text():
    cells = pv.caption_cells({"BT": _caption_preview("a blue circle left", [True, False, True, True]),
                              "<TT>": _caption_preview("a <b>", [True, False])})
    assert len(cells) == 1 and cells[0]["index"] == 7 and np.asarray(cells[0]["image"]).shape == (4, 4, 3)
    html = cells[0]["html"]
    assert "true: a red circle left" in html
    # the run name and the caption's "<b>" are text: the only tags are the two run names' bold
    assert "<b>&lt;TT&gt;</b>" in html and "&lt;b&gt;" in html and html.count("<b>") == 2
    wrong = re.findall(r'<span style="color:#d62728[^"]*">(.*?)</span>', html)
    assert wrong == ["blue", "&lt;b&gt;"]
    assert html.count("#1a7f37") == 4  # a, circle, left; a
    assert pv.caption_cells({}) == []


def test_captions_json_leaves_the_images_out():
    out = json.loads(pv.captions_json({"BT": _caption_preview("a red", [True, True])}))
    assert out == {"BT": [{"index": 7, "truth": "a red circle left", "caption": "a red", "correct": [True, True]}]}


def test_prediction_rows_and_the_kind_of_previews():
    p1 = {"kind": "predictions", "examples": [{"index": 0, "label": 1, "label_name": "left", "predicted": 0,
                                                "predicted_name": "right", "probability": 0.6, "correct": False}]}
    p2 = {"kind": "predictions", "examples": [{**p1["examples"][0], "predicted": 1, "predicted_name": "left",
                                                "probability": 0.9, "correct": True}]}
    latest = {"BT": p2, "Dense": p1}
    assert pv.preview_kind(latest) == "predictions"
    assert pv.prediction_rows(latest) == [{"clip": "#0", "label": "left", "BT": "left (90%)", "Dense": "✗ right (60%)"}]
    assert pv.preview_kind({"a": {"kind": "images"}, "b": {"kind": "captions"}}) is None
