"""The format study on the command line: ``python -m btcore.train --study formats --budgets 1000,3000,10000``.

:func:`check_study_flags` checks the study's flags before any work (the planned jobs included);
:func:`study_main` runs the study and prints its lines. Under ``torchrun --nproc_per_node=K`` job
``i`` runs on rank ``i % K`` (each rank trains its share alone, in one process, not with
DistributedDataParallel); the process group (gloo) is joined only afterwards, to gather the rows
on rank 0, which prints one summary identical (timings aside) to a single-process study.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Callable

import torch.distributed as tdist

from ..shapes import parse_ints
from ..tasks import Task
from .io import load_checkpoint, write_new_file
from .json_lines import json_line
from .study import StudyResult, estimate_study, merge_study, plan_study, run_study, study_formats

__all__ = ["check_study_flags", "check_dense_checkpoint", "study_main", "STUDIES"]

#: What ``--study`` compares.
STUDIES = ("formats",)


def _formats(args) -> list[str]:
    if args.formats is None:
        return list(study_formats())
    out = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in out if f not in study_formats()]
    if not out or bad:
        raise ValueError(f"--formats: give a comma list of {', '.join(study_formats())}, got {args.formats!r}")
    return list(dict.fromkeys(out))


def _budgets(args) -> list[int]:
    if args.budgets is None:
        raise ValueError("--budgets: the study needs input-map parameter budgets, e.g. --budgets 1000,3000,10000")
    try:
        budgets = [int(t) for t in args.budgets.split(",")]
    except ValueError:
        budgets = []
    if not budgets or any(b < 1 for b in budgets):
        raise ValueError(f"--budgets: give a comma list of positive whole numbers of parameters (1000,3000,10000), "
                         f"got {args.budgets!r}")
    return budgets


def _bt_blocks(args):
    return list(parse_ints(args.sweep_blocks, "--sweep-blocks")) if args.sweep_blocks else None


def check_study_flags(args, task: Task, controls: dict) -> None:
    """Raise ``ValueError`` (starting with the flag) for a study flag that is wrong, before any work.

    Without ``--study`` the study's flags are refused; with it, the budgets, formats, the dense
    checkpoint and the planned jobs (every format's ranks for every budget) are checked.
    """
    study_only = {"budgets": "--budgets", "formats": "--formats", "compress_from": "--compress-from",
                  "finetune_epochs": "--finetune-epochs"}
    if args.study is None:
        for dest, flag in study_only.items():
            if getattr(args, dest) is not None:
                raise ValueError(f"{flag}: applies to a format study only; add --study formats")
        return
    if args.study not in STUDIES:
        raise ValueError(f"--study: one of {', '.join(STUDIES)}, got {args.study!r}")
    if args.sweep_ranks is not None:
        raise ValueError("--sweep-ranks: a format study chooses the ranks from --budgets; drop it "
                         "(--sweep-blocks gives the BT block counts N of the R x N grid)")
    if args.finetune_epochs is not None and args.compress_from is None:
        raise ValueError("--finetune-epochs: fine-tunes the compressed dense model; add --compress-from CKPT")
    if args.compress_from is not None and not Path(args.compress_from).expanduser().is_file():
        raise ValueError(f"--compress-from: {args.compress_from} is not a file; give a dense model's checkpoint "
                         "(.pt, written with --checkpoint)")
    if args.compress_from is not None:
        check_dense_checkpoint(args.compress_from, task, controls)
    budgets = _budgets(args)
    jobs, _ = plan_study(task, budgets, _formats(args), controls=controls, bt_blocks=_bt_blocks(args),
                         compress_from=args.compress_from is not None)
    if len(jobs) == 1:
        raise ValueError(f"--budgets: no factorized format fits within {args.budgets} input-map parameters; "
                         "raise the budgets")


def check_dense_checkpoint(path, task: Task, controls: dict, *, field: str = "--compress-from") -> None:
    """Raise ``ValueError`` (starting with ``field``) unless the checkpoint at ``path`` holds a dense model of
    ``task`` with the modes and cell that ``controls`` give the study's models."""
    try:
        _, cfg, _ = load_checkpoint(Path(path).expanduser())
    except (ValueError, OSError) as exc:
        raise ValueError(f"{field}: {exc}") from None
    want = task.model_config("dense", **controls)
    if cfg.task != task.name or cfg.model.kind != "dense":
        raise ValueError(f"{field}: {path} holds a {cfg.model.kind} model of the {cfg.task} task; give a "
                         f"dense model of the {task.name} task")
    for name in ("in_modes", "hidden_modes", "cell"):
        if getattr(cfg.model, name) != getattr(want, name):
            raise ValueError(f"{field}: the checkpoint's {name} is {getattr(cfg.model, name)}, the study's "
                             f"{getattr(want, name)}; train the dense model with the same settings")


def _gather(result: StudyResult, world: int, rank: int) -> tuple[StudyResult | None, bytes | None]:
    """Rank 0's merged study and the recommended model's weights (from whichever rank trained it)."""
    for model in result.models.values():
        model.cpu()  # pickled for rank 0, which may not have this rank's device
    tdist.init_process_group("gloo", timeout=datetime.timedelta(hours=6))
    parts = [None] * world if rank == 0 else None
    tdist.gather_object(result, parts, dst=0)  # rows and model weights travel pickled, within the job
    merged = merge_study(parts) if rank == 0 else None
    blob = merged.export_state_dict() if merged is not None and merged.recommended is not None else None
    tdist.barrier()
    tdist.destroy_process_group()
    return merged, blob


def study_main(args, task: Task, make_base: Callable[[int], tuple], out: Callable[[dict], None]) -> int:
    """Run the checked study of ``args``; ``make_base(classes) -> (TrainConfig, controls)``; lines go to ``out``.

    Returns 0 when every job finished (done or stalled), 1 when the study stopped or a run diverged.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    train_set, val_set = task.data(args.seed)
    base, controls = make_base(train_set.classes)
    budgets = _budgets(args)
    jobs, notes = plan_study(task, budgets, _formats(args), base=base, controls=controls,
                             bt_blocks=_bt_blocks(args), compress_from=args.compress_from is not None)
    for note in notes:
        out({"task": task.name, "event": "study_note", "note": note})
    mine = [j for j in jobs if j.index % world == rank]
    est = estimate_study(task, mine, train_set, val_set)
    out({"task": task.name, "event": "study_start", "jobs": len(jobs), "jobs_here": len(mine), "estimated_s": est,
         "world_size": world})

    def progress(done, total):
        out({"task": task.name, "event": "study_progress", "done": done, "total": total})

    result = run_study(task, jobs, budgets, train_data=train_set, val_data=val_set, compress_from=args.compress_from,
                       finetune_epochs=args.finetune_epochs or 0, progress=progress, share=(rank, world),
                       estimated_s=est)
    blob = None
    if world > 1:
        result, blob = _gather(result, world, rank)
        if rank != 0:
            return 0
    elif result.recommended is not None:
        blob = result.export_state_dict()
    rows = [r.to_dict() for r in result.rows]
    out({"task": task.name, "study": args.study, "metric": result.metric, "summary": rows,
         "recommended": result.recommended.run if result.recommended else None, "stopped": result.stopped,
         "world_size": world, "data": args.data if isinstance(args.data, str) else "upload"})
    if args.out:  # the results always; the recommended model only where the measurements tell one apart
        try:
            folder = Path(args.out)
            write_new_file(folder / "study.json", json.dumps(result.to_dict(), indent=1, default=str).encode())
            if blob is not None:
                write_new_file(folder / "recommended.pt", blob)
                write_new_file(folder / "recommended.py", result.export_code(weights_file="recommended.pt").encode())
        except (OSError, ValueError) as exc:
            print(f"error: --out {args.out}: could not write the study ({exc})", file=sys.stderr)
            return 1
    finished = all(r.status in ("done", "stalled") for r in result.rows)
    return 0 if finished and not result.stopped else 1
