"""Shared input helpers: the typed-list parsers (re-exported from btcore.shapes), showing library errors without tracebacks."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from btcore.shapes import format_ints, parse_ints, parse_rank, rank_text

__all__ = ["parse_ints", "format_ints", "rank_text", "parse_rank", "escape_markdown", "link_warning", "show_error",
           "page_link"]

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


def escape_markdown(text: str) -> str:
    """Escape what Streamlit's Markdown would interpret in user- or link-derived text: emphasis and code
    (``I*J`` stays ``I*J``), LaTeX (``$``), links and colour directives (``[``, ``]``). Streamlit shows no raw
    HTML, and the messages are one line, so ``<``, ``>`` and ``#`` stay as they are."""
    return re.sub(r"([\\`*_~$\[\]])", r"\\\1", str(text))


def link_warning(name: str, text: str, reason, used: str) -> str:
    """The one message about a link value that was not used: it names the query field and its value,
    says why (``reason``) and what is used instead (``used``); the link's text is escaped."""
    shown = str(text)[:80].replace("`", "'") + ("..." if len(str(text)) > 80 else "")
    return (f"The link's `{name}={shown}` was not used ({escape_markdown(reason)}); "
            f"using {name}={escape_markdown(used)}.")


def show_error(exc: Exception, context: str | None = None) -> None:
    """Show a library error as ``st.error`` (its message names the field and the fix)."""
    msg = escape_markdown(str(exc) or type(exc).__name__)
    st.error(f"**{context}:** {msg}" if context else msg, icon=":material/error:")


def page_link(page: str, label: str, icon: str) -> None:
    """A link to ``pages/<page>``; plain text if that page is not registered (a page run on its own)."""
    try:
        st.page_link(str(PAGES_DIR / page), label=label, icon=icon)
    except Exception:  # not registered in this app (Streamlit raises its own exception types here)
        st.caption(label + " (see the sidebar).")
