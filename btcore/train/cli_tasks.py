"""The command line's task options: ``--task`` and the flags of each task, checked and turned into a :class:`~btcore.tasks.Task`.

Each task owns some flags (generation: ``--draw-steps``, ``--latent``, ``--image-size``; captioning:
``--objects``, ``--colours``, ``--shapes``; action: ``--classes``, ``--val-fraction``, a clip folder
in ``--data``); a flag given to a task that does not use it is refused, naming it. Flags shared by
several tasks (``--train-size``, ``--val-size``, ``--noise``) go to the task that has the option.
``--epochs``, ``--batch`` and ``--hidden`` default to the task's :attr:`~btcore.tasks.Task.defaults`.
"""

from __future__ import annotations

import argparse

from ..data import SyntheticActions
from ..tasks import TASKS, Task, make_task
from ..tasks.digits import DEFAULT_TRAIN

__all__ = ["add_task_flags", "task_defaults", "check_task_flags", "make_cli_task", "option_error", "train_count",
           "RUN_DEFAULTS", "TASK_HELP"]

#: What ``--task`` trains, for its help.
TASK_HELP = ("what to train: action = recognise the motion in clips (synthetic or a clip folder); generation = "
             "draw handwritten digits (DRAW-style VAE, validation nELBO); captioning = caption generated scenes "
             "(BLEU-4)")
#: ``--epochs``, ``--batch``, ``--hidden`` when neither the command nor the task sets them.
RUN_DEFAULTS = {"epochs": 8, "batch": 32, "hidden": 64}
#: Flags only some tasks take: flag -> (argparse dest, the tasks that use it).
OWN_FLAGS = {"--classes": ("classes", ("action",)), "--val-fraction": ("val_fraction", ("action",)),
             "--draw-steps": ("draw_steps", ("generation",)), "--latent": ("latent", ("generation",)),
             "--image-size": ("image_size", ("generation",)), "--objects": ("objects", ("captioning",)),
             "--colours": ("colours", ("captioning",)), "--shapes": ("shapes", ("captioning",)),
             "--val-size": ("val_size", ("action", "captioning")), "--noise": ("noise", ("action", "captioning"))}


def add_task_flags(p: argparse.ArgumentParser, int_type, float_type) -> None:
    """The generation and captioning flags (``int_type(lo, hi)`` / ``float_type(lo, hi)`` make checked types)."""
    g = p.add_argument_group("generation task (--task generation)")
    g.add_argument("--draw-steps", type=int_type(1, 64), default=None, help="DRAW steps T (default 8)")
    g.add_argument("--latent", type=int_type(1, 4096), default=None, help="size of each step's latent z (default 16)")
    g.add_argument("--image-size", type=int_type(1, 256), default=None, help="digits are resized to this side in "
                   "pixels (default 28: 784 = 4x7x4x7); --in-modes must multiply to its square")
    g = p.add_argument_group("captioning task (--task captioning)")
    g.add_argument("--objects", type=int_type(1, 2), default=None, help="objects per scene, at most (default 2)")
    g.add_argument("--colours", type=int_type(1, 7), default=None, help="colour words used (default 4)")
    g.add_argument("--shapes", type=int_type(1, 5), default=None, help="shape words used (default 3)")


def task_defaults(args: argparse.Namespace, error) -> None:
    """Fill ``--epochs``, ``--batch`` and ``--hidden`` left unset from the task's defaults, ``--frame``/``--frames`` from the clips'.

    ``--frame`` and ``--frames`` describe action clips: another task refuses them (``error(message)``).
    """
    own = TASKS[args.task].defaults
    for key, fallback in RUN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, own.get(key, fallback))
    clips = SyntheticActions()
    for dest, flag, default in (("frame", "--frame", "x".join(map(str, clips.frame_shape))),
                                ("frames", "--frames", clips.frames)):
        if getattr(args, dest) is not None and args.task != "action":
            raise error(f"{flag}: applies to the action task's clips only, not {args.task}; drop it")
        if getattr(args, dest) is None:
            setattr(args, dest, default)


def check_task_flags(args: argparse.Namespace, error) -> None:
    """Raise ``error(message)`` for a flag the chosen task does not take."""
    for flag, (dest, tasks) in OWN_FLAGS.items():
        if getattr(args, dest) is not None and args.task not in tasks:
            raise error(f"{flag}: applies to --task {' or '.join(tasks)} only, not {args.task}; drop it")
    if args.task not in ("action", "sequences"):  # the classifier's tasks
        if args.data != "synthetic" and args.task != "captioning":
            raise error(f"--data: the {args.task} task makes its own data (the action and captioning tasks read folders); "
                        "drop --data")
        if args.readout != "last":
            raise error(f"--readout: applies to the action task's classifier only, not {args.task}; drop it")
        if args.cell != "lstm":
            raise error(f"--cell: the {args.task} model's cells are LSTMs; drop --cell {args.cell}")
        if args.dropout:
            raise error(f"--dropout: the {args.task} model has no dropout; drop it")
    if args.task == "captioning" and args.noise is not None and args.noise > 0.3:
        raise error(f"--noise: the scenes' pixel noise must be at most 0.3 (more hides the objects), got {args.noise:g}")


def make_cli_task(args: argparse.Namespace, frame, *, train_size=None, val_size=None) -> Task:
    """The task of ``--task`` with its options from the flags (``train_size`` / ``val_size``: override those flags)."""
    train_size = args.train_size if train_size is None else train_size
    val_size = args.val_size if val_size is None else val_size
    if args.task == "generation":
        opts = dict(image_size=args.image_size, train_size=train_size, steps=args.draw_steps, latent=args.latent)
    elif args.task == "captioning":
        opts = dict(train_size=train_size, val_size=val_size, max_objects=args.objects, colours=args.colours,
                    shapes=args.shapes, noise=args.noise, folder=None if args.data == "synthetic" else args.data)
    else:
        return make_task(args.task, data_source=args.data, frame_shape=frame, frames=args.frames, classes=args.classes,
                         train_size=train_size, val_size=val_size, noise=args.noise, val_fraction=args.val_fraction)
    return make_task(args.task, **{k: v for k, v in opts.items() if v is not None})


#: A task option's field (as its error message starts) -> the flag that sets it.
_OPTION_FLAGS = {"image_size": "--image-size", "train_size": "--train-size", "train": "--train-size",
                 "val_size": "--val-size", "val": "--val-size", "steps": "--draw-steps", "latent": "--latent",
                 "max_objects": "--objects", "colours": "--colours", "shapes": "--shapes", "noise": "--noise"}


def option_error(message: str) -> str:
    """A task option's error message, led by the flag that sets the option it names."""
    if message.startswith("--"):
        return message
    field = message.split(" ", 1)[0].rstrip(":")
    flag = _OPTION_FLAGS.get(field)
    return f"{flag}: {message}" if flag else f"--task: {message}"


def train_count(task: Task, train_size: int | None) -> int:
    """Training examples of ``task`` with ``--train-size`` ``train_size`` (None: the task's default)."""
    if train_size is not None:
        return int(train_size)
    if task.name == "generation":
        return DEFAULT_TRAIN
    if task.name == "captioning":
        return task.scene_config().train
    return SyntheticActions().train_size
