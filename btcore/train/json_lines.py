"""Strict JSON for event lines and result files: NaN and inf become null, NumPy scalars plain numbers."""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["json_default", "finite_or_null", "json_line"]


def json_default(o):
    """``json.dumps``' ``default``: NumPy integers and floats as numbers, tuples as lists, anything else as text."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def finite_or_null(o):
    """``o`` with every NaN/inf float (in nested dicts, lists and tuples) replaced by None, so it is strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: finite_or_null(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_or_null(v) for v in o]
    return o


def json_line(obj) -> str:
    """One strict JSON line of ``obj``."""
    return json.dumps(finite_or_null(obj), default=json_default)
