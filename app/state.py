"""Session values that are no page input: jobs, flags, memos, what a callback leaves for the next run.

A page's inputs live in :mod:`app.frame` (restored into their widgets, mirrored into the URL). What
else a page keeps between runs (a job it started, a suggestion on offer, the last valid result, a
memo of an expensive read) is kept here, in the session, under a key no widget uses, so it survives
page switches (Streamlit drops the state of every widget not on the current page). Pages and their
modules reach the session only through :class:`SessionState` (or :mod:`app.frame`): each page owns
one namespace, named by its key prefix, so two pages never write each other's values.

This module is a leaf of the app: it imports only Streamlit.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

__all__ = ["SessionState", "SESSION"]


class SessionState:
    """The values of one namespace of the session: key ``prefix + name`` in ``st.session_state``.

    Parameters
    ----------
    prefix : str
        The namespace's key prefix (a page's widget key prefix, e.g. ``"shapes_"``, or ``""`` for the
        app-wide values). A name must not be a widget's key after that prefix: a widget owns its key
        and Streamlit drops it with the widget.

    Examples
    --------
    >>> state = SessionState("train_")  # doctest: +SKIP
    >>> state.set("scroll", True)       # doctest: +SKIP
    >>> state.pop("scroll", False)      # doctest: +SKIP
    True
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = str(prefix)

    def __repr__(self) -> str:
        return f"SessionState({self.prefix!r})"

    def key(self, name: str) -> str:
        """The session key of ``name``."""
        return self.prefix + name

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` when the session has none."""
        return st.session_state.get(self.key(name), default)

    def __getitem__(self, name: str) -> Any:
        return st.session_state[self.key(name)]

    def __contains__(self, name: str) -> bool:
        return self.key(name) in st.session_state

    def set(self, name: str, value: Any) -> None:
        """Keep ``value`` as ``name`` for the rest of the session (or until changed or popped)."""
        st.session_state[self.key(name)] = value

    def pop(self, name: str, default: Any = None) -> Any:
        """Remove ``name`` and return its value (``default`` when absent): a one-shot flag or message."""
        return st.session_state.pop(self.key(name), default)

    def setdefault(self, name: str, value: Any) -> Any:
        """The value of ``name``, first set to ``value`` when the session has none."""
        return st.session_state.setdefault(self.key(name), value)

    def instance(self, name: str, cls: type, factory=None) -> Any:
        """The value of ``name`` if it is a ``cls``, else a new one (``factory()``, default ``cls()``), kept.

        A value of another type (left by an older version of the app, or set by hand in a test) is
        replaced rather than trusted.
        """
        value = self.get(name)
        if not isinstance(value, cls):
            value = (factory or cls)()
            self.set(name, value)
        return value


#: The app-wide values (the shared configuration and its link warnings).
SESSION = SessionState("")
