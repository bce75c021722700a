"""The command line: ``python -m btcore.train`` (and ``torchrun -m btcore.train`` for DistributedDataParallel).

Every flag is checked before any work (no data loaded, nothing trained): a bad value or combination
prints one line, ``error: --flag ...: what is wrong and the fix``, on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as tdist

from ..memory import DEFAULT_MAX_BYTES, available_memory, format_bytes, keep_memory
from ..data import ACTION_NAMES, SyntheticActions, parse_frame_shape
from ..rnn import KINDS
from ..shapes import check_choice, factorize, parse_ints, parse_rank, prod
from ..tasks import Task, make_task, task_names
from .config import (MAX_LR, OPTIMIZERS, TrainConfig, check_device, cpu_count, estimate_memory, pin_contraction_rates,
                     set_cpu_threads)
from .cli_tasks import (RUN_DEFAULTS, TASK_HELP, add_task_flags, check_task_flags, make_cli_task, option_error,
                        task_defaults, train_count)
from .io import OutDir, check_out_dir, claim_out_dir, save_results, summary
from .json_lines import json_line
from .race import compare
from .study_cli import STUDIES, check_study_flags, study_main
from .sweep import sweep_configs

__all__ = ["main", "KINDS"]

#: Flags of the synthetic task and of a clip folder: each is refused with the other kind of data.
SYNTHETIC_FLAGS = {"classes": "--classes", "train_size": "--train-size", "val_size": "--val-size", "noise": "--noise"}
FOLDER_FLAGS = {"val_fraction": "--val-fraction"}
#: Most clips per synthetic split: every clip is rendered again each epoch, so more would run for days.
MAX_CLIPS = 10_000_000


class CliError(ValueError):
    """A flag's value or a combination of flags that the CLI refuses (one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit; main prints one line instead
        raise CliError(message.removeprefix("argument "))


