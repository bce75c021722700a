"""The page's "Suggest" action: :func:`btcore.suggest_formats` in a background job, and applying its
recommendation to the page's inputs (and to the shared configuration when it can hold it).

The worker (:func:`make_worker`) never calls ``st.*``; :func:`start`, :func:`harvest` and
:func:`apply` run in the script thread (``apply`` as a button callback).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pandas as pd

import btcore
from app import jobs
from app.config import LabConfig, get_config, set_config
from btcore import target_matrices
from btcore.shapes import format_ints, rank_text

from .inputs import CUSTOM, MODES, STATE

__all__ = ["Advice", "make_worker", "start", "harvest", "apply", "undo", "changes_text", "APPLIED_FIELDS", "config_for", "advice_budget", "JOB_KEY"]

JOB_KEY = "approximation_suggest"
#: State names (:data:`~.inputs.STATE`): the running job, the advice on screen, the job harvested last, a
#: failure, what was applied.
JOB, SHOWN, HARVESTED, ERROR, APPLIED = ("suggest_job", "advice", "suggest_harvested", "suggest_error", "applied")
#: What "Use this suggestion" replaced (page inputs, shared configuration), and that it was restored.
UNDO, UNDONE = "applied_undo", "applied_undone"


@dataclass
class Advice:
    """One finished (or stopped) search: the table, what it was asked, and the inputs it belongs to."""

    table: pd.DataFrame
    key: tuple
    budget: int
    formats: tuple
    seed: int
    stopped: bool
    seconds: float

    @property
    def best(self):
        """The recommended row (None when nothing was evaluated)."""
        return None if self.table.attrs.get("recommended") is None else btcore.recommended(self.table)


def advice_budget(spec) -> int:
    """The budget the search is given: the page's budget, or the largest main fit's size (explicit ranks)."""
    budgets = [t.task.budget for t in spec.main if t.task.budget is not None]
    return int(max(budgets) if budgets else max(t.task.params for t in spec.main))


def make_worker(spec, W_given, budget: int):
    """The job's function: build the target as the fits do, then search (progress and stop wired up)."""
    im, om = spec.in_modes, spec.out_modes
    formats = tuple(t.task.format.lower() for t in spec.main)

    def target(job) -> Advice:
        t0 = time.perf_counter()
        job.update(message="building the target")
        W = W_given if W_given is not None else target_matrices.make_target(
            spec.target, im, om, spec.seed, **spec.target_kwargs)
        df = btcore.suggest_formats(W, budget=budget, formats=tuple(dict.fromkeys(formats)), seed=spec.seed,
                                    tensorizations=[(im, om)], progress=lambda f, m: job.update(progress=f, message=m),
                                    should_stop=lambda: job.should_stop)
        return Advice(df, (spec.target_key, budget, formats), budget, formats, spec.seed, bool(df.attrs["stopped"]),
                      time.perf_counter() - t0)

    return target


def start(spec, W_given) -> None:
    """Start the search as a job shared by every session asking it of the same target, budget and formats."""
    STATE.pop(ERROR)
    budget = advice_budget(spec)
    share = ("approximation suggest", spec.target_key, budget, tuple(t.task.format.lower() for t in spec.main), W_given)
    STATE.set(JOB, jobs.start_job(JOB_KEY, make_worker(spec, W_given, budget), name="suggest", share=share))


def harvest() -> bool:
    """Put a finished search on the screen (once); True when it did."""
    job = STATE.get(JOB)
    if job is None or job.running or STATE.get(HARVESTED) is job:
        return False
    STATE.set(HARVESTED, job)
    snap = job.snapshot()
    if snap["error"]:
        STATE.set(ERROR, snap["error"])
    elif snap["result"] is not None:
        STATE.set(SHOWN, snap["result"])
        STATE.set("suggest_note", jobs.share_note(job))
    return True


def _one_or_all(ranks: tuple):
    """One rank when all are equal (what the rank fields and the shared configuration write as one int)."""
    return ranks[0] if len(set(ranks)) == 1 else ranks


def config_for(row, cfg: LabConfig) -> LabConfig | None:
    """The shared configuration with the recommended modes and ranks, or None when it cannot hold them.

    A LabConfig holds one BT (R, N), one TT and one TR rank choice; Tucker is BT with N = 1 and CP BT with
    R = 1. The other formats' ranks are kept when still valid on the new modes, else set to small defaults
    (TT 4, BT R 2, TR 2).
    """
    im, om = tuple(row.in_modes), tuple(row.out_modes)
    ranks = tuple(row.ranks)
    if row.format == "TT":
        inner = ranks[1:-1]
        change = {"tt_ranks": inner[0] if len(set(inner)) == 1 else inner}
    elif row.format == "TR":
        change = {"tr_ranks": _one_or_all(ranks)}
    else:
        change = {"bt_rank": _one_or_all(ranks), "blocks": int(row.blocks)}
    for keep in ({}, {"tt_ranks": 4, "bt_rank": 2, "tr_ranks": 2} | change):
        try:
            new = replace(cfg, in_modes=im, out_modes=om, **(keep or change))
            new.specs()
            return new
        except ValueError:
            continue
    return None


