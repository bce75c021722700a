"""Page inputs that outlive their widgets and round-trip through the URL.

Streamlit drops the state of every widget that is not on the current page, so a page that keeps
its inputs only in widgets loses them on a page switch. Here each page declares its inputs as
:class:`Field` s; :func:`page_inputs` keeps their values in one session-level store per page
(outside the widget keys), puts them back into the widgets when the user returns, and mirrors them,
with the shared configuration, into the URL query, so a copied link opens the same page in the same
state in a fresh session. Invalid or partial query values fall back to the defaults with a warning.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlencode

import streamlit as st

from app.config import LabConfig, config_query, get_config, pop_config_warnings
from app.widgets import link_warning

__all__ = ["Field", "LinkCheck", "ListField", "OptionField", "PageInputs", "page_inputs", "stored_inputs", "PageFrame", "page_setup", "lesson_mode",
           "set_lesson_mode", "lesson_banner", "write_url", "share_link", "show_link", "LESSON_PARAM"]

#: Query parameter of the lesson view (advanced controls hidden, for projecting a page in class).
LESSON_PARAM = "lesson"
_LESSON_KEY = "btlab_lesson"
_STORE_PREFIX = "btlab_inputs_"
_TRUE = ("1", "true", "yes", "on")


def _number(x: float) -> str:
    """``1,000,000,000`` and ``0.5``, never ``1e+09``."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,}"


#: A page's check of the values a link gave, run once on a session's first visit:
#: ``check(values, given) -> (values, warnings)``, ``given`` the names the link set validly.
LinkCheck = Callable[[dict, set], tuple[dict, list]]


@dataclass(frozen=True)
class Field:
    """One input of a page.

    Parameters
    ----------
    name : str
        The store key and the URL query parameter.
    default : object
        The value when neither the session nor the URL gives one.
    kind : {"text", "int", "float", "choice", "bool"}
        How the value is read from the URL. ``text`` keeps what was typed (a mode list is parsed by
        the page, so an invalid entry is kept and explained, never replaced).
    lo, hi : float, optional
        The range of ``int`` / ``float`` values taken from the URL.
    choices : tuple
        The allowed values of a ``choice``; a callable returning them is allowed too.
    widget : str, optional
        The widget key after the page's prefix, when it differs from ``name``.
    linked : bool
        Whether the value is read from the URL. ``False`` for a value the page derives (from the shared
        configuration, which reads and checks the link itself): it is still written to the URL.
    """

    name: str
    default: Any
    kind: str = "text"
    lo: float | None = None
    hi: float | None = None
    choices: tuple | Callable[[], Sequence] = ()
    widget: str | None = None
    linked: bool = True

    def options(self) -> tuple:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def parse(self, text: str):
        """The value of query text ``text``; raises ``ValueError`` saying what is accepted."""
        if self.kind == "text":
            return str(text)[:500]
        if self.kind == "bool":
            low = str(text).strip().lower()
            if low not in _TRUE + ("0", "false", "no", "off"):
                raise ValueError("expected 1 or 0")
            return low in _TRUE
        if self.kind == "choice":
            opts = self.options()
            if text not in opts:
                raise ValueError("expected one of " + ", ".join(map(str, opts)))
            return text
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if self.kind == 'int' else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a finite number")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ValueError(f"expected a value from {_number(self.lo)} to {_number(self.hi)}")
        return value

    def format(self, value) -> str:
        if self.kind == "bool":
            return "1" if value else "0"
        return str(value)


@dataclass(frozen=True)
class ListField(Field):
    """A multiselect: a list of ``choices``, written ``BT,TT`` in the URL."""

    def parse(self, text: str):
        items = [t.strip() for t in str(text).split(",") if t.strip()]
        bad = [t for t in items if t not in self.options()]
        if bad or not items:
            raise ValueError("expected a comma-separated list of " + ", ".join(self.options()))
        return items

    def format(self, value) -> str:
        return ",".join(value)


@dataclass(frozen=True)
class OptionField(Field):
    """A number from a fixed list (a select slider): the URL value must be one of ``choices``."""

    def parse(self, text: str):
        try:
            value = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if value not in self.options():
            raise ValueError("expected one of " + ", ".join(f"{v:g}" for v in self.options()))
        return value

    def format(self, value) -> str:
        return f"{value:g}"


