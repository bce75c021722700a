"""The Format study page's inputs as :class:`~app.frame.Field` s (session store and URL query).

Every widget of the page has a field here. URL names start with ``s_`` so they never collide with
the shared configuration or another page's fields. The choices that depend on the data root (the
``.npz`` files, the checkpoints) and on the registered formats are read when the page runs.
"""

from __future__ import annotations

from app.frame import Field
from app.training.datasets import data_root
from btcore.data import ACTION_NAMES, SyntheticActions
from btcore.tasks import task_names
from btcore.train.study import study_formats

from .sources import checkpoint_files, npz_files

__all__ = ["K", "SYNTHETIC", "UPLOAD", "NO_COMPRESS", "FROM_STUDY", "HIDDEN_SIZES", "fields", "data_choices",
           "compress_choices", "format_key", "LABELS", "changed_since"]

K = "study_"  # widget key prefix
SYNTHETIC = "synthetic"
UPLOAD = "upload"
NO_COMPRESS = "none"
FROM_STUDY = "study"  # the dense model this study trains
HIDDEN_SIZES = (16, 64, 256)
_TASK = SyntheticActions()


def _safe(list_files) -> tuple[str, ...]:
    try:
        return tuple(list_files(data_root()))
    except OSError:  # an unreadable data root lists nothing (the page says so)
        return ()


def data_choices() -> tuple[str, ...]:
    """The synthetic clips, an upload, and the ``.npz`` files of the data root."""
    return (SYNTHETIC, UPLOAD, *_safe(npz_files))


def compress_choices() -> tuple[str, ...]:
    """No compression, the study's own dense model, and the ``.pt`` checkpoints of the data root."""
    return (NO_COMPRESS, FROM_STUDY, *_safe(checkpoint_files))


def format_key(fmt: str) -> str:
    """The field (and URL name) of the checkbox of format ``fmt``."""
    return f"s_{fmt}"


def fields() -> tuple[Field, ...]:
    """The page's fields (one checkbox per format of :func:`btcore.train.study.study_formats`)."""
    return (
        Field("s_task", "action", "choice", choices=task_names, widget="task"),
        Field("s_data", SYNTHETIC, "choice", choices=data_choices, widget="data"),
        Field("s_frame", "3x16x16", widget="frame"),
        Field("s_frames", 8, "int", 1, 64, widget="frames"),
        Field("s_classes", _TASK.classes, "int", 2, len(ACTION_NAMES), widget="classes"),
        Field("s_clips", 256, "int", 16, 20_000, widget="train_size"),
        Field("s_val", 128, "int", 8, 5_000, widget="val_size"),
        Field("s_modes", "", widget="in_modes"),
        Field("s_cell", "lstm", "choice", choices=("lstm", "gru"), widget="cell"),
        Field("s_hidden", 64, "int", 1, 1024, widget="hidden"),
        Field("s_d", 4, "int", 2, 6, widget="d"),
        Field("s_budgets", "1000,3000,10000", widget="budgets"),
        *(Field(format_key(f), True, "bool", widget=f"fmt_{f}") for f in study_formats()),
        Field("s_blocks", "2", widget="blocks"),
        Field("s_epochs", 4, "int", 1, 500, widget="epochs"),
        Field("s_batch", 32, "int", 1, 1024, widget="batch"),
        Field("s_lr", 3e-3, "float", 1e-5, 10.0, widget="lr"),
        Field("s_seed", 0, "int", 0, 2**31 - 1, widget="seed"),
        Field("s_compress", NO_COMPRESS, "choice", choices=compress_choices, widget="compress"),
        Field("s_finetune", 2, "int", 0, 100, widget="finetune"),
    )


#: How the page names each field (messages and "changed since").
LABELS = {"s_task": "Task", "s_data": "Data", "s_frame": "Frame size", "s_frames": "Frames per clip",
          "s_classes": "Classes", "s_clips": "Training clips", "s_val": "Validation clips", "s_modes": "Input modes",
          "s_cell": "Cell", "s_hidden": "Hidden size", "s_d": "Order d", "s_budgets": "Budgets",
          "s_blocks": "BT blocks N", "s_epochs": "Epochs", "s_batch": "Batch", "s_lr": "Learning rate",
          "s_seed": "Seed", "s_compress": "Compress from", "s_finetune": "Fine-tune epochs K",
          **{format_key(f): f"format {f.upper()}" for f in study_formats()}}


def changed_since(made_with: dict[str, str], now: dict[str, str]) -> list[str]:
    """``"label: then -> now"`` for each input (URL text) that differs between a study and the page now."""
    return [f"{LABELS.get(k, k)}: {v} -> {now.get(k, '')}" for k, v in made_with.items() if now.get(k) != v]
