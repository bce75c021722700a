"""Compress a trained model: its dense maps replaced by TT, BT or TR layers fitted to the trained weights.

:func:`compress` replaces the input-to-hidden maps of a BT Lab model (a
:class:`~btcore.classifier.SequenceClassifier`, or any module holding BT Lab LSTM/GRU cells) or,
in a model without such cells, every ``nn.Linear`` whose sizes factor into ``d`` modes. Each new
layer starts from a fit of the trained weight (:meth:`~btcore.layers.BTLinear.from_linear`:
``fit_bt``; :meth:`~btcore.layers.TTLinear.from_linear`: TT-SVD; :meth:`~btcore.layers.TRLinear.from_linear`:
``fit_tr``, TR-SVD refined by ALS), so it begins near the trained
network and can be fine-tuned. The ranks are given (``rank``, ``blocks``) or chosen to fill a
parameter budget per layer (:func:`rank_for_budget`). The report says, per layer, the parameters
before and after and the relative Frobenius error of the fit.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

from torch import nn

from .classifier import SequenceClassifier
from .formats import BTSpec, TRSpec, TTSpec, tr_max_uniform_rank, tt_rank_caps
from .layers import BTLinear, TRLinear, TTLinear
from .rnn import folded_out_modes
from .shapes import factorize

__all__ = ["compress", "CompressedLayer", "COMPRESS_FORMATS", "rank_for_budget", "format_ranks", "MAX_SEARCH_RANK"]

#: The formats :func:`compress` fits a trained weight into.
COMPRESS_FORMATS = ("tt", "bt", "tr")
#: The largest uniform rank a budget search tries.
MAX_SEARCH_RANK = 1024


@dataclass(frozen=True)
class CompressedLayer:
    """One replaced layer: its module name, format, ranks, parameters before and after, the fit's relative error."""

    name: str
    format: str
    ranks: tuple
    blocks: int | None
    params_before: int
    params_after: int
    fit_error: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"ranks": list(self.ranks)}


def format_ranks(kind: str, in_modes, out_modes, r: int):
    """Uniform rank ``r`` clamped to what the format allows between the modes (TT: the bond caps; BT: I_k J_k;
    TR: the largest uniform ring rank, :func:`btcore.formats.tr_max_uniform_rank`)."""
    if kind == "tt":
        return tuple(min(r, c) for c in tt_rank_caps(in_modes, out_modes))
    if kind == "bt":
        return tuple(min(r, i * j) for i, j in zip(in_modes, out_modes))
    if kind == "tr":
        return (min(r, tr_max_uniform_rank(in_modes, out_modes)),) * len(in_modes)
    return r


def rank_for_budget(params_of: Callable[[int], int], budget: int, max_rank: int = MAX_SEARCH_RANK) -> int | None:
    """The largest uniform rank ``r`` whose ``params_of(r)`` is at most ``budget`` (None: not even rank 1 fits).

    ``params_of`` raises ``ValueError`` for a rank the format refuses, which ends the search; so
    does a rank that adds no parameters (every bond at its cap). Parameters grow with the rank,
    so the answer also fills the budget as far as the ranks allow: rank ``r + 1`` would pass it.
    """
    best, last = None, -1
    for r in range(1, int(max_rank) + 1):
        try:
            p = params_of(r)
        except ValueError:
            break
        if p > budget or p == last:
            break
        best, last = r, p
    return best


def _spec(kind: str, in_modes, out_modes, rank, blocks):
    if kind == "bt":
        return BTSpec(in_modes, out_modes, rank, blocks)
    if kind == "tr":
        return TRSpec(in_modes, out_modes, rank)
    return TTSpec(in_modes, out_modes, rank)


def _choose(kind, in_modes, out_modes, rank, blocks, budget, where):
    """The (ranks, blocks) of one layer: given, or the largest uniform rank within ``budget``."""
    if budget is None:
        r = rank if not isinstance(rank, int) else format_ranks(kind, in_modes, out_modes, rank)
        _spec(kind, in_modes, out_modes, r, blocks)
        return r
    r = rank_for_budget(lambda k: _spec(kind, in_modes, out_modes, format_ranks(kind, in_modes, out_modes, k),
                                        blocks).params, budget)
    if r is None:
        raise ValueError(f"budget: {where} has no {kind.upper()} form within {budget:,} parameters "
                         f"(rank 1 needs {_spec(kind, in_modes, out_modes, 1, blocks).params:,}); raise the budget")
    return format_ranks(kind, in_modes, out_modes, r)


def _cells(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "input_map") and hasattr(m, "hidden_modes")
            and hasattr(m, "gates") and isinstance(getattr(m, "input_map", None), nn.Module)]


