"""TR-matrix fit: TR-SVD (tensorly's ``tensor_ring``, on numpy arrays) refined by ALS (:func:`fit_tr`).

TR-SVD alone is not exact on a matrix with TR structure: its first step splits the first unfolding's
rank r_{d} r_1 jointly, so the remainder is a ring only up to a mixing of the two bonds, and later
truncations lose part of it. Alternating least squares then solves for one core at a time with the
others fixed (a linear least-squares problem, solved through its normal equations), which lowers
the error at every step and recovers exact TR structure from that start.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from numbers import Integral
from typing import Callable

import numpy as np
import opt_einsum
import torch

from ..formats import TRSpec, normalize_tr_ranks, tr_rank_caps, tr_universal_ranks
from ..ring import TRMatrix, check_dense, grow_bonds, interleaved, tr_svd
from ..shapes import pair_modes
from ..memory import check_allocation
from .fitinfo import AT_PRECISION, FitInfo
from .inputs import check_dtype, check_nonneg, check_seed

__all__ = ["fit_tr", "cap_tr_ranks"]

_MODE = "ABCDEFGH"
_BOND = "pqrstuvw"


def cap_tr_ranks(in_modes, out_modes, ranks) -> tuple[tuple[int, ...], list[str]]:
    """The d bond ranks with every bond capped at what the ring can use, and the notes saying so.

    First each bond is capped at :func:`btcore.formats.tr_rank_caps` (given the others, repeated until
    nothing changes); then ranks that are at least a universal rank tuple everywhere
    (:func:`btcore.formats.tr_universal_ranks`) are replaced by that tuple (the one with the fewest
    parameters). Returns ``(ranks, notes)``; the ranks always pass :class:`btcore.formats.TRSpec`.
    """
    i, o = pair_modes(in_modes, out_modes)
    asked = normalize_tr_ranks(ranks, len(i))
    rk = list(asked)
    notes = []
    changed = True
    while changed:
        changed = False
        for k, cap in enumerate(tr_rank_caps(i, o, rk)):
            if rk[k] > cap:
                notes.append(f"TR rank {k + 1} capped from {rk[k]} to {cap}, the largest useful rank of that bond "
                             "given the others")
                rk[k], changed = cap, True
    sizes = [a * b for a, b in zip(i, o)]
    below = [u for u in tr_universal_ranks(i, o, max(rk)) if u != tuple(rk) and all(a <= b for a, b in zip(u, rk))]
    if below:
        u = min(below, key=lambda r: (sum(r[k - 1] * m * r[k] for k, m in enumerate(sizes)), r))
        notes.append(f"TR ranks {tuple(rk)} lowered to {u}, at which a tensor ring already represents every matrix "
                     "of this shape exactly")
        rk = list(u)
    return TRSpec(i, o, rk, max_bytes=None).ranks, notes


@functools.lru_cache(maxsize=256)
def _expression(eq: str, shapes: tuple):
    return opt_einsum.contract_expression(eq, *shapes, optimize="auto")


def _term(k: int, d: int) -> str:
    return _BOND[(k - 1) % d] + _MODE[k] + _BOND[k]


def _project(T: torch.Tensor, cores: list[torch.Tensor], k: int) -> torch.Tensor:
    """B_k = <T, the ring without core k>: shape (r_{k-1}, M_k, r_k), the right side of core k's normal equations."""
    d = len(cores)
    others = [j for j in range(d) if j != k]
    eq = ",".join([_MODE[:d]] + [_term(j, d) for j in others]) + "->" + _term(k, d)
    ops = [T] + [cores[j] for j in others]
    return _expression(eq, tuple(tuple(o.shape) for o in ops))(*ops, backend="torch")


def _gram(cores: list[torch.Tensor], k: int) -> torch.Tensor:
    """The Gram matrix of the ring without core k, ((r_{k-1} r_k) x (r_{k-1} r_k)), from transfer matrices."""
    d = len(cores)
    r_left, r_right = cores[k].shape[0], cores[k].shape[2]
    env = None
    for t in range(1, d):
        c = cores[(k + t) % d]
        e = torch.einsum("amb,cmd->acbd", c, c).reshape(c.shape[0] ** 2, c.shape[2] ** 2)
        env = e if env is None else env @ e
    # env[(b, b'), (a, a')] with b on bond k and a on bond k-1; the core's unknowns are ordered (a, b)
    return env.reshape(r_right, r_right, r_left, r_left).permute(2, 0, 3, 1).reshape(r_left * r_right, -1)


