"""The Training page's live previews: what each model produces now, beside its curves (``st.*`` here).

The pictures come from :mod:`app.training.previews` (pure); this module only lays them out:

* generation: per model, its prior samples, then the fixed validation digits with each model's
  reconstructions under them, then one sample's canvas step by step;
* captioning: a strip of the fixed validation images, each model's caption under each image;
* action: a table of each model's prediction per validation clip.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.training import previews as pv
from app.widgets import escape_markdown

__all__ = ["show_previews", "preview_downloads"]

_MAX_COLUMNS = 4  # models side by side; more go on further rows


def _params(events: list[dict]) -> dict[str, str]:
    out = {}
    for e in events:
        if e.get("event") == "start" and e.get("input_map_params") is not None:
            out[e["run"]] = f"{int(e['input_map_params']):,} input-map parameters"
    return out


def _epoch(preview: dict) -> str:
    epoch = preview.get("epoch")
    return f"epoch {epoch:.0f}" if isinstance(epoch, (int, float)) else ""


def _rows(runs: list[str]):
    for s in range(0, len(runs), _MAX_COLUMNS):
        chunk = runs[s:s + _MAX_COLUMNS]
        yield zip(chunk, st.columns(len(chunk)))


def _images(latest: dict[str, dict], events: list[dict]) -> None:
    panels = {r: pv.image_panels(p, scale=3) for r, p in latest.items()}
    params = _params(events)
    runs = list(panels)
    st.markdown("**Samples from the prior** (the same seeds for every model, so the grids compare directly)")
    for row in _rows(runs):
        for run, col in row:
            col.image(panels[run]["samples"], caption=f"{run} · {params.get(run, '')} · {_epoch(latest[run])}",
                      output_format="PNG")
    first = panels[runs[0]]
    if "originals" in first:
        st.markdown("**Reconstructions** of 8 fixed validation digits")
        st.image(first["originals"], caption="the validation digits", output_format="PNG")
        for run in runs:
            if "reconstructions" in panels[run]:
                st.image(panels[run]["reconstructions"], caption=f"{run}'s reconstructions", output_format="PNG")
    if "canvas" in first:
        steps = len(latest[runs[0]]["canvas"])
        st.markdown(f"**The canvas step by step** (t = 1..{steps}) of one sample")
        for run in runs:
            if "canvas" in panels[run]:
                st.image(panels[run]["canvas"], caption=f"{run}: t = 1..{len(latest[run]['canvas'])}",
                         output_format="PNG")


def _captions(latest: dict[str, dict]) -> None:
    cells = pv.caption_cells(latest)
    st.markdown("**Captions of fixed validation images** (right words green, wrong words red and underlined)")
    cols = st.columns(max(len(cells), 1))
    for cell, col in zip(cells, cols):
        col.image(pv.to_pixels(cell["image"], 4), caption=f"#{cell['index']}", width="stretch", output_format="PNG")
        col.markdown(cell["html"], unsafe_allow_html=True)


def show_previews(latest: dict[str, dict], events: list[dict], key: str) -> None:
    """Each model's newest preview (``latest``: run -> preview), laid out by the preview's kind.

    ``events`` give each model's parameter counts (its ``start`` event).
    """
    kind = pv.preview_kind(latest)
    if kind is None:
        return
    if kind == "images":
        _images(latest, events)
    elif kind == "captions":
        _captions(latest)
    else:
        rows = pv.prediction_rows(latest)
        if rows:
            st.markdown("**Predictions on the first validation clips** (✗: wrong; in brackets: the model's probability)")
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=key + "predictions")


def preview_downloads(latest: dict[str, dict], key: str) -> None:
    """Downloads of the previews (``latest``: run -> preview): each model's sample grid (PNG) or the captions (JSON)."""
    kind = pv.preview_kind(latest)
    if kind == "images":
        cols = st.columns(min(len(latest), _MAX_COLUMNS))
        for i, (run, p) in enumerate(latest.items()):
            cols[i % len(cols)].download_button(f"Samples of {escape_markdown(run)} (PNG)", pv.samples_png(p),
                                                f"btlab_samples_{i}.png", "image/png", icon=":material/download:",
                                                key=f"{key}dl_png_{i}")
    elif kind == "captions":
        st.download_button("Captions (JSON)", pv.captions_json(latest), "btlab_captions.json", "application/json",
                           icon=":material/download:", key=key + "dl_captions")
