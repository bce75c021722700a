"""The study the page's inputs describe, checked before any work: the task, the jobs, the dense model to compress.

:func:`make_plan` turns the stored inputs (URL text values) and an upload into a :class:`StudyPlan`,
or raises ``ValueError`` whose message starts with the field's label and says the fix.
:func:`study_command` writes the ``python -m btcore.train --study formats`` command that reproduces it.
Nothing here calls ``st.*``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from btcore.compress import COMPRESS_FORMATS
from btcore.data import parse_frame_shape
from btcore.shapes import factorize, parse_ints
from btcore.tasks import TASKS, Task, make_task
from btcore.train import TrainConfig
from btcore.train.study import StudyJob, plan_study, study_formats
from btcore.train.study_cli import check_dense_checkpoint

from .inputs import FROM_STUDY, NO_COMPRESS, SYNTHETIC, UPLOAD, format_key
from .sources import checkpoint_path, sequences_classes

__all__ = ["StudyPlan", "MAX_BUDGETS", "MAX_BUDGET", "parse_budgets", "parse_blocks", "chosen_formats",
           "balanced_modes", "make_plan", "study_command"]

#: At most this many budgets, each at most :data:`MAX_BUDGET` parameters.
MAX_BUDGETS = 8
MAX_BUDGET = 10**8


@dataclass(frozen=True)
class StudyPlan:
    """A checked study: what :func:`btcore.train.study.run_study` needs and what the page shows before launch."""

    task: Task
    jobs: list[StudyJob]
    notes: list[str]
    budgets: list[int]
    base: TrainConfig
    controls: dict
    compress: str | Path | None  # None, FROM_STUDY, or a resolved checkpoint
    finetune_epochs: int
    features: int
    data_label: str


def parse_budgets(text: str) -> list[int]:
    """The budgets typed as ``1000,3000,10000``; ValueError naming the field and the fix."""
    try:
        budgets = [int(t.replace("_", "").strip()) for t in str(text).split(",") if t.strip()]
    except ValueError:
        budgets = []
    if not budgets or any(not 1 <= b <= MAX_BUDGET for b in budgets):
        raise ValueError(f"Budgets: give a comma list of whole numbers of input-map parameters from 1 to "
                         f"{MAX_BUDGET:,}, e.g. 1000,3000,10000; got {text!r}")
    budgets = sorted(set(budgets))
    if len(budgets) > MAX_BUDGETS:
        raise ValueError(f"Budgets: at most {MAX_BUDGETS} budgets, got {len(budgets)}; drop some")
    return budgets


def parse_blocks(text: str) -> list[int]:
    """BT's block counts N (one, or several for the R x N grid)."""
    try:
        blocks = list(dict.fromkeys(parse_ints(text, "BT blocks N")))
    except ValueError as exc:
        raise ValueError(f"BT blocks N: {exc}; give one count or a comma list such as 1,2,4") from None
    if not blocks or any(not 1 <= n <= 16 for n in blocks) or len(blocks) > 6:
        raise ValueError(f"BT blocks N: give up to 6 counts from 1 to 16 (e.g. 2, or 1,2,4 for the R x N grid); "
                         f"got {text!r}")
    return blocks


def chosen_formats(values: dict) -> list[str]:
    """The ticked formats, in :func:`study_formats` order."""
    out = [f for f in study_formats() if values.get(format_key(f))]
    if not out:
        raise ValueError("Formats: tick at least one format to compare with dense")
    return out


def balanced_modes(features: int, d: int) -> tuple[int, ...]:
    """The balanced tensorization of ``features`` into ``d`` modes (the default input modes)."""
    return factorize(features, d)


def _task(values: dict, upload: bytes | None, root: Path) -> tuple[Task, int | None, int, str]:
    """``(task, classes or None, features D, data label)`` of the inputs, its data checked."""
    name, data = values["s_task"], values["s_data"]
    if name not in TASKS:
        raise ValueError(f"Task: {name!r} is not registered; choose one of {', '.join(TASKS)}")
    if name == "sequences":
        if data == SYNTHETIC:
            raise ValueError("Data: the sequences task reads your own .npz; upload one or put it in the data root")
        if data == UPLOAD:
            if upload is None:
                raise ValueError("Data: upload a .npz of X (n, T, D) and y (n,) first, or choose a file of the data "
                                 "root")
            source, label = upload, "the uploaded .npz"
        else:
            source, label = data, data
        classes = sequences_classes(source, None if isinstance(source, bytes) else root,
                                    where="uploaded .npz" if isinstance(source, bytes) else data)
        task = make_task(name, data_source=source, root=None if isinstance(source, bytes) else str(root))
        return task, classes, task.features, label
    if data != SYNTHETIC:
        raise ValueError(f"Data: the {name} task trains on its own generated data; choose 'synthetic' (a .npz "
                         "trains the sequences task)")
    options = {"frame_shape": values["s_frame"], "frames": int(values["s_frames"]),
               "classes": int(values["s_classes"]), "train_size": int(values["s_clips"]),
               "val_size": int(values["s_val"])}
    known = {f.name for f in dataclasses.fields(TASKS[name])} if dataclasses.is_dataclass(TASKS[name]) else set()
    try:
        options["frame_shape"] = parse_frame_shape(values["s_frame"])
    except ValueError as exc:
        raise ValueError(f"Frame size: {exc}; write it as C x H x W, e.g. 3x16x16") from None
    task = make_task(name, **{k: v for k, v in options.items() if k in known})
    shape = getattr(task, "frame_shape", options["frame_shape"])
    return task, getattr(task, "classes", None), math.prod(shape), f"generated ({name})"