def _int(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi]."""
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give an integer of at least {lo}") \
                from None
        if v < lo or (hi is not None and v > hi):
            span = f"at least {lo}" if hi is None else f"between {lo} and {hi}" + (f" (at least {lo})" if v < lo else "")
            raise argparse.ArgumentTypeError(f"must be {span}, got {v}")
        return v

    conv.__name__ = "int"
    return conv


def _float(lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    """An argparse type: a finite number in the interval from lo to hi (open ends as flagged)."""
    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (v < lo or (lo_open and v == lo)) or (hi is not None and (v > hi or (hi_open and v == hi))):
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo:g}, {'inf' if hi is None else f'{hi:g}'}"
                                             f"{right if hi is not None else ')'}, got {v:g}")
        return v

    conv.__name__ = "float"
    return conv


def _parser() -> argparse.ArgumentParser:
    task = SyntheticActions()  # the defaults of the synthetic task
    run = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    p = _Parser(
        prog="python -m btcore.train",
        description="Train dense / TT / BT recurrent models on one of the paper's three tasks (--task: action "
                    "recognition on synthetic clips or a UCF11-style clip folder, image generation on handwritten "
                    "digits, captioning of generated scenes) and print one JSON line of metrics per epoch, then a "
                    "summary line. Runs under "
                    "`torchrun --nproc_per_node=K` with DistributedDataParallel (NCCL on GPUs, gloo on CPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default=task_names()[0], choices=task_names(), help=TASK_HELP)
    g = p.add_argument_group("model")
    g.add_argument("--model", default="bt", help="input-map format(s): dense, tt or bt; a comma list (dense,tt,bt) "
                   "trains them one after another for a comparison")
    g.add_argument("--cell", default="lstm", choices=("lstm", "gru"), help="recurrent cell")
    g.add_argument("--hidden", type=_int(1), default=None, help="hidden size (factorized into --d modes, 64 -> 4x4x2x2; "
                   "default 64, generation and captioning 128)")
    g.add_argument("--d", type=_int(1), default=4, help="tensor order: number of input and hidden modes")
    g.add_argument("--in-modes", default=None, help="input modes, e.g. 8x8x8x6 (default: factorize(C*H*W, d))")
    g.add_argument("--hidden-modes", default=None, help="hidden modes, e.g. 4x4x4x4 (default: factorize(hidden, d))")
    g.add_argument("--rank", default="4", help="BT Tucker rank R (one int, or per-mode 4,4,2,2)")
    g.add_argument("--blocks", type=_int(1), default=2, help="BT blocks N")
    g.add_argument("--tt-ranks", default="4", help="TT ranks (one int, or the d-1 inner ranks 4,4,4)")
    g.add_argument("--tr-ranks", default="4", help="TR ranks (one int, or the d bond ranks 4,3,2,3; the last closes the ring)")
    g.add_argument("--dropout", type=_float(0, 1, hi_open=True), default=0.0,
                   help="dropout on the input and the recurrent state, in [0, 1)")
    g.add_argument("--sweep-ranks", default=None, help="sensitivity study: train a BT model for every rank R in "
                   "this comma list (e.g. 2,4,8) and every N of --sweep-blocks; other --model kinds train once as "
                   "references")
    g.add_argument("--sweep-blocks", default=None, help="sensitivity study: block counts N (e.g. 1,2,4); with "
                   "--sweep-ranks (either alone varies one of R, N)")
    g.add_argument("--readout", default="last", choices=("last", "mean"), help="classify the last or the mean hidden state")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", help="'synthetic', or a clip folder in the UCF11 layout "
                   "(root/<class>/<clip>, clips as frame folders, .npy/.npz arrays or animated .gif)")
    g.add_argument("--frame", default=None, help=f"action task: frame size CxHxW (default "
                   f"{'x'.join(map(str, task.frame_shape))}; the paper: 3x120x160 = 57,600 inputs)")
    g.add_argument("--frames", type=_int(1), default=None, help=f"action task: frames per clip (sequence length T, "
                   f"default {task.frames})")
    g.add_argument("--classes", type=_int(2, len(ACTION_NAMES)), default=None,
                   help=f"synthetic task: number of motion classes, 2..{len(ACTION_NAMES)} (default {task.classes})")
    g.add_argument("--train-size", type=_int(1, MAX_CLIPS), default=None, help=f"synthetic task: training clips (default {task.train_size})")
    g.add_argument("--val-size", type=_int(1, MAX_CLIPS), default=None, help=f"synthetic task: validation clips (default {task.val_size})")
    g.add_argument("--noise", type=_float(0, 1), default=None, help=f"synthetic task: per-frame pixel noise std (default {task.noise})")
    g.add_argument("--val-fraction", type=_float(0, 1, lo_open=True, hi_open=True), default=None,
                   help="clip folder: share of each class's clips held out (default 0.25)")
    add_task_flags(p, _int, _float)
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="optimiser")
    g.add_argument("--lr", type=_float(0, lo_open=True), default=run["lr"], help=f"learning rate, at most {MAX_LR:g}")
    g.add_argument("--weight-decay", type=_float(0), default=0.0, help=f"weight decay, at most {MAX_LR:g}")
    g.add_argument("--batch", type=_int(1), default=None, help=f"global batch size (split across DDP processes; default "
                   f"{run['batch_size']}, generation 50)")
    g.add_argument("--epochs", type=_int(1), default=None, help=f"epochs (default {run['epochs']}, generation 3, "
                   "captioning 4)")
    g.add_argument("--max-steps", type=_int(1), default=None, help="stop each run after this many steps")
    g.add_argument("--eval-every", type=_int(0), default=0, help="also evaluate every N steps (0: per epoch only)")
    g.add_argument("--clip", type=_float(0), default=1.0, help="gradient-norm clipping (0 disables)")
    g.add_argument("--stall-fraction", type=_float(0, 1), default=run["stall_fraction"],
                   help="end a run as 'stalled' when the task's validation metric (accuracy, nELBO, BLEU-4) is still at "
                        "the level of a model that learnt nothing after this share of "
                        "its steps (0: never)")
    g.add_argument("--seed", type=_int(0), default=0, help="seed of the data, the init and the batch order")
    g = p.add_argument_group("system")
    g.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:K")
    g.add_argument("--threads", type=_int(1, cpu_count()), default=None,
                   help="CPU threads per process, at most this machine's cores (default: cores / processes)")
    g.add_argument("--out", default=None, help="folder for history.csv, history.json and summary.json (new, or "
                   "without earlier results unless --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    g.add_argument("--checkpoint", action="store_true", help="also save each model as <out>/<run>.pt")
    g.add_argument("--steps", action="store_true", help="print a JSON line per step too (default: per epoch)")
    g.add_argument("--sequential", action="store_true", help="train the models one after another (default: in "
                   "turns, a step each, on the same batches, so their curves grow together)")
    g = p.add_argument_group("format study")
    g.add_argument("--study", default=None, choices=STUDIES, help="formats: dense once, then every factorized "
                   "format (or --formats) at each of --budgets, ranks filling the budget (--sweep-blocks: BT's N grid); under "
                   "torchrun the runs are split across the ranks and rank 0 prints the summary")
    g.add_argument("--budgets", default=None, help="input-map parameter budgets, e.g. 1000,3000,10000")
    g.add_argument("--formats", default=None, help="factorized formats to compare, e.g. tt,bt; unset: all")
    g.add_argument("--compress-from", default=None, help="a dense model's checkpoint (.pt): also compress it at "
                   "each budget, evaluate it, and fine-tune it for --finetune-epochs")
    g.add_argument("--finetune-epochs", type=_int(0), default=None, help="epochs of fine-tuning after compression")
    return p


@dataclass
class _Plan:
    """The checked command: what to load and what to train."""

    args: argparse.Namespace
    task: Task
    frame: tuple[int, int, int]
    kinds: list[str]
    device: str
    world: int


def _flag(flag: str, fn, *args, **kw):
    """``fn(*args, **kw)`` with a ValueError's message prefixed by ``flag`` (unless it names it already)."""
    try:
        return fn(*args, **kw)
    except ValueError as exc:
        msg = str(exc)
        raise CliError(msg if msg.startswith("--") else f"{flag}: {msg}") from None  # already names its flag


