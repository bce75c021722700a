"""Histories (rows, CSV, JSON files) and checkpoints (save, bytes, a checked load)."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..tasks import Task
from .config import TrainConfig
from .json_lines import json_default
from .run import TrainResult, seeded_model

__all__ = ["HISTORY_COLUMNS", "CHECKPOINT_FORMAT", "RESULT_FILES", "RESULT_PATTERNS", "history_columns", "LOCK_FILE", "history_rows", "histories_csv",
           "summary", "save_results", "check_out_dir", "claim_out_dir", "OutDir", "write_new_file", "save_checkpoint",
           "checkpoint_bytes", "load_checkpoint"]

#: The ``format`` entry of every checkpoint file.
CHECKPOINT_FORMAT = "btlab-checkpoint-1"
#: The files :func:`save_results` writes (besides one ``<run>.pt`` per run with checkpoints).
RESULT_FILES = ("history.csv", "history.json", "summary.json")

#: Files of :func:`save_results` named after their run (sample grids, captions): earlier ones count as results.
RESULT_PATTERNS = ("samples_*.png", "captions_*.json")

#: The file :func:`claim_out_dir` holds in a results folder while a run writes there.
LOCK_FILE = ".btlab-run.lock"

#: Columns of :func:`histories_csv`, in order.
HISTORY_COLUMNS = ("run", "event", "step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "step_time",
                   "examples_per_s", "elapsed", "params")


def _events(results_or_events) -> list[dict]:
    events = []
    for item in results_or_events:
        if isinstance(item, TrainResult):
            events.extend(item.history)
        elif isinstance(item, dict) and item.get("event") in ("step", "eval"):
            events.append(item)
    return events


def history_columns(results_or_events) -> tuple[str, ...]:
    """:data:`HISTORY_COLUMNS`, then the other ``train_*`` / ``val_*`` metrics the events carry (a task's own, e.g. ``val_nelbo``)."""
    extra: dict[str, None] = {}
    for ev in _events(results_or_events):
        for k in ev:
            if k.startswith(("train_", "val_")) and k not in HISTORY_COLUMNS:
                extra[k] = None
    return HISTORY_COLUMNS + tuple(extra)


def history_rows(results_or_events) -> list[dict]:
    """Flat rows (:func:`history_columns`) from a list of :class:`TrainResult` or of step/eval events."""
    columns = history_columns(results_or_events)
    return [{c: ev.get(c) for c in columns} for ev in _events(results_or_events)]


def histories_csv(results_or_events) -> str:
    """The histories as CSV text (one row per step and per evaluation, all runs)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history_columns(results_or_events)))
    w.writeheader()
    for row in history_rows(results_or_events):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower() or "run"


def save_results(results: Sequence[TrainResult], out_dir, *, checkpoints: bool = False, task: Task | None = None,
                 val_data=None) -> dict[str, str]:
    """Write ``history.csv``, ``history.json``, ``summary.json`` (and ``<run>.pt`` checkpoints) into ``out_dir``.

    With ``task`` and its ``val_data``, each trained model's :meth:`~btcore.tasks.Task.result_files`
    too, as ``<stem>_<run>.<ext>`` (generation: ``samples_<run>.png``; captioning:
    ``captions_<run>.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": str(out / "history.csv"), "json": str(out / "history.json"), "summary": str(out / "summary.json")}
    write_new_file(out / "history.csv", histories_csv(results).encode())
    write_new_file(out / "history.json", json.dumps([r.to_dict() for r in results], default=json_default).encode())
    write_new_file(out / "summary.json", json.dumps(summary(results), default=json_default, indent=1).encode())
    if checkpoints:
        for r in results:
            if r.model is not None:
                p = out / f"{_slug(r.name)}.pt"
                write_new_file(p, checkpoint_bytes(r.model, r.config, r.history))
                paths[r.name] = str(p)
    if task is not None and val_data is not None:
        for r in results:
            if r.model is None or r.status == "diverged":
                continue
            for name, data in task.result_files(r.model, val_data).items():
                stem, _, ext = name.rpartition(".")
                p = out / f"{stem}_{_slug(r.name)}.{ext}"
                write_new_file(p, data)
                paths[f"{r.name}:{name}"] = str(p)
    return paths


def write_new_file(path, data: bytes) -> None:
    """Write ``data`` to ``path`` without following a link there (a link, even a dangling one, is refused).

    Raises ``OSError`` (``ELOOP``) when ``path`` is a symbolic link, so a link planted in a results
    folder cannot redirect a write to a file elsewhere.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def check_out_dir(out_dir, *, overwrite: bool = False, field: str = "out_dir") -> Path:
    """Check, before any training, that :func:`save_results` can write into ``out_dir``; return it as a Path.

    Raises ``ValueError`` naming ``field`` when ``out_dir`` is an existing file, lies under a file,
    is (or would be made in) a folder this process cannot write, or already holds results
    (``history.csv``, ``history.json``, ``summary.json``) and ``overwrite`` is false.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{field} {out_dir}: is an existing file, not a folder; give a folder to write the results in")
    probe = out
    while not probe.exists() and probe != probe.parent:  # the nearest existing folder, where mkdir starts
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{field} {out_dir}: {probe} is a file, so no folder can be made under it; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{field} {out_dir}: {probe} is not writable by this user; choose a folder you can write to")
    if out.is_dir():
        named = list(RESULT_FILES) + sorted({p.name for pat in RESULT_PATTERNS for p in out.glob(pat)})
        links = [f for f in named if (out / f).is_symlink()]
        if links:
            raise ValueError(f"{field} {out_dir}: {links[0]} there is a symbolic link; results are never written "
                             "through links (it could point outside the folder): remove it or choose another folder")
        clash = [f for f in named if (out / f).is_dir()]
        if clash:
            raise ValueError(f"{field} {out_dir}: {clash[0]} there is a folder, so the results cannot be written; "
                             "choose another folder")
        old = [f for f in named if (out / f).exists()]
        if old and not overwrite:
            raise ValueError(f"{field} {out_dir}: already holds results ({', '.join(old)}); choose a new folder, or replace "
                             "them with overwrite=True (--overwrite on the command line)")
    return out


class OutDir:
    """A results folder taken by :func:`claim_out_dir`; :meth:`release` (or leaving the ``with``) frees it."""

    def __init__(self, path: Path, lock: Path):
        self.path, self.lock = path, lock

    def release(self) -> None:
        """Remove the lock file (once)."""
        try:
            os.unlink(self.lock)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "OutDir":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_out_dir(out_dir, *, overwrite: bool = False, field: str = "out_dir") -> OutDir:
    """Take ``out_dir`` for one run before any work: make it, prove it writable, lock it against other runs.

    After :func:`check_out_dir`, the folder is made (a new one with ``os.mkdir``, which only one
    process can do) and the lock file :data:`LOCK_FILE` is created in it with ``O_EXCL`` and without
    following links: creating it is the write probe, and a second run started with the same folder
    finds it and is refused. Raises ``ValueError`` naming ``field`` when the folder cannot be made or
    written, or another run holds it.
    """
    out = check_out_dir(out_dir, overwrite=overwrite, field=field)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(out)
        except FileExistsError:
            if not out.is_dir():
                raise ValueError(f"{field} {out_dir}: is an existing file, not a folder; give a folder to write the "
                                 "results in") from None
    except OSError as exc:
        raise ValueError(f"{field} {out_dir}: cannot make the folder ({exc.strerror or exc}); choose a folder you "
                         "can write to") from None
    lock = out / LOCK_FILE
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        raise ValueError(f"{field} {out_dir}: another run is writing its results there ({LOCK_FILE} exists); "
                         f"choose another folder, or delete {lock} if no run is using it") from None
    except OSError as exc:
        raise ValueError(f"{field} {out_dir}: the folder cannot be written ({exc.strerror or exc}); choose a folder "
                         "you can write to") from None
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        os.close(fd)
        OutDir(out, lock).release()
        raise ValueError(f"{field} {out_dir}: writing there failed ({exc.strerror or exc}); choose another "
                         "folder") from None
    os.close(fd)
    # a run that came between check_out_dir and the lock may have left results: check again, holding it
    try:
        check_out_dir(out, overwrite=overwrite, field=field)
    except ValueError:
        OutDir(out, lock).release()
        raise
    return OutDir(out, lock)


def summary(results: Sequence[TrainResult]) -> list[dict]:
    """One row per run: its name, format, status, reason, where it stopped (numbers), what its evaluations
    showed (``verdict``) and final metrics."""
    rows = []
    for r in results:
        m = r.config.model
        bt = m.kind == "bt"
        rows.append({"run": r.name, "kind": m.kind, "cell": m.cell, "status": r.status, "reason": r.reason,
                     "stop_step": r.stop_step, "stop_loss": r.stop_loss, "stop_check": r.stop_check, "verdict": r.verdict,
                     "device": r.device,
                     "rank": (m.rank if isinstance(m.rank, int) else list(m.rank)) if bt else None,
                     "blocks": m.blocks if bt else None, **r.final})
    return rows


def _checkpoint(model: nn.Module, config: TrainConfig, history: list[dict] | None) -> dict:
    model = getattr(model, "module", model)
    return {"format": CHECKPOINT_FORMAT, "train_config": config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": history or []}


def save_checkpoint(path, model: nn.Module, config: TrainConfig, history: list[dict] | None = None) -> Path:
    """Save the model's weights with its configuration (and optionally its history)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_checkpoint(model, config, history), path)
    return path


def checkpoint_bytes(model: nn.Module, config: TrainConfig, history: list[dict] | None = None) -> bytes:
    """The bytes of :func:`save_checkpoint`'s file, made in memory (e.g. for a download)."""
    buf = io.BytesIO()
    torch.save(_checkpoint(model, config, history), buf)
    return buf.getvalue()


def _read_checkpoint(src, name: str, device) -> dict:
    """The checkpoint's dict, read with ``weights_only=True``; every failure as a ValueError naming the file."""
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a foreign file it then refuses
            warnings.simplefilter("ignore", UserWarning)
            blob = torch.load(src, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except EOFError:
        raise ValueError(f"checkpoint {name}: the file is empty or cut short; save it again") from None
    except pickle.UnpicklingError as exc:
        # torch's weights-only unpickler wraps what it refused in advice lines; keep the line that says what
        text = str(exc)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        said = [ln.removeprefix("WeightsUnpickler error:").strip() for ln in lines[1:]
                if not ln.startswith(("Please file an issue", "Check the documentation"))]
        detail = next((ln for ln in said if ln), lines[0] if lines else type(exc).__name__)
        if "GLOBAL" in text.upper():  # a class or function to import: code
            raise ValueError(f"checkpoint {name}: refused, it holds objects other than tensors and plain data "
                             f"({detail}); a BT Lab checkpoint never does, so the file was made elsewhere or "
                             "tampered with") from None
        raise ValueError(f"checkpoint {name}: not a torch file, or a damaged one ({detail})") from None
    except (RuntimeError, OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        # torch reports a truncated or foreign zip archive as a RuntimeError from its stream reader
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {name}: unreadable, truncated or not a torch file ({first})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {name}: not a BT Lab checkpoint (no format {CHECKPOINT_FORMAT!r} entry); "
                         "make one with btcore.train.save_checkpoint")
    for key, kind in (("train_config", dict), ("state_dict", dict)):
        if not isinstance(blob.get(key), kind):
            raise ValueError(f"checkpoint {name}: the {key!r} entry is missing or not a {kind.__name__}")
    if not isinstance(blob.get("history", []), list):
        raise ValueError(f"checkpoint {name}: the 'history' entry is not a list")
    return blob


def _check_state_dict(name: str, got: dict, want: dict) -> None:
    """Raise a ValueError naming the first few missing, unexpected or misshapen weights."""
    def few(keys) -> str:
        keys = sorted(keys)
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    missing, extra = set(want) - set(got), set(got) - set(want)
    if missing or extra:
        parts = ([f"missing {few(missing)}"] if missing else []) + ([f"unexpected {few(extra)}"] if extra else [])
        raise ValueError(f"checkpoint {name}: the weights do not match its configuration ({'; '.join(parts)})")
    for k, w in want.items():
        v = got[k]
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"checkpoint {name}: weight {k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(w.shape):
            raise ValueError(f"checkpoint {name}: weight {k} has shape {tuple(v.shape)}, its configuration needs "
                             f"{tuple(w.shape)}")
        if not v.dtype.is_floating_point and w.dtype.is_floating_point:
            raise ValueError(f"checkpoint {name}: weight {k} has dtype {v.dtype}, expected a floating-point tensor")
        if v.dtype.is_floating_point and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise ValueError(f"checkpoint {name}: weight {k} holds {bad:,} non-finite value(s) (NaN or inf); a model "
                             "with such weights computes nothing useful: save it again from a run that did not "
                             "diverge")


def load_checkpoint(path, device="cpu") -> tuple[nn.Module, TrainConfig, list[dict]]:
    """``(model, train_config, history)`` from :func:`save_checkpoint`'s file (a path or a binary file object).

    Read with ``torch.load(..., weights_only=True)``, so no code in the file runs.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming the file and what is wrong, for an empty, truncated or foreign file, one holding
        objects other than tensors and plain data, a configuration that is missing or invalid, and
        weights missing, unexpected, of the wrong shape for that configuration, or not finite.
    """
    src = path if hasattr(path, "read") else Path(path)
    name = str(getattr(path, "name", None) or "the uploaded file") if hasattr(path, "read") else str(path)
    if isinstance(src, Path) and src.is_dir():
        raise ValueError(f"checkpoint {name}: is a folder; give the .pt file")
    blob = _read_checkpoint(src, name, device)
    try:
        cfg = TrainConfig.from_dict(blob["train_config"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"checkpoint {name}: its training configuration is invalid ({exc})") from None
    try:
        model = seeded_model(cfg, "cpu")
    except ValueError as exc:  # pragma: no cover - TrainConfig validated the model configuration
        raise ValueError(f"checkpoint {name}: its model configuration is invalid ({exc})") from None
    _check_state_dict(name, blob["state_dict"], model.state_dict())
    model.load_state_dict(blob["state_dict"])
    return model.to(device), cfg, blob.get("history", [])
