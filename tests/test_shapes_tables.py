"""app.shapes.tables: the formats table shows readable sizes; its CSV holds numbers only."""

from __future__ import annotations

import io

import pandas as pd

import btcore
from app.config import LabConfig
from app.shapes import tables


def _rows(cfg, batch):
    return [btcore.summary_row(s, batch) for s in cfg.specs()]


def test_the_csv_holds_numbers_and_the_table_whole_multiply_adds():
    cfg = LabConfig((4, 4), (4, 4), 2, 2, 2, batch=3)
    rows = _rows(cfg, 3)
    csv = pd.read_csv(io.BytesIO(tables.formats_csv(rows, 3)))
    for col in csv.columns[2:]:
        assert pd.api.types.is_numeric_dtype(csv[col]), col
    assert list(csv["parameter memory float32 (bytes)"]) == [r["param_bytes"] for r in rows]
    shown = tables.formats_table(rows, 3)
    assert all(isinstance(v, int) for v in shown[tables.MACS])
    assert list(shown[tables.MACS]) == [round(r["macs_per_sample"]) for r in rows]
    assert list(shown[tables.COMPRESSION]) == [round(r["compression"], 1) for r in rows]
    assert shown["parameter memory (float32)"].iloc[0] == btcore.format_bytes(rows[0]["param_bytes"])