def _check_combinations(args, synthetic: bool) -> None:
    if args.checkpoint and not args.out:
        raise CliError("--checkpoint: needs --out, the folder the <run>.pt files go in")
    if args.overwrite and not args.out:
        raise CliError("--overwrite: needs --out, the folder whose results it replaces")
    wrong = FOLDER_FLAGS if synthetic else SYNTHETIC_FLAGS
    for dest, flag in wrong.items():
        if getattr(args, dest) is not None:
            what = "a clip folder (--data PATH)" if synthetic else "the synthetic task (--data synthetic)"
            raise CliError(f"{flag}: applies to {what} only; drop it"
                           + ("" if synthetic else " (a clip folder's classes are its sub-folders)"))
    for flag, v in (("--lr", args.lr), ("--weight-decay", args.weight_decay)):
        if v > MAX_LR:
            raise CliError(f"{flag}: {v:g} is above {MAX_LR:g}, far past any value that trains (the weights would "
                           "overflow in the first step); typical: 1e-4 to 1e-2")
    if synthetic and args.frames < 3:
        raise CliError(f"--frames: synthetic clips need at least 3 frames to show a motion, got {args.frames}")


def _check_model(args, task: Task, kind: str, frame):
    """Build ``kind``'s model configuration once, naming the flag behind any error."""
    in_modes = _flag("--in-modes", parse_ints, args.in_modes, "--in-modes") if args.in_modes else None
    hidden_modes = _flag("--hidden-modes", parse_ints, args.hidden_modes, "--hidden-modes") if args.hidden_modes else None
    if in_modes is not None and prod(in_modes) != prod(frame):
        what = f"frames of {args.frame}" if args.task == "action" else f"{args.task} images of {'x'.join(map(str, frame))}"
        raise CliError(f"--in-modes: {args.in_modes} multiply to {prod(in_modes):,}, but {what} have "
                       f"{prod(frame):,} inputs; give modes whose product is {prod(frame):,}")
    if hidden_modes is not None and prod(hidden_modes) != args.hidden:
        raise CliError(f"--hidden-modes: {args.hidden_modes} multiply to {prod(hidden_modes):,}, not --hidden "
                       f"{args.hidden}; give modes whose product is the hidden size")
    for modes, flag in ((in_modes, "--in-modes"), (hidden_modes, "--hidden-modes")):
        if modes is not None and len(modes) != args.d:
            raise CliError(f"{flag}: {len(modes)} modes but --d {args.d}; give {args.d} modes or set --d {len(modes)}")
    if in_modes is None:
        _flag("--image-size" if args.image_size is not None else "--d", factorize, prod(frame), args.d)
    if hidden_modes is None:
        _flag("--hidden", factorize, args.hidden, args.d)
    flag = {"bt": "--rank/--blocks", "tt": "--tt-ranks", "tr": "--tr-ranks"}.get(kind, f"--model {kind}")
    return _flag(flag, task.model_config, kind, **_controls(args, in_modes, hidden_modes, len(ACTION_NAMES)))


