"""What every page's figures share: format colours, "your choice" markers and readable value axes."""

from __future__ import annotations

import functools
import hashlib
import math
import pickle
import threading
from collections import OrderedDict
from typing import Callable, TypeVar

__all__ = ["FORMAT_COLORS", "YOUR_MARKERS", "MAX_TICKS", "value_axis", "shared_figure", "SHARED_FIGURES"]

F = TypeVar("F", bound=Callable)
#: How many figures per builder a server process keeps (least recently used dropped first).
SHARED_FIGURES = 128

FORMAT_COLORS = {"Dense": "#636363", "TT": "#1f77b4", "BT": "#d62728", "Tucker": "#ff7f0e", "CP": "#2ca02c",
                 "TR": "#9467bd"}
#: Marker of "your" configuration per format: distinct shapes and sizes, drawn largest first, so
#: two choices at nearly the same point stay visible (an open ring around a star).
YOUR_MARKERS = {"TT": {"symbol": "circle-open", "size": 24, "line": {"width": 3}},
                "TR": {"symbol": "square-open", "size": 19, "line": {"width": 3}},
                "BT": {"symbol": "star", "size": 15, "line": {"width": 1, "color": "black"}},
                "Tucker": {"symbol": "diamond", "size": 13, "line": {"width": 1, "color": "black"}},
                "CP": {"symbol": "square", "size": 11, "line": {"width": 1, "color": "black"}}}
#: At most this many tick labels on a value axis.
MAX_TICKS = 8


def value_axis(values, *, log_ok: bool = True) -> dict:
    """Axis settings for positive ``values`` that always give readable tick labels.

    Below a decade of span the axis is linear with at most :data:`MAX_TICKS` ticks (a log axis
    with ``dtick=1`` would show no label at all there); above, a log axis whose decade step keeps
    the labels at most :data:`MAX_TICKS`.
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not vals:
        return {"type": "linear", "nticks": MAX_TICKS}
    lo, hi = min(vals), max(vals)
    if hi - lo <= 1e-9 * hi:  # equal values: plotly would zoom into rounding noise (20-digit ticks)
        return {"type": "linear", "range": [0.0, 2.0 * hi], "nticks": MAX_TICKS, "tickformat": ".3~g"}
    decades = math.log10(hi) - math.log10(lo)
    if not log_ok or decades < 1:
        return {"type": "linear", "nticks": MAX_TICKS, "exponentformat": "SI" if hi >= 1e4 else "none"}
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    step = max(1, math.ceil((last - first) / (MAX_TICKS - 1)))
    return {"type": "log", "dtick": step, "tick0": first, "exponentformat": "power" if last - first > 6 else "SI"}


def shared_figure(builder: F) -> F:
    """``builder`` with its figures built once per arguments for the whole server process.

    Building a plotly figure (trace and layout validation) is most of what a page's rerun costs;
    with this, twenty sessions opening the same link build each figure once and a rerun builds none.
    The key is the SHA-256 of the pickled arguments, so equal arguments share one figure and any
    difference in any value gives another (an argument that cannot be pickled is built uncached).
    The figure is one object shared by every session: callers draw it and never change it; a caller
    that needs a variant copies it first (``go.Figure(fig)``). Builders stay pure functions of their
    arguments, so the cache never changes what a page shows. The last :data:`SHARED_FIGURES`
    figures of each builder are kept.
    """
    cache: OrderedDict[str, object] = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(builder)
    def shared(*args, **kwargs):
        try:
            key = hashlib.sha256(pickle.dumps((args, sorted(kwargs.items())), protocol=5)).hexdigest()
        except (pickle.PicklingError, TypeError, AttributeError):
            return builder(*args, **kwargs)
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        fig = builder(*args, **kwargs)  # outside the lock: other figures are not held up
        with lock:
            fig = cache.setdefault(key, fig)  # a session that built it at the same time gets the first one
            while len(cache) > SHARED_FIGURES:
                cache.popitem(last=False)
        return fig

    shared.cache_clear = cache.clear
    return shared  # type: ignore[return-value]
