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

from .config import TrainConfig
from .run import TrainResult

__all__ = ["sweep_configs", "sweep_rows", "sweep_csv", "SWEEP_COLUMNS"]

SWEEP_COLUMNS = ("run", "kind", "rank", "blocks", "params", "input_map_params", "status", "val_acc", "val_loss",
                 "steps", "run_s")


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


def sweep_rows(results: Sequence[TrainResult | dict]) -> list[dict]:
    """One row of :data:`SWEEP_COLUMNS` per run, from :class:`TrainResult` s or the trainer's end events."""
    rows = []
    for r in results:
        if isinstance(r, TrainResult):
            ev = {"run": r.name, "status": r.status, **r.final, "input_map_params": r.config.model.input_map_params()}
        else:
            ev = r
        rows.append({k: ev.get(k) for k in SWEEP_COLUMNS})
    return rows


def sweep_csv(rows: Sequence[dict]) -> str:
    """The grid as CSV text (empty cells for values a run does not have)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SWEEP_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SWEEP_COLUMNS})
    return buf.getvalue()