def _modes(values: dict, features: int) -> tuple[int, ...] | None:
    text = str(values["s_modes"]).strip()
    if not text:
        return None
    try:
        modes = tuple(parse_ints(text, "Input modes"))
    except ValueError as exc:
        raise ValueError(f"Input modes: {exc}; leave it empty for balanced modes") from None
    if math.prod(modes) != features or len(modes) < 2:
        raise ValueError(f"Input modes: {text} multiply to {math.prod(modes):,}, but the data have D = {features:,} "
                         f"features; give 2 or more modes whose product is {features:,} (balanced: "
                         f"{'x'.join(map(str, balanced_modes(features, max(2, len(modes)))))})")
    return modes


def _compress(values: dict, task: Task, controls: dict, root: Path) -> str | Path | None:
    choice = values["s_compress"]
    if choice == NO_COMPRESS:
        return None
    if choice == FROM_STUDY:
        return FROM_STUDY
    path = checkpoint_path(choice, root)
    check_dense_checkpoint(path, task, controls, field="Compress from")
    return path


def make_plan(values: dict, upload: bytes | None, root: Path) -> StudyPlan:
    """The checked study of the page's inputs ``values`` (field name -> value) and ``upload`` (bytes or None)."""
    budgets = parse_budgets(values["s_budgets"])
    formats = chosen_formats(values)
    blocks = parse_blocks(values["s_blocks"])
    task, classes, features, label = _task(values, upload, root)
    modes = _modes(values, features)
    controls = {"hidden": int(values["s_hidden"]), "d": len(modes) if modes else int(values["s_d"]),
                "cell": values["s_cell"], "in_modes": modes}
    if classes:
        controls["classes"] = int(classes)
    try:
        dense = task.model_config("dense", **controls)
    except ValueError as exc:
        raise ValueError(f"Hidden size / Order d: {exc}") from None
    base = TrainConfig(dense, lr=float(values["s_lr"]), batch_size=int(values["s_batch"]),
                       epochs=int(values["s_epochs"]), seed=int(values["s_seed"]), task=task.name)
    compress = _compress(values, task, controls, root)
    if compress is not None and not any(f in COMPRESS_FORMATS for f in formats):
        raise ValueError(f"Compress from: compression fits {', '.join(f.upper() for f in COMPRESS_FORMATS)} layers; "
                         "tick one of them")
    jobs, notes = plan_study(task, budgets, formats, base=base, controls=controls, bt_blocks=blocks,
                             compress_from=compress is not None)
    if len(jobs) == 1:
        raise ValueError(f"Budgets: no ticked format fits within {values['s_budgets']} input-map parameters; "
                         "raise the budgets")
    return StudyPlan(task, jobs, notes, budgets, base, controls, compress,
                     int(values["s_finetune"]) if compress is not None else 0, features, label)


def study_command(plan: StudyPlan, values: dict) -> str:
    """The command lines that run the same study (the upload is saved as ``my_sequences.npz``)."""
    t, base = plan.task, plan.base
    parts = ["python -m btcore.train --study formats", f"--task {t.name}",
             f"--budgets {','.join(map(str, plan.budgets))}", f"--formats {','.join(chosen_formats(values))}",
             f"--sweep-blocks {','.join(map(str, parse_blocks(values['s_blocks'])))}"]
    if t.name == "sequences":
        data = [f"--data {'my_sequences.npz' if values['s_data'] == UPLOAD else t.data_source}"]  # resolved in the root
    else:
        data = [f"--frame {'x'.join(map(str, t.frame_shape))}", f"--frames {t.frames}", f"--classes {t.classes}",
                f"--train-size {t.train_size}", f"--val-size {t.val_size}"]
    m = base.model
    model = [f"--cell {m.cell}", f"--hidden {m.hidden_size}", f"--d {len(m.in_modes)}",
             f"--in-modes {'x'.join(map(str, m.in_modes))}"]
    train = [f"--epochs {base.epochs}", f"--batch {base.batch_size}", f"--lr {base.lr:g}", f"--seed {base.seed}"]
    lines = []
    if plan.compress == FROM_STUDY:  # the CLI compresses a checkpoint: train the dense model first
        lines.append(" ".join(["python -m btcore.train --model dense", f"--task {t.name}", *data, *model, *train,
                               "--out dense --checkpoint"]) + "\n")
        parts += ["--compress-from dense/LSTM.pt" if m.cell == "lstm" else "--compress-from dense/GRU.pt",
                  f"--finetune-epochs {plan.finetune_epochs}"]
    elif plan.compress is not None:
        parts += [f"--compress-from {plan.compress}", f"--finetune-epochs {plan.finetune_epochs}"]
    lines.append(" \\\n    ".join(parts + data + model + train) + "\n")
    return "\n".join(lines)