def _controls(args, in_modes, hidden_modes, classes: int) -> dict:
    """The model controls shared by every task, from the flags."""
    return dict(cell=args.cell, hidden=args.hidden, d=args.d, rank=parse_rank(args.rank, "--rank"),
                blocks=args.blocks, tt_ranks=parse_rank(args.tt_ranks, "--tt-ranks"),
                tr_ranks=parse_rank(args.tr_ranks, "--tr-ranks"), classes=classes,
                dropout=args.dropout, readout=args.readout, in_modes=in_modes, hidden_modes=hidden_modes)


def _sweep_grid(args) -> tuple[list[int], list[int]] | None:
    """The (ranks, blocks) of the sweep flags, or None without a sweep."""
    if args.sweep_ranks is None and args.sweep_blocks is None:
        return None
    ranks = list(parse_ints(args.sweep_ranks, "--sweep-ranks")) if args.sweep_ranks else None
    blocks = list(parse_ints(args.sweep_blocks, "--sweep-blocks")) if args.sweep_blocks else [args.blocks]
    if ranks is None:
        rank = parse_rank(args.rank, "--rank")
        if not isinstance(rank, int):
            raise CliError("--sweep-blocks: with a per-mode --rank give --sweep-ranks too (one int per rank)")
        ranks = [rank]
    return ranks, blocks


def _check_sweep(args, task: Task, kinds, frame) -> None:
    """Every (R, N) of the sweep must fit the modes; the sweep needs a BT model."""
    grid = _flag("--sweep-ranks", _sweep_grid, args)
    if grid is None:
        return
    if "bt" not in kinds:
        raise CliError("--sweep-ranks/--sweep-blocks: vary a BT model's R and N; add bt to --model")
    for r in grid[0]:
        for n in grid[1]:
            saved = args.rank, args.blocks
            args.rank, args.blocks = str(r), n
            try:
                _check_model(args, task, "bt", frame)
            except CliError as exc:
                raise CliError(f"--sweep-ranks/--sweep-blocks: (R={r}, N={n}) does not fit: {exc}") from None
            finally:
                args.rank, args.blocks = saved


#: The flags that set sizes, in the order a too-large estimate is blamed on them, with their defaults.
SIZE_FLAGS = (("frame", "--frame"), ("frames", "--frames"), ("hidden", "--hidden"), ("batch", "--batch"),
              ("train_size", "--train-size"), ("val_size", "--val-size"))


