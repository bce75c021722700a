"""The contraction schemes for ``y = x @ W``, one module each, and the registry the planner reads.

* :mod:`~btcore.contract.schemes.path`: the FLOP-optimal pairwise order, one einsum per step;
* :mod:`~btcore.contract.schemes.chain`: a BT matrix one mode at a time, every step a GEMM on views;
* :mod:`~btcore.contract.schemes.fold`: a GEMM-shaped order folding the core and some factors into G;
* :mod:`~btcore.contract.schemes.ring`: a Tensor Ring core by core, its closing bond carried in front;
* :mod:`~btcore.contract.schemes.dense`: reconstruct W, then one GEMM.

Each module defines one :class:`~btcore.contract.schemes.base.Scheme` object (plans, run, forward,
backward, cost, and its ``order`` among the candidates). The registry collects every module of this
package, so adding a scheme is one new module here; nothing else names a scheme (the planner,
``matmul`` and the autograd Function look schemes up here).
"""

from __future__ import annotations

import importlib
import pkgutil

from ...formats import DenseSpec
from ...plan import ContractionPlan, optimal_plan
from .base import Scheme

__all__ = ["SCHEMES", "scheme_of", "candidates"]



def _discover() -> dict[str, Scheme]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            module = importlib.import_module(f"{__name__}.{info.name}")
            found += [v for v in vars(module).values() if isinstance(v, Scheme)]
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


#: The registry: every scheme by name, in the order the planner lists (and breaks ties among) candidates.
SCHEMES: dict[str, Scheme] = _discover()


def scheme_of(plan: ContractionPlan) -> Scheme:
    """The scheme object that runs ``plan``."""
    return SCHEMES[plan.scheme]


def candidates(spec, batch: int, method: str) -> list[ContractionPlan]:
    """The plans of every scheme that ``method`` admits ("contract": W never formed; "dense"; "auto":
    all; "path": the opt_einsum paths only). A dense spec has one plan whatever the method: its GEMM."""
    if isinstance(spec, DenseSpec):
        return [optimal_plan(spec, batch)]
    return [p for s in SCHEMES.values() if method in s.methods for p in s.plans(spec, batch)]
