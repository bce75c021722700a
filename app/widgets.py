"""Shared input helpers: parsing typed lists of ints, showing library errors without tracebacks."""

from __future__ import annotations

import re

import streamlit as st

__all__ = ["parse_ints", "format_ints", "rank_text", "parse_rank", "escape_markdown", "show_error"]


def parse_ints(text: str, field: str) -> tuple[int, ...]:
    """Parse ``"8x20x20x18"``, ``"8, 20, 20, 18"`` or ``"8 20 20 18"`` into a tuple of ints.

    Raises ``ValueError`` naming ``field`` for anything that is not a list of positive integers.
    """
    parts = [p for p in re.split(r"[x×*,;\s]+", str(text).strip()) if p]
    if not parts:
        raise ValueError(f"{field}: enter at least one positive integer, e.g. 8x20x20x18")
    out = []
    for p in parts:
        if not p.isdigit() or int(p) < 1:
            raise ValueError(f"{field}: {p!r} is not a positive integer; write the sizes like 8x20x20x18")
        out.append(int(p))
    return tuple(out)


def format_ints(values, sep: str = "x") -> str:
    return sep.join(str(v) for v in values)


def rank_text(rank) -> str:
    return str(rank) if isinstance(rank, int) else format_ints(rank, ",")


def parse_rank(text: str, field: str) -> int | tuple[int, ...]:
    """One int (all modes) or a list of ints (per mode / per bond)."""
    vals = parse_ints(text, field)
    return vals[0] if len(vals) == 1 else vals


def escape_markdown(text: str) -> str:
    """Escape the characters Markdown would turn into emphasis or code (``I*J`` stays ``I*J``)."""
    return re.sub(r"([\\`*_~])", r"\\\1", text)


def show_error(exc: Exception, context: str | None = None) -> None:
    """Show a library error as ``st.error`` (its message names the field and the fix)."""
    msg = escape_markdown(str(exc) or type(exc).__name__)
    st.error(f"**{context}:** {msg}" if context else msg, icon=":material/error:")