def _size_need(args, kinds, sizes: dict) -> tuple[int, int]:
    """``(bytes held at once, bytes of the largest model's weights)`` for the flag values in ``sizes`` (estimated)."""
    frame, frames = sizes["frame"], sizes["frames"]
    if args.task == "action":
        task = make_task(args.task, data_source=args.data, frame_shape=frame, frames=frames,
                         train_size=sizes["train_size"], val_size=sizes["val_size"])
    else:
        task = make_cli_task(args, frame, train_size=sizes["train_size"], val_size=sizes["val_size"])
    batch = sizes["batch"]
    if args.data == "synthetic":  # a batch is at most the training split
        batch = min(batch, train_count(task, sizes["train_size"]))
    data = sum(task.data_bytes().values())
    step = weights = 0
    for kind in dict.fromkeys(kinds):
        cfg = task.model_config(kind, **_controls(args, None, None, len(ACTION_NAMES)) | {"hidden": sizes["hidden"]})
        mem = task.step_bytes(cfg, max(batch, 64), args.optimizer)
        if mem is None:  # the classifier's estimate, and the clips of a training and an evaluation batch
            mem = estimate_memory(cfg, max(batch, 64), frames, optimizer=args.optimizer)
            data = sum(task.data_bytes().values()) + 2 * max(batch, 64) * 4 * frames * prod(frame)
        step, weights = max(step, mem["training"]), max(weights, mem["params"])
    return data + step, weights


def _check_sizes(args, kinds, frame) -> None:
    """Refuse, naming the flag to lower, a run whose data and training step would not fit in memory.

    Nothing is allocated: the bytes are estimated from the sizes (the data held at once, one training
    step with its optimiser state, one layer's weights against the 2 GiB limit of a format).
    """
    sizes = {"frame": frame, "frames": args.frames, "hidden": args.hidden, "batch": args.batch,
             "train_size": args.train_size, "val_size": args.val_size}
    budget = available_memory("cpu") // 2

    def fits(values) -> bool:
        try:
            need, weights = _size_need(args, kinds, values)
        except ValueError:  # the defaults of one flag may not fit the others' modes: not the culprit
            return False
        return need <= budget and weights <= DEFAULT_MAX_BYTES

    if fits(sizes):
        return
    need, weights = _size_need(args, kinds, sizes)
    defaults = {"frame": parse_frame_shape(SyntheticActions().frame_shape), "frames": SyntheticActions().frames,
                "train_size": None, "val_size": None, **{k: v for k, v in RUN_DEFAULTS.items() if k != "epochs"},
                **{k: v for k, v in make_task(args.task).defaults.items() if k != "epochs"}}
    if args.task != "action":
        defaults["frame"] = frame
    culprit = next((flag for key, flag in SIZE_FLAGS if sizes[key] != defaults[key]
                    and fits({**sizes, key: defaults[key]})), None)
    named = culprit or "/".join(flag for key, flag in SIZE_FLAGS if sizes[key] != defaults[key]) or "--model"
    value = {"--frame": args.frame}.get(named, getattr(args, named.removeprefix("--").replace("-", "_"), ""))
    what = f"{named} {value}: " if culprit else f"{named}: "
    if weights > DEFAULT_MAX_BYTES:
        raise CliError(f"{what}the model's weights would need about {format_bytes(weights)}, above the "
                       f"{format_bytes(DEFAULT_MAX_BYTES)} limit on a layer's parameters; lower it, or use a TT/BT "
                       "input map")
    raise CliError(f"{what}the data held at once and one training step would need about {format_bytes(need)}, more "
                   f"than half of the {format_bytes(2 * budget)} of memory free; lower it")


