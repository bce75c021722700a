"""Model configurations and training runs from the Training page's choices (no Streamlit here).

The page reads its widgets into a :class:`Choices`, calls :func:`plan_models` (a :class:`ModelPlan`,
or a ValueError naming the field and the fix) and :func:`make_runs`, and draws.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from btcore.data import parse_frame_shape
from btcore.formats import FORMATS
from btcore.classifier import ClassifierConfig
from btcore.rnn import GATES, KINDS
from btcore.shapes import format_ints, parse_rank, prod, rank_text
from btcore.tasks import make_task
from btcore.tasks.action import fit_model_config
from btcore.train import TrainConfig

__all__ = ["FRAME_SIZES", "KIND_LABELS", "DEFAULT_KINDS", "Choices", "ModelPlan", "plan_models", "task_models",
           "make_runs", "paper_models",
           "shared_hidden_modes", "replaced"]

FRAME_SIZES = {"3x16x16 (768 inputs)": "3x16x16", "3x32x32 (3,072 inputs)": "3x32x32",
               "3x48x64 (9,216 inputs)": "3x48x64", "3x120x160 (57,600: the paper's UCF11 frames)": "3x120x160"}
#: Every registered format (dense, TT, BT, TR, ...): its label on the page -> its kind.
KIND_LABELS = {FORMATS[k].label: k for k in KINDS}
#: The race a first visit offers (the paper's three).
DEFAULT_KINDS = ("Dense", "TT", "BT")


@dataclass(frozen=True)
class Choices:
    """The page's model and optimiser widgets, as read."""

    kinds: tuple[str, ...]  # labels of KIND_LABELS
    cell: str
    hidden: int
    d: int
    blocks: int
    bt_rank_text: str
    tt_rank_text: str
    dropout: float
    frame_label: str
    optimizer: str = "adam"
    lr: float = 3e-3
    batch: int = 32
    epochs: int = 8
    seed: int = 0
    clip: float = 1.0
    tr_rank_text: str = "4"
    task: str = "action"


@dataclass(frozen=True)
class ModelPlan:
    """The models to train, with what was adjusted to fit and the modes they took from the Shapes page."""

    frame_shape: tuple[int, int, int]
    models: tuple[ClassifierConfig, ...]
    notes: tuple[str, ...]
    shared_in: tuple[int, ...] | None
    shared_hidden: tuple[int, ...] | None
    model_notes: tuple[str, ...] = ()  # per model: fit_model_config's note ("" when it took every choice)

    def warnings(self, ch: "Choices") -> list[str]:
        """One warning per chosen value a model could not use: the field, the value used, and why."""
        return [w for m, note in zip(self.models, self.model_notes) for w in replaced(ch, m, note)]

    def summary(self, hidden: int) -> str:
        """The "before launch" line: how frames and the hidden state are tensorized (Markdown)."""
        last = self.models[-1]

        def mine(modes, shared) -> str:
            return " (the Shapes page's)" if tuple(modes) == tuple(shared or ()) else ""

        return (f"**Before launch:** frames of {format_ints(self.frame_shape)} = {prod(self.frame_shape):,} inputs "
                f"are tensorized as **{format_ints(last.in_modes)}**{mine(last.in_modes, self.shared_in)}, hidden "
                f"{int(hidden)} as **{format_ints(last.hidden_modes)}**{mine(last.hidden_modes, self.shared_hidden)}.")


