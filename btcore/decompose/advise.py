"""Which format, tensorization and ranks to use for a given matrix: :func:`suggest_formats`.

The advisor searches tensorizations of W (factorizations of I and J into d modes, their pairings and
orders) and, on each, TT, Tucker, BT and CP ranks, and returns every candidate it evaluated with its
parameter count and relative error, the Pareto front marked, and one recommendation
(:func:`recommended`). What is cheap is done for every candidate, what is expensive only for the
promising ones:

* **Free bounds.** The singular values of the unfoldings of the interleaved tensor T bound every
  format: a Tucker or BT model whose mode-k rank is at most r_k leaves at least the tail
  ``sum_{i > r_k} s_i^2`` of the mode-k unfolding (a lower bound on its error; N blocks of core ranks
  R have mode ranks N R_k and bond ranks N min(R_1..R_k, R_k+1..R_d)), TT-SVD leaves at most
  the sum of the bond unfoldings' tails (Oseledets 2011, Thm 2.2), truncated HOSVD at most the sum of
  the mode unfoldings' tails. Ranks are chosen from these spectra (epsilon truncation at several
  tolerances, as TT-SVD does, plus uniform ranks), so non-uniform ranks are searched too.
* **Direct fits.** TT-SVD is direct: every TT candidate's error is the root of the squared singular
  values its steps discard (exact; the first step's SVD is shared by all candidates of a
  tensorization). Tucker is screened by its truncated HOSVD (an achievable error, computed exactly
  from the projected core).
* **Short fits.** BT and CP candidates whose lower bound could still beat the front found so far are
  screened by a short ALS fit (few sweeps, few starts), most promising first. With a budget (and no
  target error) only the most blocks of each rank that fit in it are candidates: the lowest error
  within the budget is asked for, and more blocks of the same ranks fit at least as well. Then, as
  near-ties (within ``rtol``) go to the smaller model, a few BT and CP models with fewer blocks whose
  lower bound allows a tie are screened, smallest first, until one ties.
* **Full fits.** The candidates on or near the screened front and the best screened one of each
  format are refitted with the full settings (:data:`~btcore.decompose.settings.ADVISOR_FULL`), Tucker
  by HOOI and CP by CP-ALS as :func:`~btcore.decompose.settings.for_format` runs them.

Every budget counts work (candidates, starts, sweeps), so equal inputs and seeds give equal tables.

Tucker, BT and CP do not depend on the order of the merged modes, only on which input mode is paired
with which output mode; TT does. Tensorizations are de-duplicated accordingly.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..formats import BTSpec, TRSpec, TTSpec, tr_max_uniform_rank
from ..shapes import MAX_ORDER, check_choice, check_positive_int
from .bt import cap_bt_ranks, fit_bt
from .budget import FORMATS
from .fitinfo import AT_PRECISION, EXACT_BELOW
from .inputs import as_matrix
from .settings import ADVISOR_FULL, ADVISOR_SCREEN, DEFAULT, FitSettings, for_format, tr_options
from .tensorizations import canonical as _canonical
from .tensorizations import Interleaved, search_tensorizations
from .tr import fit_tr
from .tt import cap_tt_ranks, fit_tt
from .tucker_cp import fit_cp, fit_tucker

__all__ = ["suggest_formats", "recommended", "search_tensorizations", "ADVISOR_FORMATS", "ADVISOR_COLUMNS"]

#: Format names accepted by :func:`suggest_formats` (any case) and the names its table uses: those
#: of :data:`btcore.decompose.budget.FORMATS` (the registry's).
ADVISOR_FORMATS = {name.lower(): name for name in FORMATS}
#: The columns of the table :func:`suggest_formats` returns, in order.
ADVISOR_COLUMNS = ["format", "in_modes", "out_modes", "ranks", "blocks", "params", "error", "pareto", "d",
                   "stage", "compression", "seconds"]
#: The most a full fit lowers the error of a short one (its screen), as a fraction, per format: on the
#: photos of ``bench/advisor.py`` (256 x 256 and 512 x 512, budgets 1-10%) BT's full fits ended 1-9%
#: below their screens and CP's (80 iterations after 12) 3-13% below. Other formats: 1 - 1 / slack
#: (:meth:`_Advisor.refine`).
_FULL_GAIN = {"BT": 0.10, "CP": 0.15}
#: With a budget, the most short fits of BT and CP models with fewer blocks than the budget allows
#: (:meth:`_Advisor.smaller`), and the most full fits among them.
_SMALL_SCREENS, _SMALL_FULL = 8, 2
#: Tolerances of the epsilon truncations that propose ranks from the unfolding spectra.
_EPS = tuple(float(e) for e in np.geomspace(0.7, 1e-4, 14))


@dataclass
class _Candidate:
    format: str
    in_modes: tuple
    out_modes: tuple
    ranks: tuple
    blocks: int | None
    params: int
    bound: float = 0.0          # lower bound on the error (0: none known)
    error: float | None = None
    stage: str = ""             # "direct", "HOSVD", "screen" or "full"
    seconds: float = 0.0

    @property
    def key(self) -> tuple:
        return (self.format, self.in_modes, self.out_modes, self.ranks, self.blocks)


# ----------------------------------------------------------------------------------------------
# Spectra and rank proposals
# ----------------------------------------------------------------------------------------------

def _rank_for(tails: np.ndarray, allowed: float) -> int:
    """The smallest rank r >= 1 whose tail is at most ``allowed``."""
    ok = np.nonzero(tails <= allowed)[0]
    return max(1, int(ok[0]) if len(ok) else len(tails) - 1)


# ----------------------------------------------------------------------------------------------
# Candidates per format
# ----------------------------------------------------------------------------------------------

def _tt_candidates(t: Interleaved, cap: int) -> list[_Candidate]:
    d = len(t.sizes)
    ranks = set()
    for eps in _EPS:
        allowed = eps ** 2 * t.norm2 / max(1, d - 1)
        ranks.add(tuple(_rank_for(b, allowed) for b in t.bond))
    for r in range(1, 65):
        ranks.add(tuple(min(r, len(b) - 1) for b in t.bond))
    out = {}
    for inner in ranks:
        full = cap_tt_ranks(t.im, t.om, inner)[0]
        spec = TTSpec(t.im, t.om, full, max_bytes=None)
        if spec.params <= cap:
            out[full] = _Candidate("TT", t.im, t.om, full, None, spec.params)
    return [out[r] for r in sorted(out)]  # sorted: consecutive candidates share TT-SVD steps


def _tucker_candidates(t: Interleaved, cap: int) -> list[_Candidate]:
    d = len(t.sizes)
    ranks = set()
    for eps in _EPS:
        allowed = eps ** 2 * t.norm2 / d
        ranks.add(tuple(_rank_for(tl, allowed) for tl, _ in t.mode))
    for r in range(1, max(t.sizes) + 1):
        ranks.add((r,) * d)
    out = {}
    for req in ranks:
        rk = cap_bt_ranks(t.im, t.om, req)[0]
        spec = BTSpec(t.im, t.om, rk, 1, max_bytes=None)
        if spec.params <= cap and rk not in out:
            out[rk] = _Candidate("Tucker", t.im, t.om, rk, 1, spec.params, bound=t.block_bound(rk, 1))
    return list(out.values())


def _tr_candidates(t: Interleaved, cap: int) -> list[_Candidate]:
    """TR candidates of uniform ring rank r within ``cap`` (TR-SVD caps what a bond cannot hold)."""
    out = []
    for r in range(1, tr_max_uniform_rank(t.im, t.om) + 1):
        spec = TRSpec(t.im, t.om, r, max_bytes=None)
        if spec.params > cap:
            break
        out.append(_Candidate("TR", t.im, t.om, tuple(spec.ranks), None, spec.params))
    return out


def _bt_cp_candidates(t: Interleaved, cap: int, formats, largest: bool = False) -> list[_Candidate]:
    """BT (uniform R >= 2, N >= 2) and CP (R = 1) candidates within ``cap`` with their lower bounds.

    ``largest``: for each R only the most blocks within ``cap`` (what the lowest error within a budget
    needs: more blocks of the same ranks fit at least as well); else N on a geometric grid.
    """
    out = {}
    blocks = sorted({int(round(x)) for x in np.geomspace(2, 4096, 24)} | {2, 3, 4, 5, 6})
    for R in range(1 if "CP" in formats else 2, 17 if "BT" in formats else 2):
        rk = cap_bt_ranks(t.im, t.om, R)[0]
        if R > 1 and max(rk) < R:
            break  # capped everywhere: larger R repeats this one
        fmt = "CP" if R == 1 else "BT"
        if fmt not in formats:
            continue
        if largest:
            per = BTSpec(t.im, t.om, rk, 1, max_bytes=None).params  # a block's parameters: N blocks cost N times
            grid = [cap // per] if cap // per >= (1 if R == 1 else 2) else []
        else:
            grid = blocks if R > 1 else [1] + blocks
        for N in grid:
            if fmt == "BT" and N < 2:
                continue
            spec = BTSpec(t.im, t.om, rk, N, max_bytes=None)
            if spec.params > cap:
                break
            out[(rk, N)] = _Candidate(fmt, t.im, t.om, rk, N, spec.params, bound=t.block_bound(rk, N))
    return list(out.values())


# ----------------------------------------------------------------------------------------------
# The search
# ----------------------------------------------------------------------------------------------

class _Front:
    """The best error known at each size: ``at(p)`` is the lowest error with at most p parameters."""

    def __init__(self, known: list[_Candidate]):
        pts = sorted((c.params, c.error) for c in known if c.error is not None)
        self.params = [p for p, _ in pts]
        self.best = list(np.minimum.accumulate([e for _, e in pts])) if pts else []

    def at(self, params: int) -> float:
        i = bisect.bisect_right(self.params, params)
        return self.best[i - 1] if i else math.inf


def _score(t_cands: list[_Candidate], lo: int, hi: int) -> float:
    """How well a tensorization compresses: the mean log error of its own front over sizes lo..hi."""
    front = _Front(t_cands)
    grid = np.geomspace(max(1, lo), max(lo + 1, hi), 16)
    return float(np.mean([math.log(max(min(front.at(int(p)), 1.0), AT_PRECISION)) for p in grid]))


class _Advisor:
    """One call of :func:`suggest_formats`: the tensors, the candidates and the phases that evaluate them.

    Progress counts work items: the tensorizations' spectra, then every candidate evaluated (TT-SVD,
    HOSVD, TR-SVD, screening fits, full fits) out of those planned so far.
    """

    def __init__(self, W, cap, formats, seed, progress, should_stop, max_screen, max_full, fit_kwargs,
                 n_extra: int = 0, top: int = 4, largest: bool = False, rtol: float = 0.0):
        self.W, self.cap, self.formats, self.seed = W, cap, formats, seed
        self.n_extra, self.top, self.largest, self.rtol = n_extra, top, largest, rtol
        self.progress, self.should_stop = progress, should_stop
        self.max_screen, self.max_full, self.fit_kwargs = max_screen, max_full, fit_kwargs
        self.done: list[_Candidate] = []
        self.tensors: dict[tuple, Interleaved] = {}
        self.stopped = False
        self.fraction = 0.0
        self.count, self.total = 0, 0  # candidates evaluated, and planned so far

    def report(self, fraction: float, message: str) -> None:
        self.fraction = max(self.fraction, min(1.0, fraction))
        if self.progress is not None:
            self.progress(self.fraction, message)

    def step(self, message: str) -> None:
        """Report the candidate about to be evaluated (the spectra take the first tenth)."""
        self.report(0.1 + 0.9 * self.count / max(1, self.total),
                    f"{message} (candidate {self.count + 1} of {max(self.total, self.count + 1)})")
        self.count += 1

    def stop_now(self) -> bool:
        if not self.stopped and self.should_stop is not None and self.should_stop():
            self.stopped = True
        return self.stopped

    def run(self, shapes) -> list[_Candidate]:
        for n, (im, om) in enumerate(shapes):
            if self.stop_now():
                return self.done
            self.report(0.1 * n / len(shapes), f"unfolding spectra of {_text(im, om)} (tensorization {n + 1} of "
                        f"{len(shapes)})")
            self.tensors[(tuple(im), tuple(om))] = Interleaved(self.W, im, om)
        tensors = list(self.tensors.values())
        tt = [c for t in tensors if len(t.sizes) >= 2 for c in _tt_candidates(t, self.cap)] \
            if "TT" in self.formats else []
        tucker = [(t, c) for t in tensors for c in _tucker_candidates(t, self.cap)] if "Tucker" in self.formats else []
        als = [f for f in self.formats if f != "TT"]
        # planned: TT, Tucker, a guess for TR (a ring per rank on the best tensorizations), screens, full fits
        self.total = len(tt) + len(tucker) + self.max_screen + self.max_full + len(als) \
            + (8 * (self.top + self.n_extra) if "TR" in self.formats else 0)
        self.fit_all(tt, "direct")
        for t, c in tucker:
            self.step(f"Tucker {_text(c.in_modes, c.out_modes)} (HOSVD)")
            c.error, c.stage = t.hosvd_error(c.ranks), "HOSVD"
            self.done.append(c)
        best = self.best_tensors(tensors)
        tr = [c for t in best if len(t.sizes) >= 2 for c in _tr_candidates(t, self.cap)] if "TR" in self.formats else []
        pool = [c for t in best for c in _bt_cp_candidates(t, self.cap, self.formats, self.largest)]
        self.total = self.count + len(tr) + min(self.max_screen, len(pool)) + self.max_full + len(als)
        # TR-SVD is direct, but a ring has no free bound to rank tensorizations by
        self.fit_all(tr, "direct")
        self.screen(pool)
        self.refine()
        self.smaller(best)
        self.report(self.fraction, f"{self.count} of {self.total} candidates evaluated")
        return self.done

    def best_tensors(self, tensors: list[Interleaved]) -> list[Interleaved]:
        """The given tensorizations and the ``top`` others whose TT and Tucker fronts are lowest.

        BT and CP are screened on these only: their lower bounds vanish on tensorizations with small
        modes (N R above the mode size), so they cannot rank tensorizations themselves.
        """
        by = {}
        for c in self.done:
            by.setdefault(_canonical(c.in_modes, c.out_modes, True), []).append(c)
        lo = min((c.params for c in self.done), default=1)
        keyed = [(_score(by.get(_canonical(t.im, t.om, True), []), lo, self.cap), n, t)
                 for n, t in enumerate(tensors)]
        given = [t for s, n, t in keyed if n < self.n_extra]
        rest = sorted((k for k in keyed if k[1] >= self.n_extra), key=lambda k: (k[0], k[1]))
        return given + [t for _, _, t in rest[: self.top]]

    def fit(self, c: _Candidate, settings: FitSettings, stage: str) -> None:
        """Fit candidate ``c`` (TT: TT-SVD; TR: TR-SVD when direct, else ALS within the work budget of
        ``settings``; Tucker and CP: HOOI and CP-ALS as :func:`for_format` adapts ``settings``; BT:
        ``settings``); keep the better error."""
        t0 = time.perf_counter()
        hooks = {"seed": self.seed, "warn": False, "should_stop": self.stop_now}
        if c.format == "TT":
            err = self.tensors[(c.in_modes, c.out_modes)].tt_error(c.ranks)
            if err < 10 * EXACT_BELOW:  # near exact: the error of the reconstruction itself, as fit_tt gives it
                err = fit_tt(self.W, c.in_modes, c.out_modes, c.ranks, warn=False)[1].relative_error
        elif c.format == "TR":
            kw = {"max_iter": 0} if stage == "direct" else tr_options(settings.replace(**self.fit_kwargs))
            err = fit_tr(self.W, c.in_modes, c.out_modes, c.ranks, **kw, **hooks)[1].relative_error
        elif c.format == "CP" and stage == "screen":
            # CP-ALS from the SVD start cut at the screen's sweeps: an iteration costs a fraction of a BT
            # ALS sweep of the same size, and the full fit repeats these iterations first
            s = settings.replace(**self.fit_kwargs)
            err = fit_cp(self.W, c.in_modes, c.out_modes, c.blocks, settings=s, max_iter=s.max_iter,
                         **hooks)[1].relative_error
        elif stage != "screen" and c.format in ("Tucker", "CP"):
            fit, rank = (fit_tucker, c.ranks) if c.format == "Tucker" else (fit_cp, c.blocks)
            err = fit(self.W, c.in_modes, c.out_modes, rank, settings=settings, **self.fit_kwargs,
                      **hooks)[1].relative_error
        else:
            s = settings if stage == "screen" else for_format(settings, c.format)
            err = fit_bt(self.W, c.in_modes, c.out_modes, c.ranks, c.blocks, settings=s.replace(**self.fit_kwargs),
                         **hooks)[1].relative_error
        c.seconds += time.perf_counter() - t0
        if c.error is None or err < c.error:
            c.error = float(err)
        c.stage = stage

    def fit_all(self, cands: list[_Candidate], stage: str) -> None:
        for c in cands:
            if self.stop_now():
                return
            self.step(f"{c.format} {_text(c.in_modes, c.out_modes)}")
            self.fit(c, DEFAULT, stage)
            self.done.append(c)

    def screen(self, pool: list[_Candidate]) -> None:
        """Short ALS fits of BT/CP candidates that could still reach the front, most promising first."""
        n = 0
        while pool and n < self.max_screen and not self.stop_now():
            # promise: how far the lower bound lies below the best error known at that size
            front = _Front(self.done)
            pool = [c for c in pool if c.bound < front.at(c.params)]
            if not pool:
                break
            pool.sort(key=lambda c: (c.bound / front.at(c.params) if math.isfinite(front.at(c.params)) else -1.0,
                                     c.params))
            c = pool.pop(0)
            self.step(f"screening {c.format} {_text(c.in_modes, c.out_modes)}")
            self.fit(c, ADVISOR_SCREEN, "screen")
            self.done.append(c)
            n += 1
        self.total = self.count + self.max_full + len([f for f in self.formats if f != "TT"])

    def finalists(self) -> list[_Candidate]:
        """The ALS candidates on or near the front (error within 30% of the best at their size; with a
        budget, within 30% of the lowest error, in order of :meth:`hope`; at most ``max_full``) and the
        best screened fit of each format."""
        als = [c for c in self.done if c.format != "TT"]
        if self.largest:  # with a budget only the lowest error counts, not the front at smaller sizes
            best = min((c.error for c in self.done), default=math.inf)
            near = sorted((c for c in als if c.error <= 1.3 * best + 1e-15), key=lambda c: (self.hope(c), c.params))
        else:
            front = _Front(self.done)
            near = [c for c in als if c.error <= 1.3 * front.at(c.params) + 1e-15]
            near.sort(key=lambda c: c.error / max(front.at(c.params), 1e-300))
        picked = near[: self.max_full]
        # a short ALS fit can sit far above what the full fit reaches (CP-ALS crawls), which would keep
        # a format that wins out of the full fits
        for fmt in dict.fromkeys(c.format for c in als if c.stage == "screen"):
            mine = [c for c in als if c.format == fmt and c.stage == "screen"]
            best = min(mine, key=lambda c: (c.error, -c.params))
            if best not in picked:
                picked.append(best)
        return picked

    @staticmethod
    def hope(c: _Candidate, slack: float = 1.2) -> float:
        """The lowest error a full fit of ``c`` could plausibly reach: its error lowered by the most a
        full fit gains over a screen (:data:`_FULL_GAIN`; other formats: 1 - 1 / ``slack``)."""
        return c.error * (1 - _FULL_GAIN.get(c.format, 1 - 1 / slack))

    def refine(self, slack: float = 1.2) -> None:
        """Full fits of the finalists, most promising first.

        With a budget (the lowest error is asked for, near-ties within ``rtol`` going to the smaller
        model): a finalist is refitted only while its error could still come within ``rtol`` of beating
        the lowest error found so far, by any candidate (full fits included), once lowered by the most
        a full fit gains over its screen (:data:`_FULL_GAIN`); finalists go in order of that optimistic
        error. A finalist skipped so lies above the best full fit by at most 1 + ``rtol`` even if it
        gained that much. Otherwise, one whose short fit lies more than ``slack`` above the best other
        error at its size is skipped."""
        picked = self.finalists()
        self.total = self.count + len(picked)
        while picked and not self.stop_now():
            if self.largest:
                best = {id(c): min((x.error for x in self.done if x is not c), default=math.inf) for c in picked}
                picked.sort(key=lambda c: (self.hope(c, slack), c.params))
                c = picked.pop(0)
                skip = self.hope(c, slack) * (1 + self.rtol) >= best[id(c)]
            else:
                fronts = {id(c): _Front([x for x in self.done if x is not c]).at(c.params) for c in picked}
                picked.sort(key=lambda c: c.error / max(fronts[id(c)], 1e-300))
                c = picked.pop(0)
                skip = c.error > slack * fronts[id(c)]
            if skip:
                self.total -= 1 + len(picked)  # the rest lie further above
                break
            self.step(f"full fit of {c.format} {_text(c.in_modes, c.out_modes)}")
            self.fit(c, ADVISOR_FULL, "full")

    def smaller(self, tensors: list[Interleaved]) -> None:
        """With a budget: BT and CP models with fewer blocks than the budget allows that could tie with
        the lowest error (within ``rtol``, or both below numerical precision), smallest first.

        The budget phase screens only the most blocks of each rank, which finds the lowest error but
        not the smallest model that ties with it (an exact structure of few blocks under noise, where
        every larger model stops at the same noise floor). Candidates are those of the blocks grid on
        ``tensorizations`` with fewer parameters than the smallest tied model so far and a lower bound
        that allows a tie. Each is screened (refitted in full where its screen, lowered by
        :data:`_FULL_GAIN`, could tie; at most :data:`_SMALL_FULL`) until one ties or
        :data:`_SMALL_SCREENS` were screened."""
        if not self.largest or self.stop_now():
            return
        errors = [c.error for c in self.done if c.error is not None]
        if not errors:
            return
        low = min(errors)
        if low < AT_PRECISION:
            target = AT_PRECISION
        elif self.rtol > 0:
            target = low * (1 + self.rtol)
        else:
            return
        tied = min(c.params for c in self.done if c.error is not None and c.error <= target)
        have = {c.key for c in self.done}
        pool = [c for t in tensors for c in _bt_cp_candidates(t, tied - 1, self.formats)
                if c.key not in have and c.bound <= target]
        pool = sorted(pool, key=lambda c: (c.params, c.format, c.in_modes, c.out_modes, c.ranks))[:_SMALL_SCREENS]
        self.total = self.count + len(pool)
        full = 0
        for c in pool:
            if self.stop_now():
                return
            self.step(f"screening a smaller {c.format} {_text(c.in_modes, c.out_modes)}")
            self.fit(c, ADVISOR_SCREEN, "screen")
            self.done.append(c)
            if c.error > target and self.hope(c) <= target and full < _SMALL_FULL:
                self.total += 1
                self.step(f"full fit of {c.format} {_text(c.in_modes, c.out_modes)}")
                self.fit(c, ADVISOR_FULL, "full")
                full += 1
            if c.error <= target:
                self.total = self.count
                return


def _text(im, om) -> str:
    return "x".join(map(str, im)) + " -> " + "x".join(map(str, om))


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

def _pareto(params: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Non-dominated flags of (params, error) points (errors below AT_PRECISION count as equal)."""
    e = np.where(errors < AT_PRECISION, 0.0, errors)
    flags = np.zeros(len(e), dtype=bool)
    for i in range(len(e)):
        better = (params <= params[i]) & (e <= e[i]) & ((params < params[i]) | (e < e[i]))
        flags[i] = not better.any()
    return flags