def _fit(kind, linear: nn.Linear, in_modes, out_modes, ranks, blocks, seed, fit_kwargs):
    if kind == "bt":
        return BTLinear.from_linear(linear, in_modes, out_modes, ranks, blocks, seed=seed, **fit_kwargs)
    if kind == "tr":
        return TRLinear.from_linear(linear, in_modes, out_modes, ranks, seed=seed, **fit_kwargs)
    return TTLinear.from_linear(linear, in_modes, out_modes, ranks, **fit_kwargs)


def compress(model: nn.Module, format: str = "bt", *, rank=None, blocks: int | None = None, budget: int | None = None,
             d: int = 4, seed: int = 0, **fit_kwargs) -> tuple[nn.Module, list[CompressedLayer]]:
    """A copy of ``model`` whose dense maps are TT, BT or TR layers fitted to their trained weights, and the report.

    Parameters
    ----------
    model : nn.Module
        A trained model; left unchanged.
    format : "bt", "tt" or "tr"
    rank : int or tuple, optional
        BT Tucker rank R / TT ranks / TR bond ranks (the last closes the ring); ``None`` with no
        ``budget``: full rank (an exact copy; TR: :func:`btcore.formats.tr_exact_ranks`).
    blocks : int, optional
        BT blocks N (default 1; with a budget, the ranks fill it at this N).
    budget : int, optional
        Most parameters per replaced weight (bias excluded): the largest uniform rank within it.
    d : int
        Modes per side for a plain ``nn.Linear`` (cells keep their own modes).
    seed : int
        Seed of the BT and TR fits; ``fit_kwargs`` go to the fit (:func:`btcore.decompose.fit_bt` / ``fit_tt`` /
        ``fit_tr``).

    Returns
    -------
    (nn.Module, list of CompressedLayer)
        In a BT Lab model the cells' input maps are replaced (a :class:`SequenceClassifier` gets
        the matching ``config``, so it rebuilds and reloads like one trained in that format);
        otherwise every ``nn.Linear`` whose in and out sizes both factor into ``d`` modes > 1.
    """
    if format not in COMPRESS_FORMATS:
        raise ValueError(f"format must be one of {', '.join(COMPRESS_FORMATS)}, got {format!r}")
    if rank is not None and budget is not None:
        raise ValueError("give rank (and blocks) or a budget, not both")
    if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget < 1):
        raise ValueError(f"budget must be a positive whole number of parameters, got {budget!r}")
    blocks = 1 if blocks is None else int(blocks)
    new = copy.deepcopy(model)
    report: list[CompressedLayer] = []
    cells = _cells(new)
    targets = []  # (name, parent, attribute, linear, in_modes, out_modes)
    if cells:
        for name, cell in cells:
            if isinstance(cell.input_map, nn.Linear):
                targets.append((f"{name}.input_map" if name else "input_map", cell, "input_map", cell.input_map,
                                tuple(cell.in_modes), folded_out_modes(cell.hidden_modes, cell.gates)))
    else:
        for name, parent in list(new.named_modules()):
            for attr, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    modes = _linear_modes(child, d)
                    if modes is not None:
                        targets.append((f"{name}.{attr}" if name else attr, parent, attr, child, *modes))
    if not targets:
        raise ValueError("compress: the model has no dense input map and no nn.Linear whose sizes factor into "
                         f"{d} modes; nothing to compress")
    for name, parent, attr, linear, in_modes, out_modes in targets:
        ranks = _choose(format, in_modes, out_modes, rank, blocks, budget, name) if (rank is not None or budget) \
            else None
        layer = _fit(format, linear, in_modes, out_modes, ranks, blocks, seed, fit_kwargs)
        setattr(parent, attr, layer)
        if hasattr(parent, "kind") and attr == "input_map":
            parent.kind = format
        report.append(CompressedLayer(name, format, tuple(layer.spec.ranks), layer.spec.blocks if format == "bt"
                                      else None, linear.weight.numel(), layer.spec.params,
                                      float(layer.fit_info.relative_error)))
    if isinstance(new, SequenceClassifier):
        m = new.input_map
        if format == "tt":
            fields = {"kind": format, "tt_ranks": tuple(m.spec.ranks[1:-1])}
        elif format == "tr":
            fields = {"kind": format, "tr_ranks": tuple(m.spec.ranks)}
        else:
            fields = {"kind": format, "rank": tuple(m.spec.ranks), "blocks": m.spec.blocks}
        new.config = dataclasses.replace(new.config, **fields)
    return new, report


def _linear_modes(linear: nn.Linear, d: int):
    """``(in_modes, out_modes)`` of ``d`` balanced modes, each above 1, or None when a size does not factor so."""
    try:
        i, o = factorize(linear.in_features, d), factorize(linear.out_features, d)
    except ValueError:
        return None
    return (i, o) if min(i + o) > 1 else None