@dataclass
class PageInputs:
    """The stored inputs of one page; ``values`` maps field names to what the user last entered."""

    page: str
    prefix: str
    fields: tuple[Field, ...]
    values: dict = field(default_factory=dict)
    #: Messages about query values that could not be used (shown once, on the first run).
    warnings: list = field(default_factory=list)

    def key(self, name: str) -> str:
        """The widget key of field ``name``."""
        f = next(f for f in self.fields if f.name == name)
        return self.prefix + (f.widget or f.name)

    def __getitem__(self, name: str):
        return self.values[name]

    def set(self, name: str, value) -> None:
        """Change a value from code (a preset, a suggestion); the widget shows it on this run."""
        self.values[name] = value
        st.session_state[self.key(name)] = value

    def sync(self) -> None:
        """Take the values the widgets report; put stored values back into widgets Streamlit dropped.

        :func:`page_inputs` calls it; a fragment whose widgets changed calls it again, since only
        the fragment reruns.
        """
        for f in self.fields:
            key = self.key(f.name)
            if key in st.session_state:
                self.values[f.name] = st.session_state[key]
            else:
                st.session_state[key] = self.values[f.name]

    def query(self) -> dict[str, str]:
        return {f.name: f.format(self.values[f.name]) for f in self.fields}


def _from_query(fields: Sequence[Field], defaults: dict, check: LinkCheck | None = None) -> tuple[dict, list]:
    """The link's values (one warning per field it could not use, whose default is kept), then ``check``."""
    values, warnings, given = dict(defaults), [], set()
    params = st.query_params
    for f in fields:
        if not f.linked or f.name not in params:
            continue
        try:
            values[f.name] = f.parse(params[f.name])
            given.add(f.name)
        except ValueError as exc:
            warnings.append(link_warning(f.name, params[f.name], exc, f.format(values[f.name])))
    if check is not None:
        values, more = check(values, given)
        warnings += more
    return values, warnings


def page_inputs(page: str, fields: Sequence[Field], *, prefix: str | None = None,
                defaults: dict | None = None, check: LinkCheck | None = None) -> PageInputs:
    """The inputs of ``page``, restored into their widgets; call before drawing the widgets.

    The first call of a session reads the URL query (falling back to ``defaults``, else each field's
    default; ``check`` then sees the values together, see :data:`LinkCheck`). Later calls take the
    values the widgets report, and put stored values back into widgets Streamlit dropped while the
    user was on another page.
    """
    fields = tuple(fields)
    store_key = _STORE_PREFIX + page
    inputs = st.session_state.get(store_key)
    if not isinstance(inputs, PageInputs) or [f.name for f in inputs.fields] != [f.name for f in fields]:
        base = {f.name: f.default for f in fields} | dict(defaults or {})
        values, warnings = _from_query(fields, base, check)
        inputs = PageInputs(page, page + "_" if prefix is None else prefix, fields, values, warnings)
        st.session_state[store_key] = inputs
    else:  # same inputs; defaults and choices may follow the configuration, the values stay
        inputs.fields, inputs.warnings = fields, []
    inputs.sync()
    return inputs


def stored_inputs(page: str) -> PageInputs | None:
    """The stored inputs of ``page`` (None before its first run): for a widget callback, which runs
    before the page's :func:`page_inputs` call."""
    inputs = st.session_state.get(_STORE_PREFIX + page)
    return inputs if isinstance(inputs, PageInputs) else None


def lesson_mode() -> bool:
    """True in the lesson view (``?lesson=1``): pages hide their advanced controls."""
    if _LESSON_KEY not in st.session_state:
        st.session_state[_LESSON_KEY] = str(st.query_params.get(LESSON_PARAM, "")).lower() in _TRUE
    return bool(st.session_state[_LESSON_KEY])


def set_lesson_mode(on: bool) -> None:
    """Enter or leave the lesson view (every page of the session follows, and so does the URL)."""
    st.session_state[_LESSON_KEY] = bool(on)


def write_url(*parts: dict[str, str]) -> dict[str, str]:
    """Replace the URL query with the merged ``parts`` (later parts win) and the lesson flag."""
    query: dict[str, str] = {}
    for part in parts:
        query.update(part)
    if lesson_mode():
        query[LESSON_PARAM] = "1"
    if dict(st.query_params.to_dict()) != query:
        st.query_params.from_dict(query)
    return query


def share_link(query: dict[str, str]) -> str:
    """The URL that opens this page with ``query`` (relative when the browser URL is unknown)."""
    try:
        base = st.context.url or ""
    except Exception:  # no browser context (AppTest, bare mode)
        base = ""
    return f"{base}?{urlencode(query)}"


def show_link(query: dict[str, str], *, key: str) -> None:
    """A "Copy link" popover holding the page's shareable URL in a code box (with a copy button)."""
    with st.popover("Copy link", icon=":material/link:", key=key):
        st.caption("This link opens the page in the state you see, in a fresh session.")
        st.code(share_link(query), language=None, wrap_lines=True)