def _recommend(df: pd.DataFrame, budget, target_error, rtol: float = 0.0) -> tuple[int | None, str]:
    if df.empty:
        return None, "no candidate"
    e = np.where(df["error"].to_numpy() < AT_PRECISION, 0.0, df["error"].to_numpy())
    if rtol > 0 and e.min() > 0:  # near-ties: within rtol of the lowest error counts as the lowest
        e = np.where(e <= e.min() * (1 + rtol), e.min(), e)
    p = df["params"].to_numpy()
    if target_error is not None:
        ok = np.nonzero(df["error"].to_numpy() <= target_error)[0]
        if len(ok):
            best = min(ok, key=lambda i: (p[i], e[i]))
            return int(df.index[best]), f"fewest parameters reaching error {target_error:g}"
        rule = f"no candidate reaches error {target_error:g}: lowest error"
    else:
        rule = "lowest error" + (f" (ties within {rtol:.0%}: fewest parameters)" if rtol else "") \
            + (" within the budget" if budget is not None else "")
    if budget is not None or target_error is not None:
        best = min(range(len(e)), key=lambda i: (e[i], p[i]))
        return int(df.index[best]), rule + (f" of {budget:,} parameters" if budget is not None and target_error is None
                                            else "")
    # neither: the corner of the front in log-log coordinates (closest to the lower left)
    front = np.nonzero(df["pareto"].to_numpy())[0]
    lp, le = np.log10(p[front]), np.log10(np.maximum(e[front], AT_PRECISION))
    span = lambda v: (v - v.min()) / (v.max() - v.min()) if v.max() > v.min() else v * 0  # noqa: E731
    best = front[int(np.argmin(span(lp) ** 2 + span(le) ** 2))]
    return int(df.index[best]), "the corner of the Pareto front (no budget or target error given)"


