"""The Shapes page's parameter formulas as LaTeX, filled in with the configuration's own numbers.

Pure functions of specs (the counts are the specs' own ``params``), unit-tested without a UI.
"""

from __future__ import annotations

__all__ = ["tex_int", "bt_formula", "tt_formula", "tr_formula", "dense_formula", "formulas"]


def tex_int(n: int) -> str:
    """``58982400`` -> ``58{,}982{,}400`` (a thousands comma LaTeX does not space as a list comma)."""
    return f"{int(n):,}".replace(",", "{,}")


def _split(d: int) -> str:
    # Long sums wrap onto a second line (aligned), so the result is never clipped at large d.
    return " \\\\ &= " if d > 4 else " = "


def bt_formula(spec) -> str:
    """P_BT = N (sum_k I_k J_k R_k + prod_k R_k) with the spec's numbers."""
    terms = " + ".join(f"{i}\\cdot{j}\\cdot{r}" for i, j, r in zip(spec.in_modes, spec.out_modes, spec.ranks))
    core = "\\cdot".join(map(str, spec.ranks))
    return (r"\begin{aligned} P_{\mathrm{BT}} &= N\Big(\sum_{k=1}^{d} I_k J_k R_k + \prod_{k=1}^{d} R_k\Big)"
            + _split(spec.d) + f"{spec.blocks}\\,({terms} + {core}) \\\\ &= {tex_int(spec.params)} \\end{{aligned}}")


def _chain_terms(spec, ranks) -> str:
    # core k is r_{k-1} x I_k x J_k x r_k; ranks[k] is the bond on core k's left
    return " + ".join(f"{ranks[k]}\\cdot{i}\\cdot{j}\\cdot{ranks[k + 1]}"
                      for k, (i, j) in enumerate(zip(spec.in_modes, spec.out_modes)))


def tt_formula(spec) -> str:
    """P_TT = sum_k r_{k-1} I_k J_k r_k with r_0 = r_d = 1, with the spec's numbers."""
    return (r"\begin{aligned} P_{\mathrm{TT}} &= \sum_{k=1}^{d} r_{k-1} I_k J_k r_k" + _split(spec.d)
            + f"{_chain_terms(spec, spec.ranks)} \\\\ &= {tex_int(spec.params)} \\end{{aligned}}")


def tr_formula(spec) -> str:
    """P_TR = sum_k r_{k-1} I_k J_k r_k with r_0 = r_d (the closing bond), with the spec's numbers."""
    ranks = (spec.ranks[-1], *spec.ranks)  # r_0 = r_d: core 1's left bond is the ring's closing one
    return (r"\begin{aligned} P_{\mathrm{TR}} &= \sum_{k=1}^{d} r_{k-1} I_k J_k r_k,\ r_0 = r_d" + _split(spec.d)
            + f"{_chain_terms(spec, ranks)} \\\\ &= {tex_int(spec.params)} \\end{{aligned}}")


def dense_formula(spec) -> str:
    """P_dense = I J with the spec's numbers."""
    return (r"P_{\mathrm{dense}} = I \cdot J = " + f"{tex_int(spec.in_size)} \\cdot {tex_int(spec.out_size)} = "
            f"{tex_int(spec.params)}")


_BY_KIND = {"BT": bt_formula, "TT": tt_formula, "TR": tr_formula, "Dense": dense_formula}


def formulas(specs) -> list[str]:
    """The formula of each spec that has one (Dense, TT, BT, TR; Tucker and CP are BT's cases), BT first."""
    order = ("BT", "TT", "TR", "Dense")
    first = {}
    for spec in specs:
        first.setdefault(spec.kind, spec)
    return [_BY_KIND[k](first[k]) for k in order if k in first]
