"""The Training page's inputs as :class:`~app.frame.Field` s (session store and URL query).

Every widget of the page has a field here, so a page switch or a copied link restores the page
exactly. The URL names all start with ``t_``: they never collide with the shared configuration
(``in``, ``out``, ``R``, ``N``, ``tt``, ``batch``) nor with another page's fields.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from app.frame import ListField
from app.training.charts import X_AXES
from app.frame import Field
from btcore.data import ACTION_NAMES, SyntheticActions
from btcore.shapes import rank_text
from btcore.tasks import TASKS, task_names
from btcore.train import OPTIMIZERS

from .datasets import data_root, list_datasets
from .plan import DEFAULT_KINDS, FRAME_SIZES, KIND_LABELS

__all__ = ["FIELDS", "page_fields", "option_fields", "SYNTHETIC", "HIDDEN_SIZES", "VIEW_FIELDS", "LABELS", "MapField", "IntOptionField", "defaults",
           "dataset_choices", "changed_since"]

SYNTHETIC = "Synthetic motions (built in)"
HIDDEN_SIZES = (16, 64, 256)
TASK = SyntheticActions()  # the synthetic task's defaults (as the CLI's)
PAPER_FRAMES = tuple(FRAME_SIZES)[:3]


def dataset_choices() -> tuple[str, ...]:
    """The synthetic task and the clip folders in the data root (none when it cannot be read)."""
    try:
        return (SYNTHETIC, *list_datasets(data_root()))
    except OSError:
        return (SYNTHETIC,)


@dataclass(frozen=True)
class MapField(Field):
    """A selectbox of long labels, written by its short name in the URL (``t_frame=3x32x32``).

    ``choices`` maps each label (the widget's value) to its URL name.
    """

    def parse(self, text: str):
        names = dict(self.options())
        label = next((lab for lab, name in names.items() if name == text), None)
        if label is None:
            raise ValueError("expected one of " + ", ".join(names.values()))
        return label

    def format(self, value) -> str:
        return dict(self.options()).get(value, str(value))


@dataclass(frozen=True)
class IntOptionField(Field):
    """An integer from a fixed list (a select slider)."""

    def parse(self, text: str):
        try:
            value = int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
        if value not in self.options():
            raise ValueError("expected one of " + ", ".join(map(str, self.options())))
        return value


FIELDS = (
    Field("t_task", "action", "choice", choices=lambda: page_tasks(), widget="task"),
    Field("t_data", SYNTHETIC, "choice", choices=dataset_choices, widget="dataset"),
    MapField("t_frame", tuple(FRAME_SIZES)[1], choices=tuple(FRAME_SIZES.items()), widget="frame"),
    Field("t_frames", TASK.frames, "int", 4, 16, widget="frames"),
    Field("t_classes", TASK.classes, "int", 2, len(ACTION_NAMES), widget="classes"),
    Field("t_clips", TASK.train_size, "int", 32, 20_000, widget="train_size"),
    Field("t_val", TASK.val_size, "int", 16, 5_000, widget="val_size"),
    Field("t_noise", TASK.noise, "float", 0.0, 0.5, widget="noise"),
    ListField("t_models", list(DEFAULT_KINDS), choices=tuple(KIND_LABELS), widget="kinds"),
    Field("t_cell", "lstm", "choice", choices=("lstm", "gru"), widget="cell"),
    IntOptionField("t_hidden", 64, choices=HIDDEN_SIZES, widget="hidden"),
    Field("t_d", 4, "int", 2, 6, widget="d"),
    Field("t_blocks", 2, "int", 1, 16, widget="blocks"),
    Field("t_rank", "4", widget="bt_rank"),
    Field("t_tt", "4", widget="tt_ranks"),
    Field("t_tr", "4", widget="tr_ranks"),
    Field("t_dropout", 0.0, "float", 0.0, 0.5, widget="dropout"),
    Field("t_opt", "adam", "choice", choices=tuple(OPTIMIZERS), widget="optimizer"),
    Field("t_lr", 3e-3, "float", 1e-5, 1000.0, widget="lr"),
    Field("t_batch", 32, "int", 1, 1024, widget="batch"),
    Field("t_epochs", 8, "int", 1, 500, widget="epochs"),
    Field("t_clip", 1.0, "float", 0.0, 100.0, widget="clip"),
    Field("t_seed", 0, "int", 0, 2**31 - 1, widget="seed"),
    Field("t_x", "step", "choice", choices=tuple(X_AXES), widget="x_axis"),
    Field("t_sweep_r", "2,4,8", widget="sweep_ranks"),
    Field("t_sweep_n", "1,2,4", widget="sweep_blocks"),
    MapField("t_paper_frame", PAPER_FRAMES[1], choices=tuple((k, FRAME_SIZES[k]) for k in PAPER_FRAMES),
             widget="paper_frame"),
)

#: Fields that change only how results are shown, never what a run computes.
VIEW_FIELDS = ("t_x",)

#: How each field is named on the page (for "changed since this run").
LABELS = {"t_task": "task", "t_tr": "TR ranks", "t_data": "clips", "t_frame": "frame size", "t_frames": "sequence length", "t_classes": "classes",
          "t_clips": "training clips", "t_val": "validation clips", "t_noise": "pixel noise", "t_models": "models",
          "t_cell": "cell", "t_hidden": "hidden size", "t_d": "order d", "t_blocks": "BT blocks N",
          "t_rank": "BT rank R", "t_tt": "TT ranks", "t_dropout": "dropout", "t_opt": "optimiser",
          "t_lr": "learning rate", "t_batch": "batch", "t_epochs": "epochs", "t_clip": "gradient clip",
          "t_seed": "seed", "t_x": "x axis", "t_sweep_r": "sweep ranks", "t_sweep_n": "sweep blocks",
          "t_paper_frame": "paper frame size"}


#: The largest integer a task option takes from a link or the page (the task checks its own range).
OPTION_MAX = 100_000

#: Registered tasks whose data this page cannot provide: the user's ``.npz`` sequences are uploaded and
#: studied on the Format study page.
OTHER_PAGE_TASKS = ("sequences",)


def page_tasks() -> tuple[str, ...]:
    """The registered tasks this page trains (every task but those of :data:`OTHER_PAGE_TASKS`)."""
    return tuple(n for n in task_names() if n not in OTHER_PAGE_TASKS)
_OPTION_KINDS = {int: "int", float: "float", bool: "bool"}


def option_fields(task: str) -> tuple[Field, ...]:
    """Fields of the numeric data options of ``task``: the int / float / bool keyword parameters of its
    constructor that have a default, named ``t_<task>_<option>``; none for action, whose options are the
    page's clip controls.
    """
    cls = TASKS.get(task)
    if task == "action" or cls is None:
        return ()
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no readable signature: the task has no options the page can offer
        return ()
    out = []
    for p in params:
        kind = _OPTION_KINDS.get(type(p.default))
        if kind is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_"):
            lo, hi = (None, None) if kind == "bool" else (0, OPTION_MAX)
            out.append(Field(f"t_{task}_{p.name}", p.default, kind, lo, hi, widget=f"opt_{task}_{p.name}"))
    return tuple(out)


def page_fields() -> tuple[Field, ...]:
    """Every field of the page: :data:`FIELDS` and each registered task's options (the registry now)."""
    return FIELDS + tuple(f for name in page_tasks() for f in option_fields(name))


def defaults(shared) -> dict:
    """First-visit values that follow the Shapes page's configuration ``shared`` (ranks, blocks, order)."""
    return {"t_rank": rank_text(shared.bt_rank), "t_tt": rank_text(shared.tt_ranks),
            "t_blocks": min(max(int(shared.blocks), 1), 16), "t_d": min(max(int(shared.d), 2), 6)}


def changed_since(made_with: dict[str, str], now: dict[str, str]) -> list[str]:
    """``"label: then -> now"`` for each input (URL text) that differs between a run and the page now."""
    return [f"{LABELS.get(k, k.replace('_', ' ')[2:])}: {v} -> {now.get(k, '')}" for k, v in made_with.items()
            if k not in VIEW_FIELDS and now.get(k) != v]