def recommended(df: pd.DataFrame) -> pd.Series:
    """The recommended row of a table from :func:`suggest_formats` (``df.attrs["recommended"]``)."""
    idx = getattr(df, "attrs", {}).get("recommended")
    if idx is None:
        raise ValueError("df has no recommendation: pass the table suggest_formats returned (filtering or "
                         "copying a DataFrame can drop its attrs), or one where some candidate was evaluated")
    return df.loc[idx]


def _check_args(W, budget, target_error, formats, max_order, seed, progress, should_stop, max_screen, max_full,
                rtol):
    Wt = as_matrix(W)
    if budget is not None:
        budget = check_positive_int(budget, "budget")
    if target_error is not None:
        if isinstance(target_error, bool) or not isinstance(target_error, (int, float)) \
                or not math.isfinite(target_error) or target_error <= 0:
            raise ValueError(f"target_error must be a positive number (a relative error, e.g. 0.01), got "
                             f"{target_error!r}")
        target_error = float(target_error)
    if isinstance(formats, str) or not hasattr(formats, "__iter__"):
        raise ValueError(f"formats must be a sequence of format names such as ('bt', 'tt'), got {formats!r}")
    names = [check_choice(str(f).lower(), tuple(ADVISOR_FORMATS), "formats entry") for f in formats]
    if not names:
        raise ValueError("formats is empty: give at least one of " + ", ".join(ADVISOR_FORMATS))
    max_order = check_positive_int(max_order, "max_order")
    if not 2 <= max_order <= MAX_ORDER:
        raise ValueError(f"max_order must be from 2 to {MAX_ORDER}, got {max_order}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    for name, fn in (("progress", progress), ("should_stop", should_stop)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a callable or None, got {type(fn).__name__}")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
        raise ValueError(f"rtol must be a number from 0 to below 1 (a relative tie tolerance), got {rtol!r}")
    max_screen = check_positive_int(max_screen, "max_screen")
    max_full = check_positive_int(max_full, "max_full")
    return Wt, budget, target_error, tuple(ADVISOR_FORMATS[n] for n in dict.fromkeys(names)), max_order


