"""The Shapes page's formats table: what is shown (sizes as text) and what is downloaded (numbers).

Pure functions of :func:`btcore.summary_row` rows, unit-tested without a UI.
"""

from __future__ import annotations

import pandas as pd

import btcore

__all__ = ["format_factor", "COMPRESSION", "MACS", "PLANNER", "PLANNER_MACS", "PLANNER_MS", "with_planner", "formats_table",
           "planner_table", "formats_csv"]

#: Column names shared by the table and its CSV. ``MACS`` is the FLOP-optimal path's count (a pure
#: function of the shapes); the planner's columns say what ``btcore.matmul`` would run and what its
#: time model expects, labelled as the planner's.
COMPRESSION = "compression vs dense (x)"
MACS = "multiply-adds / sample"
PLANNER = "the scheme btcore.matmul runs here (planner)"
PLANNER_MACS = "planner's multiply-adds / sample"
PLANNER_MS = "planner's modelled time (ms)"


def format_factor(x: float) -> str:
    """A compression factor as the page writes it everywhere: one decimal, thousands separated, no
    trailing ``.0`` (``17,554.3x``, ``10,240x``), the digits the table's localized column shows."""
    return f"{round(float(x), 1):,.1f}".removesuffix(".0") + "x"


def with_planner(row: dict, spec, batch: int) -> dict:
    """``row`` (a :func:`btcore.summary_row`) with the planner's choice for ``spec`` at ``batch``."""
    choice = btcore.planner_choice(spec, batch)
    return row | {"planner_scheme": choice.scheme, "planner_macs_per_sample": choice.macs_per_sample,
                  "planner_s": choice.modelled_s}


def _planner(r: dict) -> dict:
    return {PLANNER: r["planner_scheme"], PLANNER_MACS: int(round(r["planner_macs_per_sample"])),
            PLANNER_MS: round(1e3 * float(r["planner_s"]), 3)}


def _common(r: dict) -> dict:
    # One decimal, as the metrics above the table show it; whole multiply-adds (a per-sample mean
    # of a batch plan can end in .5, a count of operations cannot be read that way).
    return {"format": r["format"], "ranks": r["ranks"], "parameters": int(r["params"]),
            COMPRESSION: round(float(r["compression"]), 1), MACS: int(round(r["macs_per_sample"]))}


def formats_table(rows: list[dict], batch: int) -> pd.DataFrame:
    """The table as shown: memory as readable sizes (``13.2 KiB``)."""
    return pd.DataFrame([_common(r) | {
        "parameter memory (float32)": btcore.format_bytes(r["param_bytes"]),
        f"largest intermediate (batch {batch})": btcore.format_bytes(r["intermediate_bytes"]),
    } for r in rows])


def short_headers(batch: int) -> dict[str, tuple[str, str]]:
    """Column -> (header shown, its tooltip) for :func:`formats_table`'s long names: short headers,
    so that the table fits the page at 1400 px, with the full names as tooltips."""
    return {COMPRESSION: ("compression (x)", "compression vs dense: dense parameters / these"),
            "parameter memory (float32)": ("weights (float32)", "parameter memory in float32"),
            f"largest intermediate (batch {batch})": (
                "largest intermediate", f"the largest intermediate of one forward pass at batch {batch:,}")}


def planner_table(rows: list[dict]) -> pd.DataFrame:
    """Beside the table: per format, what the planner picks (rows from :func:`with_planner`)."""
    return pd.DataFrame([{"format": r["format"]} | _planner(r) for r in rows])


def formats_csv(rows: list[dict], batch: int) -> bytes:
    """The table as downloaded: every number a number (memory in bytes), for a spreadsheet; with the
    planner's columns when the rows carry them (:func:`with_planner`)."""
    return pd.DataFrame([_common(r) | {
        "parameter memory float32 (bytes)": int(r["param_bytes"]),
        f"largest intermediate batch {batch} (bytes)": int(r["intermediate_bytes"]),
    } | (_planner(r) if "planner_scheme" in r else {}) for r in rows]).to_csv(index=False).encode()
