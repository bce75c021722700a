"""The Training page's data controls (``st.*`` here): the action clips, another task's own options, a scroll.

Each function draws its widgets (keys ``K + widget`` of :mod:`app.training.inputs`, so the page's
store and URL restore them) and returns what was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from app.training.datasets import DATA_ROOT_ENV, class_folders, data_root, dataset_path, list_datasets
from app.training.inputs import SYNTHETIC, option_fields
from app.training.plan import FRAME_SIZES
from app.widgets import show_error
from btcore.data import ACTION_NAMES

__all__ = ["ActionData", "action_controls", "task_option_controls", "scroll_into_view"]


@dataclass(frozen=True)
class ActionData:
    """The action task's data as chosen: the synthetic motions (sizes) or a clip folder inside the data root."""

    choice: str
    frame_label: str
    frames: int
    folder: Path | None = None
    classes: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    noise: float | None = None


def action_controls(inputs, key: str) -> ActionData:
    """The clip source, frame size, sequence length and (synthetic) sizes of the action task."""
    root = data_root()
    try:
        datasets = [SYNTHETIC, *list_datasets(root)]
    except OSError as exc:  # e.g. no permission to list it
        datasets = [SYNTHETIC]
        show_error(exc, f"Cannot read the clip folders in the data root `{root}`")
    if inputs["t_data"] not in datasets:  # a clip folder removed since it was chosen
        inputs.set("t_data", SYNTHETIC)
    choice = st.selectbox("Clips", datasets, key=key + "dataset",
                          help=f"The synthetic task, or a clip folder in the data root `{root}` (set "
                               f"{DATA_ROOT_ENV} to move it) in the UCF11 layout: one sub-folder per class, clips "
                               "as frame folders (PNG/JPEG), .npy/.npz arrays or animated GIFs.")
    folder, classes = None, None
    if choice != SYNTHETIC:
        try:
            folder = dataset_path(choice, root)
            classes = len(class_folders(folder, root)) or None
            st.caption(f"{classes} class folders in `{choice}`; a quarter of each class's clips is held out for "
                       "validation. Frames are resized to the frame size below.")
        except (ValueError, OSError) as exc:
            show_error(exc, f"Cannot read the clip folder `{choice}`")
    elif len(datasets) == 1:
        st.caption(f"No clip folders in the data root `{root}` yet: put one there (`<name>/<class>/<clips>`) or set "
                   f"{DATA_ROOT_ENV}.")
    frame_label = st.selectbox("Frame size (C x H x W)", list(FRAME_SIZES), key=key + "frame")
    frames = st.slider("Sequence length (frames per clip)", 4, 16, key=key + "frames")
    if choice != SYNTHETIC:
        return ActionData(choice, frame_label, int(frames), folder, classes)
    classes = st.slider("Classes (motions)", 2, len(ACTION_NAMES), key=key + "classes", persist_state="session",
                        help="Moves right/left/down/up, grow, shrink, rotate clockwise/anticlockwise: pairs that "
                             "differ only by the direction of time.")
    c1, c2 = st.columns(2)
    train_size = c1.number_input("Training clips", 32, 20_000, step=32, key=key + "train_size", persist_state="session")
    val_size = c2.number_input("Validation clips", 16, 5_000, step=16, key=key + "val_size", persist_state="session")
    noise = st.slider("Pixel noise", 0.0, 0.5, step=0.01, key=key + "noise", persist_state="session")
    return ActionData(choice, frame_label, int(frames), None, int(classes), int(train_size), int(val_size), float(noise))


def task_option_controls(task: str, key: str) -> dict:
    """A number input (or checkbox) per data option of ``task`` (:func:`~app.training.inputs.option_fields`)."""
    out = {}
    for f in option_fields(task):
        option = f.name[len(f"t_{task}_"):]
        label = option.replace("_", " ").capitalize()
        if f.kind == "bool":
            out[option] = st.checkbox(label, key=key + f.widget)
        else:
            num = int if f.kind == "int" else float
            out[option] = st.number_input(label, num(f.lo), num(f.hi), key=key + f.widget,
                                          format=None if f.kind == "int" else "%.4g")
    return out


def scroll_into_view(anchor: str) -> None:
    """Scroll the page so the element with id ``anchor`` (a header's anchor) is at the top, once."""
    # an iframe of the app's origin may reach the page (same-origin access); the anchor is the page's own text
    st.iframe(f"<script>const el = window.parent.document.getElementById({anchor!r});"
              "if (el) el.scrollIntoView({behavior: 'smooth', block: 'start'});</script>", height=1)