#: The page inputs "Use this suggestion" may change, with how the page labels them.
APPLIED_FIELDS = {"shape": "modes preset", "a_in": "input modes", "a_out": "output modes", "size_by": "size by",
                  "bt_R": "BT rank R", "bt_N": "BT blocks N", "tt_r": "TT ranks", "tucker_R": "Tucker rank",
                  "cp_R": "CP rank", "tr_r": "TR ranks", "formats": "formats"}


def _config_text(cfg: LabConfig) -> str:
    return (f"{format_ints(cfg.in_modes)} -> {format_ints(cfg.out_modes)}, BT R={rank_text(cfg.bt_rank)} "
            f"N={cfg.blocks}, TT {rank_text(cfg.tt_ranks)}, TR {rank_text(cfg.tr_ranks)}")


def _shown(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def changes_text(before: dict, after: dict, cfg_before: LabConfig | None, cfg_after: LabConfig | None) -> str:
    """What applying a suggestion changed, as the page says it ("input modes 8x20 -> 4x4; ...")."""
    parts = [f"{APPLIED_FIELDS[k]} {_shown(before[k])} → {_shown(after[k])}" for k in APPLIED_FIELDS
             if k in before and before[k] != after.get(k)]
    s = "Changed " + ("; ".join(parts) if parts else "nothing on this page")
    if cfg_after is not None and cfg_after != cfg_before:
        was = _config_text(cfg_before) if cfg_before is not None else "the default"
        s += (f". The shared configuration (used by the Shapes, Learn and Training pages) went from {was} to "
              f"{_config_text(cfg_after)}")
    elif cfg_after is None:
        s += ". The shared configuration cannot hold it and was left as it was"
    return s + "."


def apply(inputs) -> None:
    """Button callback: the recommendation into the page's inputs (explicit ranks) and the shared config.

    What it replaces is kept (:func:`undo` restores it) and what it changed is stored for the page to say.
    """
    advice: Advice | None = STATE.get(SHOWN)
    row = None if advice is None else advice.best
    if row is None:
        return
    before = {k: inputs[k] for k in APPLIED_FIELDS}
    cfg_before = get_config()
    inputs.set("shape", CUSTOM)
    inputs.set("a_in", format_ints(row.in_modes))
    inputs.set("a_out", format_ints(row.out_modes))
    inputs.set("size_by", MODES[1])
    ranks = tuple(row.ranks)
    for name in ("bt_R", "tt_r", "tucker_R", "tr_r"):  # per-mode ranks of the old order would not fit the new one
        if "," in str(inputs[name]):
            inputs.set(name, "2")
    if row.format == "TT":
        inputs.set("tt_r", rank_text(ranks[1:-1] if len(set(ranks[1:-1])) > 1 else ranks[1]))
    elif row.format == "TR":
        inputs.set("tr_r", rank_text(_one_or_all(ranks)))
    elif row.format == "CP":
        inputs.set("cp_R", int(row.blocks))
    elif row.format == "Tucker":
        inputs.set("tucker_R", rank_text(_one_or_all(ranks)))
    else:
        inputs.set("bt_R", rank_text(_one_or_all(ranks)))
        inputs.set("bt_N", int(row.blocks))
    if row.format not in inputs["formats"]:
        inputs.set("formats", list(inputs["formats"]) + [row.format])
    cfg = config_for(row, cfg_before)
    if cfg is not None:
        set_config(cfg)
    after = {k: inputs[k] for k in APPLIED_FIELDS}
    STATE.set(APPLIED, (row.format, cfg is not None, changes_text(before, after, cfg_before, cfg)))
    STATE.set(UNDO, (before, cfg_before))
    STATE.pop(UNDONE)


def undo(inputs) -> None:
    """Button callback: the page inputs and the shared configuration as they were before :func:`apply`."""
    saved = STATE.pop(UNDO)
    if saved is None:
        return
    before, cfg_before = saved
    for k, v in before.items():
        inputs.set(k, v)
    set_config(cfg_before)
    STATE.pop(APPLIED)
    STATE.set(UNDONE, True)
