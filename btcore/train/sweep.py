"""Sensitivity study: BT models over a grid of Tucker ranks R and block counts N, with references.

:func:`sweep_configs` turns one BT run into one run per (R, N) (a pair whose rank does not fit the
modes is refused with the pair named); :func:`sweep_rows` / :func:`sweep_csv` make the grid's
table from the results (or from end events), one row per run with ``rank`` and ``blocks``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Iterable, Sequence

from ..tasks import Task, make_task
from .config import TrainConfig
from .run import TrainResult

__all__ = ["sweep_configs", "sweep_rows", "sweep_csv", "sweep_columns", "SWEEP_COLUMNS"]


def sweep_columns(task: Task | str = "action") -> tuple[str, ...]:
    """The grid's columns for ``task``: the run, its R and N, its size, status, the task's metric and loss, steps, seconds."""
    metric = make_task(task).metric
    return ("run", "kind", "rank", "blocks", "params", "input_map_params", "status", metric, "val_loss", "steps",
            "run_s")


#: The action task's grid columns (its metric is ``val_acc``).
SWEEP_COLUMNS = sweep_columns("action")


def sweep_configs(base: TrainConfig, ranks: Iterable[int], blocks: Iterable[int]) -> list[TrainConfig]:
    """One copy of the BT run ``base`` per (R, N) in ``ranks`` x ``blocks`` (ranks outer), named by the pair."""
    if base.model.kind != "bt":
        raise ValueError(f"a sweep varies a BT model's rank and blocks; got a {base.model.kind!r} model")
    ranks, blocks = [int(r) for r in ranks], [int(n) for n in blocks]
    if not ranks or not blocks:
        raise ValueError("sweep: give at least one rank and one block count")
    out = []
    for r in ranks:
        for n in blocks:
            try:
                model = dataclasses.replace(base.model, rank=r, blocks=n)
            except ValueError as exc:
                raise ValueError(f"sweep (R={r}, N={n}): {exc}") from None
            out.append(dataclasses.replace(base, model=model, name=model.describe()))
    return out


def sweep_rows(results: Sequence[TrainResult | dict], task: Task | str = "action") -> list[dict]:
    """One row of :func:`sweep_columns` per run, from :class:`TrainResult` s or the trainer's end events."""
    columns = sweep_columns(task)
    rows = []
    for r in results:
        if isinstance(r, TrainResult):
            ev = {"run": r.name, "status": r.status, **r.final, "input_map_params": r.config.model.input_map_params()}
        else:
            ev = r
        rows.append({k: ev.get(k) for k in columns})
    return rows


def sweep_csv(rows: Sequence[dict], task: Task | str = "action") -> str:
    """The grid as CSV text (empty cells for values a run does not have)."""
    columns = sweep_columns(task)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()
