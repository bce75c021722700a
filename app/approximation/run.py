"""The Approximation page's worker and its result records (no Streamlit; ``st.*`` never runs here).

:func:`make_worker` returns the function a background job runs: build the target, fit each planned
task once (:func:`btcore.decompose.fit_task`, reusing the page's fit cache), keep the best candidate
per (role, budget, format), and reconstruct the main fits for the heatmaps.
"""

from __future__ import annotations

import io
import math
import re
import time
import dataclasses
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

import btcore
from btcore import decompose as dec
from btcore import target_matrices

from .analysis import mode_ranks, rank_floor
from .plan import RunSpec, effort_kwargs, fit_cost

__all__ = ["MainRow", "SweepPoint", "RunResult", "make_worker", "downsample", "factors_pt", "results_csv"]


@dataclass
class MainRow:
    """One main fit as the page shows it (the table, the stars on the chart, the teaching text)."""

    format: str
    ranks: str              # as btcore.formats.describe writes them
    blocks: int | None
    params: int
    compression: float
    rel_error: float        # from the one dense reconstruction the heatmaps use
    error_text: str
    seconds: float
    sweeps: int
    stop_reason: str
    at_precision: bool
    notes: list = field(default_factory=list)
    history: list = field(default_factory=list)
    #: (method, first, last) per phase of ``history`` (ALS sweeps, Gauss-Newton iterations).
    phases: list = field(default_factory=list)
    #: The fit's honest status: "converged", "stalled", "max_iter", "stopped" (see FitInfo).
    status: str = ""
    #: A stalled fit's lowest possible error at its ranks (analysis.rank_floor); None when not computed.
    rank_floor: float | None = None


@dataclass
class SweepPoint:
    """The best candidate of one format at one sweep budget."""

    budget: int | None
    format: str
    params: int
    rel_error: float | None
    error_text: str
    at_precision: bool
    seconds: float = 0.0
    label: str = ""


@dataclass
class RunResult:
    """Everything the page draws for one run, and the fits it made (``new_fits``, merged by harvest)."""

    key: tuple
    desc: str
    target: str
    noise: float | None
    shape: tuple
    in_modes: tuple
    out_modes: tuple
    dense: int
    target_small: np.ndarray
    main: list
    fits: dict
    recons: dict
    residuals: dict
    sweep: list
    failures: list
    stopped: bool
    seconds: float
    new_fits: dict
    pt: bytes | None
    finished: str
    #: The target is a picture (a photo, a shipped image): drawn as grey images, not heatmaps.
    picture: bool = False
    #: The effort the fits ran at (a key of :data:`~.plan.EFFORT`).
    effort: str = "quick"


