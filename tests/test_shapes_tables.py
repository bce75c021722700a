"""app.shapes.tables: the formats table shows readable sizes; its CSV holds numbers only."""

from __future__ import annotations

import io

import pandas as pd
import pytest

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


def test_tr_is_a_row_and_the_planners_choice_stands_beside_the_fixed_count():
    cfg = LabConfig((4, 8, 8, 4), (4, 8, 8, 4), 3, 2, 4, tr_ranks=(2, 3, 4, 3), batch=5)
    specs = cfg.specs()
    rows = [tables.with_planner(btcore.summary_row(s, 5), s, 5) for s in specs]
    csv = pd.read_csv(io.BytesIO(tables.formats_csv(rows, 5))).set_index("format")
    tr = btcore.TRSpec(cfg.in_modes, cfg.out_modes, (2, 3, 4, 3))
    assert csv.loc["TR", "parameters"] == tr.params == btcore.tr_params(cfg.in_modes, cfg.out_modes, (2, 3, 4, 3))
    assert csv.loc["TR", tables.MACS] == round(tr.plan(5).macs / 5)
    for spec in specs:
        choice = btcore.planner_choice(spec, 5)
        assert csv.loc[spec.kind, tables.PLANNER] == choice.scheme
        assert csv.loc[spec.kind, tables.PLANNER_MACS] == round(choice.macs_per_sample)
        assert csv.loc[spec.kind, tables.PLANNER_MS] == round(1e3 * choice.modelled_s, 3)
    shown = tables.planner_table(rows).set_index("format")
    assert shown.loc["TR", tables.PLANNER] == btcore.planner_choice(tr, 5).scheme
    assert list(tables.formats_table(rows, 5).columns).count(tables.PLANNER) == 0  # its own table, not a wider one
    numeric = [c for c in csv.columns if c not in ("ranks", tables.PLANNER)]
    assert all(pd.api.types.is_numeric_dtype(csv[c]) for c in numeric)


@pytest.mark.parametrize("x, text", [(17554.31, "17,554.3x"), (10240.0, "10,240x"), (10240.04, "10,240x"),
                                     (0.55, "0.6x"), (1.0, "1x")])
def test_a_compression_factor_is_written_as_the_tables_localized_column_shows_it(x, text):
    assert tables.format_factor(x) == text
    shown = round(x, 1)  # the table's value; the localized column drops a trailing .0
    assert text[:-1].replace(",", "") == (f"{shown:.1f}".removesuffix(".0"))


def test_short_headers_name_columns_of_the_shown_table():
    cfg = LabConfig((4, 4), (4, 4), 2, 2, 2, batch=256)
    shown = tables.formats_table(_rows(cfg, 256), 256)
    headers = tables.short_headers(256)
    assert set(headers) <= set(shown.columns)  # each renames a column the page shows
    assert all(len(short) < len(name) for name, (short, _) in headers.items())
    assert "256" in headers["largest intermediate (batch 256)"][1]  # the batch moves to the tooltip