def suggest_formats(W, budget: int | None = None, target_error: float | None = None,
                    formats: Sequence[str] = tuple(ADVISOR_FORMATS), *, max_order: int = 6,
                    seed: int | None = 0, progress: Callable[[float, str], None] | None = None,
                    should_stop: Callable[[], bool] | None = None, tensorizations: Sequence = (),
                    max_params: int | None = None, max_screen: int = 60, max_full: int = 8,
                    rtol: float = 0.02, fit_kwargs: dict | None = None) -> pd.DataFrame:
    """Search formats, tensorizations and ranks for W and recommend one (see the module docstring).

    Parameters
    ----------
    W : numpy array or torch tensor, shape (I, J)
        The matrix (finite, real).
    budget : int, optional
        Largest parameter count: every candidate has at most this many parameters, and the
        recommendation is the lowest-error one (errors below 1e-8, or within ``rtol`` of the lowest,
        tie; of tied rows the fewest parameters wins).
    target_error : float, optional
        Relative error to reach: the recommendation is the fewest-parameter candidate reaching it
        (within ``budget`` when both are given), else the lowest-error one.
        With neither, candidates go up to ``max_params`` and the recommendation is the corner of the
        Pareto front (closest to the lower left in log-log coordinates).
    formats : sequence of str
        The formats searched (any case): keys of :data:`ADVISOR_FORMATS` ("tt", "bt", "tucker", "cp",
        "tr"; default all).
    max_order : int
        Largest order d of the tensorizations (2 to 8).
    seed : int or None
        Seeds the ALS starts; equal seeds give equal tables.
    progress : callable(fraction, message), optional
        Called as the search goes (fraction from 0 to 1, never decreasing).
    should_stop : callable() -> bool, optional
        Polled between and during fits; when True, the candidates evaluated so far are returned
        (``df.attrs["stopped"]`` is True).
    tensorizations : sequence of (in_modes, out_modes), optional
        Tensorizations searched in addition to the generated ones (e.g. the modes a page shows).
    max_params : int, optional
        Largest parameter count without a budget (default: a tenth of I*J).
    max_screen, max_full : int
        Most short ALS fits (BT, CP) and most full ALS refits.
    rtol : float
        Relative tie tolerance of the budget rule (0: strictly the lowest error). Differences of a
        few percent at the noise floor are noise; the smaller model is the better advice.
    fit_kwargs : dict, optional
        Extra settings for every ALS fit (:func:`~btcore.decompose.bt.fit_bt`).

    Returns
    -------
    pandas.DataFrame
        One row per evaluated candidate, sorted by params: ``format`` (a value of :data:`ADVISOR_FORMATS`),
        ``in_modes``, ``out_modes``, ``ranks`` (per mode; TT: all d+1; TR: d), ``blocks`` (None for TT, TR),
        ``params``, ``error`` (relative), ``pareto`` (non-dominated in (params, error)), ``d``,
        ``stage`` ("direct": TT-SVD or TR-SVD, "HOSVD": truncated HOSVD, "screen": short ALS, "full": full ALS),
        ``compression`` (I*J / params) and ``seconds``. ``df.attrs``: ``recommended`` (the index of
        the recommended row; :func:`recommended` returns the row), ``rule`` (why), ``stopped``,
        ``seconds``, ``budget``, ``target_error``, ``shape``, ``tensorizations``.

    Raises
    ------
    ValueError
        For a bad argument (the message names it).
    """
    t0 = time.perf_counter()
    Wt, budget, target_error, fmts, max_order = _check_args(W, budget, target_error, formats, max_order, seed,
                                                            progress, should_stop, max_screen, max_full, rtol)
    I, J = Wt.shape
    if max_params is not None:
        max_params = check_positive_int(max_params, "max_params")
    cap = budget if budget is not None else (max_params or max(8, I * J // 10))
    if isinstance(tensorizations, (str, bytes)) or not hasattr(tensorizations, "__iter__"):
        raise ValueError(f"tensorizations must be a sequence of (in_modes, out_modes) pairs, got {tensorizations!r}")
    extra = []
    for pair in tensorizations:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"tensorizations: expected (in_modes, out_modes) pairs, got {pair!r}")
        extra.append(pair)
    if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
        raise ValueError(f"fit_kwargs must be a dict of fit_bt settings, got {type(fit_kwargs).__name__}")
    shapes = search_tensorizations((I, J), max_order, extra)
    norm = float(torch.linalg.norm(Wt))
    Wn = Wt / norm if norm > 0 else Wt  # scale-free: Gram formulas stay far from overflow
    plain = _canonical((I, 1), (1, J), True)
    n_extra = sum(_canonical(i, o, True) != plain for i, o in search_tensorizations((I, J), 1, extra)[:len(extra)])
    adv = _Advisor(Wn, cap, fmts, seed, progress, should_stop, max_screen, max_full, fit_kwargs or {}, n_extra,
                  largest=budget is not None and target_error is None, rtol=rtol)
    cands = adv.run(shapes)
    df = _table(cands, I * J)
    idx, rule = _recommend(df, budget, target_error, rtol)
    df.attrs.update(recommended=idx, rule=rule, stopped=adv.stopped, seconds=time.perf_counter() - t0, budget=budget,
                    target_error=target_error, shape=(I, J), tensorizations=shapes)
    adv.report(1.0, "done" if not adv.stopped else "stopped")
    return df


def _table(cands: list[_Candidate], dense: int) -> pd.DataFrame:
    rows = {}
    for c in cands:
        if c.error is not None and (c.key not in rows or c.error < rows[c.key].error):
            rows[c.key] = c
    recs = [{"format": c.format, "in_modes": c.in_modes, "out_modes": c.out_modes, "ranks": tuple(c.ranks),
             "blocks": c.blocks, "params": int(c.params), "error": float(c.error), "pareto": False,
             "d": len(c.in_modes), "stage": c.stage, "compression": dense / c.params, "seconds": c.seconds}
            for c in rows.values()]
    df = pd.DataFrame(recs, columns=ADVISOR_COLUMNS)
    df["blocks"] = pd.Series([r["blocks"] for r in recs], dtype=object, index=df.index)  # None for TT, not NaN
    df = df.sort_values(["params", "error"], kind="stable").reset_index(drop=True)
    if not df.empty:
        df["pareto"] = _pareto(df["params"].to_numpy(), df["error"].to_numpy())
    return df