def downsample(A: np.ndarray, max_side: int = 128) -> np.ndarray:
    """Block means of a 2-D array so neither side exceeds ``max_side`` (each side independently).

    Rows (columns) are grouped into ``ceil(n / max_side)`` consecutive ones; a ragged last group is
    averaged over the entries it has. Arrays already small enough are returned as float64 copies.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"downsample needs a 2-D array, got shape {A.shape}")
    out = A
    for axis in (0, 1):
        n = out.shape[axis]
        f = math.ceil(n / max_side) if n > max_side else 1
        if f == 1:
            continue
        m = math.ceil(n / f)
        pad = m * f - n
        x = np.moveaxis(out, axis, 0)
        counts = np.full(m, float(f))
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:])], axis=0)
            counts[-1] = f - pad
        x = x.reshape(m, f, *x.shape[1:]).sum(axis=1) / counts.reshape(-1, *([1] * (x.ndim - 1)))
        out = np.moveaxis(x, 0, axis)
    return np.array(out, dtype=np.float64, copy=True)


def factors_pt(fits: dict, in_modes, out_modes, desc: str) -> bytes:
    """The fitted factors as a tensors-only ``.pt`` (loads with ``torch.load(weights_only=True)``)."""
    out = {"in_modes": list(in_modes), "out_modes": list(out_modes), "target": desc}
    for fmt, (M, info) in fits.items():
        entry = {"relative_error": float(info.relative_error), "params": int(info.params),
                 "ranks": list(info.ranks)}
        if isinstance(M, (btcore.TTMatrix, btcore.TRMatrix)):
            entry["cores"] = [c.detach().cpu() for c in M.cores]
        else:
            entry["factors"] = [f.detach().cpu() for f in M.factors]
            entry["core"] = M.core.detach().cpu()
            entry["blocks"] = int(info.blocks)
        out[fmt] = entry
    buf = io.BytesIO()
    torch.save(out, buf)
    return buf.getvalue()


def results_csv(res: RunResult) -> bytes:
    """The main fits and the sweep points as one CSV (column ``run``: "your size" or "sweep")."""
    main = [{k: v for k, v in asdict(r).items() if k not in ("history", "notes", "stop_reason")}
            | {"stopped on": r.stop_reason, "run": "your size"} for r in res.main]
    sweep = [asdict(p) | {"run": "sweep"} for p in res.sweep]
    return pd.concat([pd.DataFrame(main), pd.DataFrame(sweep)], ignore_index=True).to_csv(index=False).encode()


class _WorkClock:
    """Progress and time left of a run from work counts: each fit's expected cost (:func:`~.plan.fit_cost`),
    rescaled by how long the fits done so far took against their expected cost."""

    def __init__(self, costs: list):
        self.costs = costs            # (expected seconds, budgeted iterations) per task; 0 for a known fit
        self.total = sum(c for c, _ in costs) or 1.0
        self.done_expected = self.done_measured = 0.0

    def finish(self, i: int, seconds: float) -> None:
        self.done_expected += self.costs[i][0]
        self.done_measured += seconds

    def state(self, i: int, iteration: int = 0) -> tuple[float, float | None]:
        """``(progress, seconds left)`` while task ``i`` is at ``iteration``; None left until a fit is timed."""
        cost, its = self.costs[i]
        part = cost * min(0.9, iteration / max(1, its))  # a fit past its expected count is not over: 10% stays
        left = self.total - self.done_expected - part
        progress = (self.done_expected + part) / self.total
        if self.done_expected <= 0:
            return progress, None
        return progress, max(0.0, left) * min(20.0, max(0.05, self.done_measured / self.done_expected))


def _fit_all(job, spec: RunSpec, W, known_fits: dict) -> tuple[dict, dict, list]:
    """Fit every distinct task once; returns (fits by key, the new ones, failure messages)."""
    im, om, tasks = spec.in_modes, spec.out_modes, spec.tasks
    n = len(tasks)
    done, new, failures = {}, {}, []
    first = {}
    for i, planned in enumerate(tasks):  # the first occurrence of each fit not known yet costs its work
        first.setdefault(spec.fit_key(planned.task), i)
    clock = _WorkClock([fit_cost(p.task, im, om, spec.effort)
                        if first[spec.fit_key(p.task)] == i and spec.fit_key(p.task) not in known_fits else (0.0, 1)
                        for i, p in enumerate(tasks)])
    for i, planned in enumerate(tasks):
        if job.should_stop:
            break
        task = planned.task
        fkey = spec.fit_key(task)
        if fkey in done or fkey in known_fits:
            done.setdefault(fkey, known_fits.get(fkey))
            continue
        what = f"{task.format} {planned.label} ({i + 1} of {n})"
        p, left = clock.state(i)
        job.update(message=what, progress=p, eta_s=left)

        def progress(it, err, _i=i, _what=what):
            p, left = clock.state(_i, it)
            job.update(progress=p, eta_s=left, message=f"{_what}: sweep {it}, error {err:.3g}")

        t0 = time.perf_counter()
        try:
            M, info = dec.fit_task(W, im, om, task, seed=spec.seed, fit_kwargs=effort_kwargs(spec.effort, task.format),
                                   progress=progress, should_stop=lambda: job.should_stop)
        except ValueError as exc:
            failures.append(f"{task.format} {planned.label}: {exc}")
            done[fkey] = None
            continue
        finally:
            clock.finish(i, time.perf_counter() - t0)
        if info.reason == "stopped":
            break
        done[fkey] = new[fkey] = (M, info)
    return done, new, failures


def best_per_group(spec: RunSpec, done: dict) -> dict:
    """(role, budget, format) -> (the planned fit with the lowest error or None, labels of all tried)."""
    groups = {}
    for planned in spec.tasks:
        g = (planned.role, planned.budget, planned.task.format)
        best, tried = groups.get(g, (None, []))
        result = done.get(spec.fit_key(planned.task))
        if result is not None and (best is None or
                                   result[1].relative_error < done[spec.fit_key(best.task)][1].relative_error):
            best = planned
        groups[g] = (best, tried + [planned.label])
    return groups


#: The library's notes advise its API (keywords a caller passes); the page keeps their facts and drops that
#: advice: no control of the page sets the refinement length, and a stall gets its own warning with what
#: the page's controls can try (:func:`app.approximation.analysis.stall_text`).
_API_ADVICE = ((re.compile(r"after refine_iter = (\d+) sweeps"), r"after \1 sweeps"),
               (re.compile(r"; raise refine_iter for a little more$"), ""),
               (re.compile(r": a swamp or a poor local minimum; more restarts \(another seed\) or method='nls' may "
                           r"lower it$"), ""))


def page_note(fmt: str, note: str) -> str:
    """A library fit note as the page shows it: which format it is about, its facts without API advice."""
    for pattern, text in _API_ADVICE:
        note = pattern.sub(text, note)
    return note if note.startswith(f"{fmt}:") else f"{fmt}: {note}"


def error_text(info) -> str:
    """A fit's error as the page writes it: the number, or "at numerical precision" (no API advice)."""
    return info.error_text if info.at_precision else f"{info.relative_error:.4g}"


