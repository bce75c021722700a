"""Format specifications and the one registry of formats, :data:`FORMATS`.

One module per format, each a spec class on :class:`~btcore.formats.base.FormatSpec` (exact counts,
validation, its tensor network): :mod:`~btcore.formats.dense`, :mod:`~btcore.formats.tt`,
:mod:`~btcore.formats.bt` (Tucker and CP are BT cases) and :mod:`~btcore.formats.tr` (Tensor Ring).
The registry says, per format key, what its spec is, which rank controls build it and how large a
uniform rank may be; everything in btcore that lists formats iterates it. The containers
(:class:`btcore.BTMatrix`, ...) and layers (:class:`btcore.BTLinear`, ...) live above this package
and are listed by the same keys in :data:`btcore.matrices.CONTAINERS` and :data:`btcore.layers.LAYERS`.

Adding a format: a module here with its spec, its entry in :data:`FORMATS`, a container and a layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..memory import DEFAULT_MAX_BYTES
from ..shapes import MAX_ORDER, check_choice
from .base import FormatSpec, Network, normalize_ranks
from .bt import BTSpec, bt_params, cp_params, cp_spec, tucker_params, tucker_spec
from .dense import DenseSpec, dense_params
from .tr import (TRSpec, normalize_tr_ranks, tr_exact_ranks, tr_max_uniform_rank, tr_params, tr_rank_caps,
                 tr_universal_ranks)
from .tt import TTSpec, tt_params, tt_rank_caps

__all__ = [
    "Format", "FORMATS", "RANK_CONTROLS", "MAX_ORDER", "format_of", "spec_for",
    "Network", "FormatSpec", "DenseSpec", "TTSpec", "BTSpec", "TRSpec", "tucker_spec", "cp_spec",
    "dense_params", "tt_params", "bt_params", "tucker_params", "cp_params", "tr_params",
    "describe", "summary_row", "max_uniform_rank", "normalize_ranks", "tt_rank_caps", "param_sweep",
    "normalize_tr_ranks", "tr_rank_caps", "tr_universal_ranks", "tr_exact_ranks", "tr_max_uniform_rank",
]


@dataclass(frozen=True)
class Format:
    """One entry of :data:`FORMATS`.

    Attributes
    ----------
    key : str
        The registry key and the ``kind`` argument of layers, cells and configs (``"tt"``).
    label : str
        The name shown to people (``"TT"``).
    spec : type
        The spec class (a :class:`FormatSpec`).
    controls : tuple of str
        The rank controls that build a spec, in :func:`spec_for`'s keyword names (``("tt_ranks",)``).
    build : callable
        ``build(in_modes, out_modes, **controls) -> spec`` with exactly :attr:`controls` as keywords.
    factorized : bool
        False for the dense reference (its order d is free; no ranks).
    sweep_order : int
        The least order d at which :func:`param_sweep` lists the format (2 where d = 1 has no bond).
    """

    key: str
    label: str
    spec: type
    controls: tuple[str, ...]
    build: Callable
    factorized: bool = True
    sweep_order: int = 1

    def _own(self, controls: dict) -> dict:
        unknown = sorted(set(controls) - set(RANK_CONTROLS))
        if unknown:
            raise ValueError(f"unknown rank control(s) {unknown}; the controls are {list(RANK_CONTROLS)}")
        return {k: v for k, v in controls.items() if k in self.controls}

    def spec_for(self, in_modes, out_modes, *, max_bytes=DEFAULT_MAX_BYTES, **controls) -> FormatSpec:
        """This format's spec from rank controls (:data:`RANK_CONTROLS`; other formats' controls are ignored,
        unknown names refused, missing ones take the defaults there)."""
        return self.build(in_modes, out_modes, max_bytes=max_bytes, **self._own(controls))

    def params(self, in_modes, out_modes, **controls) -> int:
        """Exact parameter count of :meth:`spec_for`, without the byte limit."""
        return self.spec_for(in_modes, out_modes, max_bytes=None, **controls).params

    def max_uniform_rank(self, in_modes, out_modes) -> int:
        """Largest uniform rank valid on every mode or bond (0 for the dense format, which has none)."""
        return self.spec.max_uniform_rank(in_modes, out_modes) if self.factorized else 0


# MAX_ORDER (from btcore.shapes) is the largest order d every spec accepts; listed here with the formats.

#: Every rank control a format may take, with the defaults layers and cells use.
RANK_CONTROLS = {"rank": 4, "blocks": 1, "tt_ranks": 4, "tr_ranks": 4}

#: The registry: every format by key, in the order tables and pickers list them.
FORMATS: dict[str, Format] = {f.key: f for f in (
    Format("dense", "Dense", DenseSpec, (), lambda i, o, max_bytes=None: DenseSpec(i, o), factorized=False),
    Format("tt", "TT", TTSpec, ("tt_ranks",), lambda i, o, tt_ranks=4, **kw: TTSpec(i, o, tt_ranks, **kw),
           sweep_order=2),
    Format("bt", "BT", BTSpec, ("rank", "blocks"), lambda i, o, rank=4, blocks=1, **kw: BTSpec(i, o, rank, blocks,
                                                                                          **kw)),
    Format("tr", "TR", TRSpec, ("tr_ranks",), lambda i, o, tr_ranks=4, **kw: TRSpec(i, o, tr_ranks, **kw),
           sweep_order=2),
)}


def format_of(key: str) -> Format:
    """The registry entry of ``key`` (``ValueError`` naming the known keys otherwise)."""
    return FORMATS[check_choice(key, tuple(FORMATS), "kind")]


def spec_for(key: str, in_modes, out_modes, **controls) -> FormatSpec:
    """The spec of format ``key`` from the rank controls (:data:`RANK_CONTROLS`; others' are ignored)."""
    return format_of(key).spec_for(in_modes, out_modes, **controls)


def describe(spec) -> str:
    """Short human description of a spec's ranks: ``'R=4, N=2'``, ``'ranks 1-4-4-4-1'``, ``'full'``."""
    return spec.describe_ranks()


def summary_row(spec, batch: int = 1, dtype: torch.dtype | str = torch.float32) -> dict:
    """One row of the formats table: parameters, compression, multiply-adds and memory.

    ``macs_per_sample`` is for the FLOP-optimal path at ``batch`` (a pure function of the spec); memory is in bytes of
    ``dtype`` (parameters, and the largest intermediate of a forward pass over ``batch`` rows).
    """
    mem = spec.memory(dtype, batch)
    return {
        "format": spec.kind,
        "ranks": describe(spec),
        "params": spec.params,
        "compression": spec.compression,
        "macs_per_sample": spec.macs(batch),
        "param_bytes": mem["params"],
        "intermediate_bytes": mem["largest_intermediate"],
    }


def max_uniform_rank(in_modes, out_modes, kind: str) -> int:
    """Largest rank valid on every mode (BT) or bond (TT, TR) for a uniform-rank sweep; ``kind`` a key of
    :data:`FORMATS` other than ``"dense"``."""
    fmt = format_of(kind)
    if not fmt.factorized:
        raise ValueError(f"kind: the {fmt.label} format has no rank; choose one of "
                         f"{[k for k, f in FORMATS.items() if f.factorized]}")
    return fmt.max_uniform_rank(in_modes, out_modes)


def param_sweep(in_modes, out_modes, ranks: Sequence[int], blocks: Sequence[int] = (1, 2, 4, 8)) -> list[dict]:
    """Parameter counts over uniform ranks: one row per (format, blocks, rank) that is valid.

    Rows: ``{"format": label ("TT", "BT", "TR"), "blocks": N (None but for BT), "rank": r, "params": p}``,
    for every factorized format of :data:`FORMATS`. Ranks above what a mode or bond allows are
    skipped, as the specs would reject them; TT and TR need d >= 2 (with d = 1 they have no bond).
    """
    rows = []
    for fmt in FORMATS.values():
        if not fmt.factorized or len(in_modes) < fmt.sweep_order:
            continue
        cap = fmt.max_uniform_rank(in_modes, out_modes)
        for r in ranks:
            if r > cap:
                continue
            for n in (blocks if "blocks" in fmt.controls else (None,)):
                controls = {c: r for c in fmt.controls if c != "blocks"} | ({"blocks": n} if n else {})
                rows.append({"format": fmt.label, "blocks": n, "rank": r,
                             "params": fmt.params(in_modes, out_modes, **controls)})
    return rows
