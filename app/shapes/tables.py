"""The Shapes page's formats table: what is shown (sizes as text) and what is downloaded (numbers).

Pure functions of :func:`btcore.summary_row` rows, unit-tested without a UI.
"""

from __future__ import annotations

import pandas as pd

import btcore

__all__ = ["COMPRESSION", "MACS", "formats_table", "formats_csv"]

#: Column names shared by the table and its CSV.
COMPRESSION = "compression vs dense (x)"
MACS = "multiply-adds / sample"


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


def formats_csv(rows: list[dict], batch: int) -> bytes:
    """The table as downloaded: every number a number (memory in bytes), for a spreadsheet."""
    return pd.DataFrame([_common(r) | {
        "parameter memory float32 (bytes)": int(r["param_bytes"]),
        f"largest intermediate batch {batch} (bytes)": int(r["intermediate_bytes"]),
    } for r in rows]).to_csv(index=False).encode()