def stalled_floor(W, im, om, info) -> float | None:
    """:func:`~.analysis.rank_floor` of a stalled fit (None for any other, or a format without a bound)."""
    if getattr(info, "status", "") != "stalled" or info.at_precision:
        return None
    ranks = mode_ranks(info.format, info.ranks, info.blocks, len(im))
    return None if ranks is None else rank_floor(W, im, om, ranks)


def _main_row(fmt: str, M, info, err: float, dense: int, tried: list) -> MainRow:
    notes = [page_note(fmt, n) for n in info.notes]
    if len(tried) > 1:
        notes.append(f"{fmt}: best of {' and '.join(tried)} (closest to the budget)")
    return MainRow(format=fmt, ranks=btcore.formats.describe(info.spec), blocks=info.blocks, params=int(info.params),
                   compression=dense / info.params, rel_error=err, error_text=error_text(info), seconds=info.seconds,
                   sweeps=info.iterations, stop_reason=info.reason, at_precision=info.at_precision, notes=notes,
                   history=list(info.errors), phases=list(getattr(info, "phases", []) or []),
                   status=getattr(info, "status", ""))


def make_worker(spec: RunSpec, W_given, known_fits: dict):
    """Build the target, run the main fits and the sweep, and return the :class:`RunResult`.

    ``known_fits`` is the page's copy of its fit cache, only read here; the fits made by this run come
    back in the result's ``new_fits`` for the page to merge (:func:`app.approximation.session.harvest`).
    """
    im, om = spec.in_modes, spec.out_modes
    picture = spec.target in target_matrices.IMAGE_TARGETS
    side = 256 if picture else 128  # a photo is looked at closely; block means of a matrix need fewer cells

    def target(job) -> RunResult:
        t0 = time.perf_counter()
        job.update(message="building the target")
        W = W_given if W_given is not None else target_matrices.make_target(
            spec.target, im, om, spec.seed, **spec.target_kwargs)
        done, new_fits, failures = _fit_all(job, spec, W, known_fits)
        job.update(message="reconstructions", progress=max(job.progress, 0.97))
        dense = W.shape[0] * W.shape[1]
        main, fits, recons, resid, sweep = [], {}, {}, {}, []
        for (role, budget, fmt), (planned, tried) in best_per_group(spec, done).items():
            if planned is None:
                continue
            M, info = done[spec.fit_key(planned.task)]
            if role == "sweep":
                sweep.append(SweepPoint(budget, fmt, int(info.params), float(info.relative_error), error_text(info),
                                        info.at_precision, info.seconds, f"{fmt} {planned.label}"))
                continue
            Md = M.to(dtype=torch.float64).to_dense().numpy()
            err = dec.relative_error(W, Md)  # from the one dense reconstruction the heatmaps use
            recons[fmt], resid[fmt] = downsample(Md, side), downsample(W - Md)
            del Md
            fits[fmt] = (M, info)
            main.append(dataclasses.replace(_main_row(fmt, M, info, err, dense, tried),
                                            rank_floor=stalled_floor(W, im, om, info)))
        return RunResult(
            key=spec.key, desc=spec.desc, target=spec.explain_as, noise=spec.target_kwargs.get("noise"),
            shape=tuple(W.shape), in_modes=im, out_modes=om, dense=dense, target_small=downsample(W, side), main=main,
            fits=fits, recons=recons, residuals=resid, sweep=sweep, failures=failures, stopped=job.should_stop,
            seconds=time.perf_counter() - t0, new_fits=new_fits,
            pt=factors_pt(fits, im, om, spec.desc) if fits else None, finished=time.strftime("%H:%M:%S"),
            picture=picture, effort=spec.effort)

    return target