def _solve(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Core (r_{k-1}, M_k, r_k) minimising the error given Gram ``A`` and projection ``B``: a pseudo-inverse
    solve (the Gram matrix is singular when a bond is larger than the others need)."""
    r0, m, r1 = B.shape
    w, V = torch.linalg.eigh(A)
    keep = w > w.max() * 1e-13 if w.numel() and w.max() > 0 else torch.zeros_like(w, dtype=torch.bool)
    inv = (V[:, keep] / w[keep]) @ V[:, keep].T
    rhs = B.permute(1, 0, 2).reshape(m, r0 * r1)
    return (rhs @ inv).reshape(m, r0, r1).permute(1, 0, 2).contiguous()


def _dense(cores: list[torch.Tensor]) -> torch.Tensor:
    d = len(cores)
    if d == 1:
        return torch.diagonal(cores[0], dim1=0, dim2=2).sum(-1)
    eq = ",".join(_term(k, d) for k in range(d)) + "->" + _MODE[:d]
    return _expression(eq, tuple(tuple(c.shape) for c in cores))(*cores, backend="torch")


def _error(T: torch.Tensor, cores, norm: float) -> float:
    return float(torch.linalg.norm(T - _dense(cores))) / norm if norm > 0 else 0.0


def _gradient_norm(T: torch.Tensor, cores, norm: float) -> float:
    """||gradient of 0.5 ||T - M||^2 over all cores|| / ||T||^2: per core, C A - B."""
    total = 0.0
    for k in range(len(cores)):
        A, B = _gram(cores, k), _project(T, cores, k)
        r0, m, r1 = cores[k].shape
        g = cores[k].permute(1, 0, 2).reshape(m, r0 * r1) @ A - B.permute(1, 0, 2).reshape(m, r0 * r1)
        total += float(g.pow(2).sum())
    return math.sqrt(total) / norm**2 if norm > 0 else 0.0


def _als(T, cores, norm, err, max_iter, tol, hooks):
    """ALS sweeps from ``cores``; returns (best cores, errors per sweep (never increasing), sweeps run,
    stopped). ``hooks.stop()`` is polled before each sweep, ``hooks.done(error)`` called after it."""
    errors, best = [err], [c.clone() for c in cores]
    it = 0
    while it < max_iter and errors[-1] > 1e-13:
        if hooks.stop():
            return best, errors, it, True
        for k in range(len(cores)):
            cores[k] = _solve(_gram(cores, k), _project(T, cores, k))
        it += 1
        e = _error(T, cores, norm)
        if e < errors[-1]:
            best = [c.clone() for c in cores]
        errors.append(min(e, errors[-1]))
        hooks.done(e)
        if errors[-2] - errors[-1] <= tol * errors[-2]:
            break
    return best, errors, it, False


class _Hooks:
    """The caller's ``progress`` and ``should_stop``, with the sweep count over all starts."""

    def __init__(self, progress, should_stop):
        for name, fn in (("progress", progress), ("should_stop", should_stop)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a callable or None, got {fn!r}")
        self.progress, self.should_stop, self.total = progress, should_stop, 0

    def stop(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def done(self, error: float) -> None:
        self.total += 1
        if self.progress is not None:
            self.progress(self.total, error)


def _run_starts(Tt, starts, norm, max_iter, tol, hooks, sweep_budget=None):
    """Every start in turn (until one is at numerical precision, ``should_stop``, or the sweeps of all
    starts together reach ``sweep_budget``): kinds, final errors, runs (with each run's sweep cap)."""
    kinds, finals, runs = [], [], []
    for kind, cores, grown in starts:
        cap = max_iter if sweep_budget is None else min(max_iter, sweep_budget - hooks.total)
        if runs and cap <= 0:
            break
        best, errors, it, stopped = _als(Tt, cores, norm, _error(Tt, cores, norm), max(cap, 0), tol, hooks)
        kinds.append(kind)
        finals.append(errors[-1])
        runs.append((best, errors, it, grown, stopped, cap))
        if finals[-1] < AT_PRECISION or stopped:
            break
    return kinds, finals, runs


def _random_start(shapes, norm: float, rng: np.random.Generator) -> list[torch.Tensor]:
    """Gaussian cores rescaled so the ring they give has the target's norm."""
    cores = [torch.from_numpy(rng.standard_normal(shape)) for shape in shapes]
    got = float(torch.linalg.norm(_dense(cores)))
    s = (norm / got) ** (1.0 / len(cores)) if got > 0 and norm > 0 else 1.0
    return [c * s for c in cores]


def _starts(T: np.ndarray, ranks, restarts: int, rng: np.random.Generator, only_first: bool):
    """(kind, cores) of every start, in the order they run: TR-SVD from each core, then random."""
    d = T.ndim
    out = []
    for m in range(1 if only_first else d):
        svd = tr_svd(T, ranks, first=None if m == 0 else m)
        grown = any(c.shape[2] < r for c, r in zip(svd, ranks))
        cores = [torch.from_numpy(c) for c in grow_bonds(svd, ranks, rng)]
        out.append((f"tr-svd@{m + 1}" if m else "tr-svd", cores, grown))
    norm = float(np.linalg.norm(T))
    shapes = [(ranks[k - 1], T.shape[k], ranks[k]) for k in range(d)]
    out += [("random", _random_start(shapes, norm, rng), False) for _ in range(0 if only_first else restarts)]
    return out


def _check_work(max_iter, restarts, max_starts, sweep_budget) -> None:
    """ValueError naming the first bad work setting of :func:`fit_tr`."""
    def bad(v, least):
        return isinstance(v, bool) or not isinstance(v, Integral) or v < least

    if bad(max_iter, 0):
        raise ValueError(f"max_iter must be an integer >= 0 (0: TR-SVD alone), got {max_iter!r}")
    if bad(restarts, 0):
        raise ValueError(f"restarts must be an integer >= 0, got {restarts!r}")
    for name, value in (("max_starts", max_starts), ("sweep_budget", sweep_budget)):
        if value is not None and bad(value, 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def fit_tr(W, in_modes, out_modes, ranks, *, max_iter: int = 200, tol: float = 1e-6, gtol: float = 1e-5,
           restarts: int = 3, max_starts: int | None = None, sweep_budget: int | None = None,
           seed: int | None = 0, dtype=None, warn: bool = True,
           progress: Callable[[int, float], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> tuple[TRMatrix, FitInfo]:
    """TR-matrix fit: TR-SVD of the interleaved tensor, then ALS sweeps over the cores, from several starts.

    ALS on a ring has poor local minima (a random rank-2 ring of 8 x 8 x 8 from one start stalls at
    25% error in one case in three), so the starts are run in turn and the lowest error is kept:
    TR-SVD (tensorly's ``tensor_ring``) from the first core whose bonds fit, TR-SVD from each other
    core, then ``restarts`` random rings; the loop ends early once a run is at numerical precision.

    Parameters
    ----------
    W : torch.Tensor or array, shape (I, J)
        The matrix (y = x @ W).
    in_modes, out_modes : sequence of int
        I_1..I_d and J_1..J_d.
    ranks : int or sequence of int
        One int for all d bonds, the d bond ranks (the last closes the ring), or d+1 with r_0 = r_d.
        Ranks the ring cannot use are capped (:func:`cap_tr_ranks`; ``info.notes``, and a warning
        unless ``warn=False``).
    max_iter : int
        ALS sweeps at most per start (0: TR-SVD alone, method "TR-SVD", one start).
    tol : float
        A run stops when one sweep lowers its relative error by less than ``tol`` times itself.
    gtol : float
        "converged" needs the gradient norm of 0.5 ||W - M||^2 below ``gtol * ||W||^2`` (or the
        error at numerical precision); otherwise "stalled", or "max_iter" when the sweeps ran out
        while the error still fell by more than 1% over the last 10.
    restarts : int
        Random starts after the TR-SVD ones.
    max_starts : int or None
        Run at most this many starts (the first ones of the order above; None: all d + ``restarts``).
    sweep_budget : int or None
        ALS sweeps of all starts together at most (None: ``max_iter`` per start); with ``max_starts``
        it bounds a fit where every start would run to its stopping rule (no ring structure).
    seed : int or None
        Seed of the random starts and of the slices added where TR-SVD returned a smaller bond than
        asked (zero on one side, so such a start's error is TR-SVD's).
    dtype : torch.dtype, optional
        Of the result; default float32 for a float32 W, else float64 (the fit runs in float64).
    progress : callable(iteration, rel_error), optional
        Called after every ALS sweep; ``iteration`` counts sweeps over all starts.
    should_stop : callable() -> bool, optional
        Polled before every sweep; when it returns True the best result so far is returned with
        ``info.status == "stopped"``.

    Returns
    -------
    (TRMatrix, FitInfo)
        ``info.errors`` are the kept run's errors per sweep (``errors[0]`` its start's, explicit
        residuals); ``info.start_kinds`` / ``start_errors`` / ``chosen_start`` describe the starts.
    """
    t0 = time.perf_counter()
    _check_work(max_iter, restarts, max_starts, sweep_budget)
    tol, gtol, seed = check_nonneg(tol, "tol"), check_nonneg(gtol, "gtol"), check_seed(seed)
    out_dtype = check_dtype(dtype) or (torch.float32 if getattr(W, "dtype", None) in (torch.float32, np.float32)
                                       else torch.float64)
    im, om = pair_modes(in_modes, out_modes)
    requested = normalize_tr_ranks(ranks, len(im))
    rk, notes = cap_tr_ranks(im, om, ranks)
    if notes and warn:
        warnings.warn("; ".join(notes), UserWarning, stacklevel=2)
    a = check_dense(W, im, om)
    check_allocation(8 * 4 * a.size, f"fitting a TR-matrix to a {a.shape[0]:,} x {a.shape[1]:,} matrix",
                     "use a smaller matrix")
    scale = float(np.abs(a).max()) if a.size else 0.0
    T = interleaved(a / scale if scale > 0 else a, im, om)
    norm, Tt = float(np.linalg.norm(T)), torch.from_numpy(T)
    hooks = _Hooks(progress, should_stop)
    starts = _starts(T, rk, restarts, np.random.default_rng(seed), max_iter == 0)[:max_starts]
    kinds, finals, runs = _run_starts(Tt, starts, norm, max_iter, tol, hooks, sweep_budget)
    total = hooks.total
    chosen = int(np.argmin(finals))
    best, errors, it, grown, _, cap = runs[chosen]
    if grown:
        notes.append("TR-SVD returned smaller bonds than asked; the start was grown to the asked ranks with slices "
                     "that do not change it")
    err = errors[-1]
    at_precision = err < AT_PRECISION
    grad = math.nan if at_precision or it == 0 else _gradient_norm(Tt, best, norm)
    if runs[-1][4] and not at_precision:
        status = reason = "stopped"
    elif it == 0 or at_precision or grad < gtol:
        status = "converged"
        reason = "direct" if it == 0 else ("at numerical precision" if at_precision else "first-order")
    elif it >= cap and len(errors) > 10 and errors[-1] < 0.99 * errors[-11]:
        status = reason = "max_iter"
    else:
        status = reason = "stalled"
    out = [c * scale if k == 0 and scale > 0 else c for k, c in enumerate(best)]
    M = TRMatrix([c.reshape(c.shape[0], i, j, c.shape[2]).to(out_dtype) for c, i, j in zip(out, im, om)])
    info = FitInfo(format="TR", method="TR-SVD+ALS" if total else "TR-SVD", relative_error=err, errors=errors,
                   iterations=it, total_iterations=total, seconds=time.perf_counter() - t0,
                   converged=status == "converged", reason=reason, status=status, at_precision=at_precision,
                   ranks=rk, blocks=None, params=M.num_params, requested_ranks=requested, notes=notes,
                   start_kinds=kinds, start_errors=finals, chosen_start=chosen,
                   phases=[("ALS", 0, it)] if it else [], grad_norm=grad, spec=M.spec)
    return M, info
