"""Fitting factorized formats to a given matrix: BT (joint ALS), TT (TT-SVD), Tucker and CP.

One module per family: :mod:`.fitinfo` (the :class:`FitInfo` record), :mod:`.inputs` (input checks,
:func:`interleave`, :func:`relative_error`), :mod:`.settings` (:class:`FitSettings`, the effort presets
:data:`EFFORTS`, the stopping rules), :mod:`.bt` (:func:`fit_bt`, its driver; :mod:`.als` its ALS
engine, :mod:`.nls` its Gauss-Newton solver, :mod:`.algebraic` its algebraic starts, :mod:`.btmodel`
what they share about a BT model),
:mod:`.tt` (:func:`fit_tt`), :mod:`.tucker_cp` (:func:`fit_tucker`, :func:`fit_cp`) and
:mod:`.budget` (fits at parameter budgets: :class:`FitTask`, :func:`budget_candidates`,
:func:`compare_formats`) and :mod:`.advise` (which format, tensorization and ranks:
:func:`suggest_formats`, :func:`recommended`).
"""

from .advise import recommended, search_tensorizations, suggest_formats
from .als import als_memory_bytes
from .bt import cap_bt_ranks, fit_bt
from .budget import (FORMATS, BudgetFit, FitTask, budget_candidates, budget_tasks, compare_formats, fit_memory_bytes,
                     fit_task)
from .fitinfo import AT_PRECISION, FitInfo
from .inputs import interleave, relative_error
from .settings import ADVISOR_FULL, ADVISOR_SCREEN, DEFAULT, EFFORTS, FitSettings, StoppingRules
from .tt import cap_tt_ranks, fit_tt
from .tucker_cp import fit_cp, fit_tucker

__all__ = [
    "FitInfo",
    "FitSettings",
    "StoppingRules",
    "DEFAULT",
    "EFFORTS",
    "ADVISOR_SCREEN",
    "ADVISOR_FULL",
    "interleave",
    "fit_bt",
    "fit_tucker",
    "fit_cp",
    "fit_tt",
    "relative_error",
    "cap_bt_ranks",
    "cap_tt_ranks",
    "budget_candidates",
    "budget_tasks",
    "fit_task",
    "fit_memory_bytes",
    "FitTask",
    "BudgetFit",
    "compare_formats",
    "AT_PRECISION",
    "FORMATS",
    "als_memory_bytes",
    "suggest_formats",
    "recommended",
    "search_tensorizations",
]