def shared_hidden_modes(out_modes, cell: str) -> tuple[int, ...] | None:
    """The hidden modes in the Shapes page's output modes (gates folded into the first), when they divide."""
    gates = GATES[cell]
    if out_modes[0] % gates:
        return None
    return (out_modes[0] // gates,) + tuple(out_modes[1:])


def plan_models(ch: Choices, shared, classes: int | None, options: dict | None = None) -> ModelPlan:
    """The models of ``ch`` for ``classes`` classes, using the shared configuration's modes when they fit.

    Raises ``ValueError`` naming the field: no model chosen, a rank that does not parse, a frame size.
    A task other than action builds its models with its own :meth:`~btcore.tasks.base.Task.model_config`
    (:func:`task_models`).
    """
    if not ch.kinds:
        raise ValueError("choose at least one model to train")
    if ch.task != "action":
        return task_models(ch, options or {})
    frame_shape = parse_frame_shape(FRAME_SIZES[ch.frame_label])
    bt_rank = parse_rank(ch.bt_rank_text, "BT rank")
    tt_ranks = parse_rank(ch.tt_rank_text, "TT ranks")
    tr_ranks = parse_rank(ch.tr_rank_text, "TR ranks")
    hidden_modes = shared_hidden_modes(shared.out_modes, ch.cell)
    models, notes, per_model = [], [], []
    for label in ch.kinds:
        mc, note = fit_model_config(KIND_LABELS[label], ch.cell, frame_shape=frame_shape, hidden=int(ch.hidden),
                                    d=int(ch.d), rank=bt_rank, blocks=int(ch.blocks), tt_ranks=tt_ranks,
                                    classes=classes or 2, dropout=float(ch.dropout), in_modes=shared.in_modes,
                                    hidden_modes=hidden_modes)
        if mc.kind == "tr":  # the action fit has no TR control: set the ring's ranks on the fitted modes
            mc = replace(mc, tr_ranks=tr_ranks)
        models.append(mc)
        notes += note
        per_model.append(" ".join(note))
    return ModelPlan(frame_shape, tuple(models), tuple(notes), tuple(shared.in_modes), hidden_modes,
                     tuple(per_model))


def task_models(ch: Choices, options: dict) -> ModelPlan:
    """The models of ``ch`` for a task other than action: its ``model_config`` with the shared controls.

    ``options``: the task's data options (as its constructor takes them). Raises ``ValueError``
    naming the field that does not fit (the task's own message).
    """
    task = make_task(ch.task, **options)
    controls = {"cell": ch.cell, "hidden": int(ch.hidden), "d": int(ch.d), "dropout": float(ch.dropout)}
    rank_controls = {"rank": ("BT rank", ch.bt_rank_text), "blocks": ("BT blocks N", int(ch.blocks)),
                     "tt_ranks": ("TT ranks", ch.tt_rank_text), "tr_ranks": ("TR ranks", ch.tr_rank_text)}
    models = []
    for label in ch.kinds:
        kind = KIND_LABELS[label]
        mine = {k: (parse_rank(v, name) if isinstance(v, str) else v)
                for k, (name, v) in rank_controls.items() if k in FORMATS[kind].controls}
        try:
            models.append(task.model_config(kind, **controls, **mine))
        except TypeError as exc:  # a control this task's models do not take
            raise ValueError(f"the {ch.task} task cannot build a {label} model with these controls: {exc}") from None
    return ModelPlan((), tuple(models), (), None, None, tuple("" for _ in models))


def replaced(ch: Choices, model: ClassifierConfig, note: str) -> list[str]:
    """Warnings for the choices of ``ch`` that ``model`` does not use (``note``: why, as the fit gave it).

    Each names the field, the value asked for, the value used, and the reason; none when the model
    took every choice. A change of modes alone (the Shapes page's modes do not fit) is a note, not here.
    """
    if not note:
        return []
    name = FORMATS[model.kind].label
    fields = [("Order d", int(ch.d), len(model.in_modes))]
    if model.kind == "bt":
        fields += [("BT rank R", parse_rank(ch.bt_rank_text, "BT rank"), model.rank),
                   ("BT blocks N", int(ch.blocks), model.blocks)]
    if model.kind == "tt":
        fields.append(("TT ranks", parse_rank(ch.tt_rank_text, "TT ranks"), model.tt_ranks))
    if model.kind == "tr":
        fields.append(("TR ranks", parse_rank(ch.tr_rank_text, "TR ranks"), model.tr_ranks))
    why = note.split(": ", 1)[-1].rsplit(" -> using", 1)[0]
    return [f"{name}: {label} = {rank_text(asked)} does not fit, so {rank_text(used)} is used instead: {why}."
            for label, asked, used in fields if asked != used and model.kind != "dense"]


def make_runs(models, ch: Choices) -> list[TrainConfig]:
    """One training run per model with the optimiser choices of ``ch`` (clip 0: no clipping)."""
    return [TrainConfig(m, task=ch.task, optimizer=ch.optimizer, lr=float(ch.lr), batch_size=int(ch.batch), epochs=int(ch.epochs),
                        seed=int(ch.seed), grad_clip=float(ch.clip) if ch.clip > 0 else None, eval_every=0)
            for m in models]


def paper_models(frame_shape, classes: int | None) -> list[ClassifierConfig]:
    """The paper's dense, TT and BT LSTMs (hidden 256, R=4, N=2, TT ranks 4, dropout 0.25) at ``frame_shape``."""
    return [fit_model_config(kind, "lstm", frame_shape=frame_shape, hidden=256, d=4, rank=4, blocks=2, tt_ranks=4,
                             classes=classes or 2, dropout=0.25)[0] for kind in ("dense", "tt", "bt")]