def _check(argv) -> _Plan:
    """Parse and check every flag; raise :class:`CliError` for the first bad one. Loads nothing."""
    args = _parser().parse_args(argv)
    if args.data.lower().endswith(".npz"):  # the user's sequences: X (n, T, D), y (n,)
        if args.task not in ("action", "sequences"):
            raise CliError(f"--data: a .npz of sequences trains the sequences task, not --task {args.task}")
        args.task = "sequences"
    task_defaults(args, CliError)
    check_task_flags(args, CliError)
    synthetic = args.data == "synthetic"
    _check_combinations(args, synthetic)
    frame = _flag("--frame", parse_frame_shape, args.frame)
    task = _task(args, frame)
    frame = task.frame_shape
    kinds = [k.strip().lower() for k in args.model.split(",") if k.strip()]
    if not kinds:
        raise CliError(f"--model: give at least one of {', '.join(KINDS)} (a comma list compares them)")
    for k in kinds:
        _flag("--model", check_choice, k, KINDS, "--model")
    parse_rank(args.rank, "--rank"), parse_rank(args.tt_ranks, "--tt-ranks"), parse_rank(args.tr_ranks, "--tr-ranks")
    for k in dict.fromkeys(kinds):
        _check_model(args, task, k, frame)
    _check_sweep(args, task, kinds, frame)
    _check_sizes(args, kinds, frame)
    device = str(_flag("--device", check_device, args.device, "--device"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and synthetic and not args.study and min(args.batch, train_count(task, args.train_size)) % world:
        raise CliError(f"--batch: {args.batch} must be divisible by the {world} processes of torchrun")
    _flag("--study", check_study_flags, args, task, _study_controls(args, len(ACTION_NAMES)))
    if not synthetic and task.name != "sequences":
        root = Path(args.data).expanduser()
        if not root.is_dir():
            raise CliError(f"--data: {args.data} is not a folder; give 'synthetic' or a clip folder "
                           "root/<class>/<clip>")
    if args.out:
        _flag("--out", check_out_dir, args.out, overwrite=args.overwrite, field="--out")
    return _Plan(args, task, frame, kinds, device, world)


def _task(args, frame) -> Task:
    """The task of ``--task`` with its data options from the flags (an option's error names its flag)."""
    try:
        return make_cli_task(args, frame)
    except ValueError as exc:
        raise CliError(option_error(str(exc))) from None


def _data(plan: _Plan):
    """``(train_set, val_set, classes)`` of the checked command."""
    train_set, val_set = _flag("--data", plan.task.data, plan.args.seed)
    return train_set, val_set, getattr(train_set, "classes", None)


def _configs(plan: _Plan, classes: int, device: str) -> list[TrainConfig]:
    a = plan.args
    in_modes = parse_ints(a.in_modes, "--in-modes") if a.in_modes else None
    hidden_modes = parse_ints(a.hidden_modes, "--hidden-modes") if a.hidden_modes else None
    runs = [TrainConfig(plan.task.model_config(kind, **_controls(a, in_modes, hidden_modes, classes)),
                        optimizer=a.optimizer, lr=a.lr, weight_decay=a.weight_decay, batch_size=a.batch,
                        epochs=a.epochs, seed=a.seed, device=device, grad_clip=a.clip if a.clip > 0 else None,
                        eval_every=a.eval_every, max_steps=a.max_steps, stall_fraction=a.stall_fraction or None,
                        task=plan.task.name)
            for kind in plan.kinds]
    grid = _sweep_grid(a)
    if grid is None:
        return runs
    out = []
    for kind, run in zip(plan.kinds, runs):
        out += sweep_configs(run, *grid) if kind == "bt" else [run]
    return out


def _say_error(exc: BaseException, rank: int) -> None:
    if rank == 0:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)


def _start_processes(plan: _Plan):
    """Join torchrun's process group (when there is one) and set the CPU threads; ``(dist, rank, device)``."""
    a = plan.args
    want_cuda = plan.device.startswith("cuda")
    distributed = plan.world > 1
    if distributed and not tdist.is_initialized():
        if want_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        tdist.init_process_group("nccl" if want_cuda else "gloo")
    rank = tdist.get_rank() if distributed else 0
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", plan.world))
    if not want_cuda:  # the CLI owns its process: set torch's thread count once, before any run
        set_cpu_threads(a.threads, share=local_world if distributed else 1)
        pin_contraction_rates()  # schemes from the shapes, not from timings taken under this machine's load
    device = a.device
    if distributed and want_cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return (tdist if distributed else None), rank, device


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; 0 when every run finished (done or stalled), 1 when one stopped or diverged, 2 for a bad command."""
    try:
        plan = _check(argv)
    except ValueError as exc:  # CliError, or a library check (parse_rank, check_device) naming the flag
        _say_error(exc, int(os.environ.get("RANK", "0")))
        return 2
    claim: OutDir | None = None
    if plan.args.out and int(os.environ.get("RANK", "0")) == 0:
        try:  # before any work: the folder is made, written to and locked against a second run
            claim = claim_out_dir(plan.args.out, overwrite=plan.args.overwrite, field="--out")
        except ValueError as exc:
            _say_error(exc, 0)
            return 2
    try:
        if plan.args.study:
            return _study(plan)
        return _run(plan)
    finally:
        if claim is not None:
            claim.release()


def _study_controls(args, classes: int) -> dict:
    """The model controls of a study's every run (its modes included), from the flags."""
    in_modes = parse_ints(args.in_modes, "--in-modes") if args.in_modes else None
    hidden_modes = parse_ints(args.hidden_modes, "--hidden-modes") if args.hidden_modes else None
    return _controls(args, in_modes, hidden_modes, classes)


def _study(plan: _Plan) -> int:
    """The format study of the checked command (:mod:`~btcore.train.study_cli`)."""
    a = plan.args
    set_cpu_threads(a.threads, share=int(os.environ.get("LOCAL_WORLD_SIZE", plan.world)))
    pin_contraction_rates()
    keep_memory()
    rank = int(os.environ.get("RANK", "0"))

    def base(classes):
        dense = dataclasses.replace(plan, kinds=["dense"], args=argparse.Namespace(**{**vars(a), "sweep_ranks": None,
                                                                                      "sweep_blocks": None}))
        device = plan.device  # under torchrun each rank trains its share on its own GPU
        if plan.world > 1 and device in ("cuda", "auto") and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
        return _configs(dense, classes, device)[0], _study_controls(a, classes)

    try:
        return study_main(a, plan.task, base, lambda obj: rank == 0 and print(json_line(obj), flush=True))
    except (ValueError, OSError) as exc:
        _say_error(exc, rank)
        return 2


def _run(plan: _Plan) -> int:
    """Train the checked command's runs, print their lines, write the results; the exit status."""
    dist, rank, device = _start_processes(plan)
    keep_memory()  # a process of its own: large freed host intermediates stay mapped between steps
    a = plan.args

    def out(obj):
        if rank == 0:
            print(json_line(obj), flush=True)

    try:
        train_set, val_set, classes = _data(plan)
        configs = _configs(plan, classes, device)
    except (ValueError, OSError) as exc:
        _say_error(exc, rank)
        if dist is not None:
            dist.destroy_process_group()
        return 2

    def cb(ev):
        kind = ev["event"]
        if kind in ("eval", "end") or (a.steps and kind == "step"):
            out(ev)
        elif kind == "start":
            out({k: v for k, v in ev.items() if k != "config"})

    try:
        results = compare(configs, train_set, val_set, callback=cb, interleave=not a.sequential, task=plan.task)
    except ValueError as exc:  # the trainer's checks of the data against the model, before the first step
        _say_error(exc, rank)
        if dist is not None:
            dist.destroy_process_group()
        return 2
    rows = summary(results)
    if dist is not None:
        sums = [None] * plan.world
        dist.all_gather_object(sums, [r.final["checksum"] for r in results])
        for i, row in enumerate(rows):
            row["rank_checksums"] = [s[i] for s in sums]
    out({"task": plan.task.name, "summary": rows, "world_size": plan.world, "data": a.data})
    status = 0 if all(r.status in ("done", "stalled") for r in results) else 1  # stalled: finished, learnt nothing
    if a.out and rank == 0:
        try:
            save_results(results, a.out, checkpoints=a.checkpoint, task=plan.task, val_data=val_set)
        except OSError as exc:
            _say_error(f"--out {a.out}: could not write the results ({exc})", rank)
            status = 1
    if dist is not None:
        # DDP wrappers hold the process group's communication threads: free them (and everything that
        # refers to them) before the group goes, or the process can abort at exit ("terminate called")
        del results, rows
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return status