@dataclass
class PageFrame:
    """What :func:`page_setup` set up for one page run: its inputs, the lesson flag, the URL and its link.

    The URL holds the shared configuration and the page's inputs. :meth:`write_url` rewrites it (the
    Shapes page calls it again once the typed configuration is known); :meth:`link` draws the Copy link
    into a slot that :meth:`refresh` redraws, so a fragment whose widgets changed keeps both the URL
    and the link current without a full rerun.
    """

    inputs: PageInputs
    lesson: bool
    link_key: str
    config: LabConfig | None = None
    query: dict = field(default_factory=dict)
    _slot: Any = None

    def write_url(self, config: LabConfig | None = None) -> dict[str, str]:
        """Mirror ``config`` (default: the session's configuration) and the inputs into the URL."""
        if config is not None:
            self.config = config
        self.query = write_url(config_query(self.config or get_config()), self.inputs.query())
        return self.query

    def link(self, *, by_fragments: bool = False) -> None:
        """Reserve the Copy link's place here; draw it now unless ``by_fragments``.

        With ``by_fragments`` the fragments that follow draw it (:meth:`refresh`), so it follows
        their widgets. The full run must then leave the slot to them: a slot written by both the
        full run and a fragment leaves the Streamlit 1.67 front end waiting forever.
        """
        if by_fragments:
            self._slot = st.empty()
        else:  # drawn in place: an st.empty slot written only by the full run can keep showing an old link
            show_link(self.query, key=self.link_key)

    def fragment(self, name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
        """Decorator: ``body`` as an ``st.fragment`` that keeps the URL and the Copy link current.

        It takes what the widgets report before ``body`` runs (only the fragment reruns when its
        widgets change) and, after it, :meth:`refresh`: so a value ``body`` sets from code after its
        widgets (a clamped step, a suggestion) reaches the URL and the link too.
        """
        def wrap(body: Callable[[], None]) -> Callable[[], None]:
            @st.fragment
            @functools.wraps(body)
            def run() -> None:
                self.inputs.sync()
                body()
                self.refresh(name)
            return run
        return wrap

    def refresh(self, name: str) -> dict[str, str]:
        """At the top of fragment ``name``: take what its widgets report, rewrite the URL, redraw the link.

        Only the fragment reruns when its widgets change, so the page-level URL and link would
        otherwise keep the values of the last full run. The fragment draws the link into the slot of
        :meth:`link` (created earlier in the full run) on every run: Streamlit gives a fragment a
        stable place in an outside container only if it wrote there during the full run, and an
        ``st.empty`` slot shows one link, whichever fragment wrote last. Each fragment's link has its
        own key (``<page>_link_<name>``).
        """
        self.inputs.sync()
        query = self.write_url()
        if self._slot is not None:
            with self._slot.container():
                show_link(query, key=f"{self.link_key}_{name}")
        return query


def _leave_lesson() -> None:
    set_lesson_mode(False)


def lesson_banner(prefix: str) -> bool:
    """In the lesson view, say so and offer the way off (a button keyed ``<prefix>leave_lesson``).

    Returns whether the lesson view is on.
    """
    lesson = lesson_mode()
    if lesson:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info("**Lesson view:** advanced controls are hidden, for projecting in class.", icon=":material/school:")
        c2.button("Leave the lesson view", key=prefix + "leave_lesson", on_click=_leave_lesson,
                  icon=":material/close:")
    return lesson


def page_setup(page: str, fields: Sequence[Field], *, prefix: str, defaults: dict | None = None,
               check: LinkCheck | None = None) -> PageFrame:
    """The frame every page starts with, in one call.

    Restores the page's inputs (:func:`page_inputs`), shows the warnings about link values that
    could not be used (the page's and the shared configuration's), reads the lesson flag and shows
    that the lesson view is on (with a way off), and mirrors the configuration and the inputs into
    the URL. Draw the Copy link with :meth:`PageFrame.link`; call :meth:`PageFrame.refresh` at the
    top of each fragment (after the link is drawn).

    Parameters
    ----------
    page : str
        The page's name (its store in the session).
    fields : sequence of Field
        The page's inputs.
    prefix : str
        The page's widget key prefix.
    defaults : dict, optional
        First-visit values that differ from the fields' defaults.
    check : LinkCheck, optional
        The page's check of the link's values taken together (a value that does not fit the others
        goes back to its default, with one warning naming it).
    """
    inputs = page_inputs(page, fields, prefix=prefix, defaults=defaults, check=check)
    for warning in pop_config_warnings() + inputs.warnings:  # each already escapes the link's text
        st.warning(warning, icon=":material/link_off:")
    lesson = lesson_banner(prefix)
    frame = PageFrame(inputs, lesson, prefix + "link")
    frame.write_url()
    return frame
