"""Data for the Learn page: pure functions over ``btcore`` specs and plans (no Streamlit, no plotting).

Every count here comes from ``btcore`` (specs, ``bt_params``, ``plan_matmul``, ``factorize``); this
module only arranges those numbers into rows the page and the figure builders display.
"""

from __future__ import annotations

from dataclasses import dataclass

import btcore
from app.config import PRESETS, UCF11_LSTM_PRESET
from app.frame import Field
from btcore.shapes import prod

__all__ = [
    "FORMATS", "build_specs", "index_meanings", "indexed_shape", "uses_x", "walkthrough_rows", "step_sentence", "shape_text",
    "SECTIONS", "SPECIAL_CASES", "section_title", "examples_for", "page_fields", "bt_breakdown", "budget_pairs", "growth_rows", "ucf11_example", "ucf11_rows", "ucf11_text", "recurrent_text", "TensorizationGrid", "tensorization_grid",
    "TEACHING_EXAMPLES", "sub", "LABELS", "ring_growth_rows", "diagram_formulas", "ring_growth_text",
    "DIAGRAMS_TEXT",
]

#: The formats of the walkthrough, in display order (the registry's factorized formats, BT first as the
#: page's subject, then the dense reference), each with its registry key (:data:`btcore.formats.FORMATS`).
FORMATS = {fmt.label: key for key, fmt in sorted(
    btcore.formats.FORMATS.items(), key=lambda kv: (not kv[1].factorized, kv[0] != "bt"))}

#: The formats' names in full.
LABELS = {"BT": "Block-Term", "TT": "Tensor-Train", "TR": "Tensor Ring", "Dense": "Dense (for comparison)"}

#: Small tensorizations for the colour-coded example (I modes, J modes).
TEACHING_EXAMPLES = {
    "16 x 16 as 4x4 -> 4x4": ((4, 4), (4, 4)),
    "8 x 8 as 2x2x2 -> 2x2x2": ((2, 2, 2), (2, 2, 2)),
    "12 x 6 as 4x3 -> 2x3": ((4, 3), (2, 3)),
}

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def sub(k: int) -> str:
    """Unicode subscript digits: ``sub(12) == '₁₂'``."""
    return str(k).translate(_SUB)


def shape_text(shape) -> str:
    """``(16, 8, 20)`` -> ``'16 × 8 × 20'`` (the form the walkthrough table shows)."""
    return " × ".join(str(int(s)) for s in shape)


def build_specs(cfg) -> tuple[dict, dict]:
    """The spec of every format of :data:`FORMATS` for a LabConfig, each built separately.

    Returns ``(specs, errors)``: ``specs[name]`` is the spec or is missing, ``errors[name]`` the
    ``ValueError`` message of a format the configuration does not allow.
    """
    specs, errors = {}, {}
    for name, key in FORMATS.items():
        try:
            specs[name] = cfg.spec(key)
        except ValueError as exc:
            errors[name] = str(exc)
    return specs, errors


def index_meanings(spec, batch: int) -> dict[str, tuple[str, int]]:
    """What each einsum letter of ``spec.network()`` stands for: ``{letter: (meaning, size)}``.

    Read off the network: ``x``'s first index is the batch, its others the row modes i_k; the output
    modes are the column modes j_k; a BT factor's last index is its Tucker rank R_k and a leading
    extra index the block n; a TT core's last index (all but the last core) is the bond r_k, and a
    TR core's last index is the bond r_k, the last one r_d = r_0 closing the ring.
    """
    net = spec.network()
    sizes = dict(net.sizes)
    out: dict[str, tuple[str, int]] = {net.terms[0][0]: ("batch b", batch)}
    for k, c in enumerate(net.in_indices, 1):
        out[c] = (f"row mode i{sub(k)}", sizes[c])
    for k, c in enumerate(net.out_indices, 1):
        out[c] = (f"column mode j{sub(k)}", sizes[c])
    if isinstance(spec, btcore.BTSpec):
        for k, term in enumerate(net.terms[1:1 + spec.d], 1):
            out[term[-1]] = (f"Tucker rank R{sub(k)}", sizes[term[-1]])
            if len(term) == 4:
                out[term[0]] = ("block n", sizes[term[0]])
    elif isinstance(spec, btcore.TTSpec):
        for k, term in enumerate(net.terms[1:spec.d], 1):
            out[term[-1]] = (f"TT bond r{sub(k)}", sizes[term[-1]])
    elif isinstance(spec, btcore.TRSpec):
        for k, term in enumerate(net.terms[1:1 + spec.d], 1):
            closing = f" = r{sub(0)}, closing the ring" if k == spec.d else ""
            out[term[-1]] = (f"TR bond r{sub(k)}{closing}", sizes[term[-1]])
    return out


#: For each step, whether it involves the input x (one home: btcore.plan).
uses_x = btcore.plan.uses_x


def walkthrough_rows(spec, batch: int, dtype_bytes: int | None = None) -> list[dict]:
    """One row per step of the FLOP-optimal plan ``spec.plan(batch)`` (the counts the Shapes page shows).

    ``result shape`` is ``Step.result_shape`` as text, ``multiply-adds`` is ``Step.macs`` (for the
    whole batch), ``result memory`` the float32 bytes of the step's result.
    """
    size = dtype_bytes or btcore.dtype_bytes("float32")
    plan = spec.plan(batch)
    rows = []
    for k, (s, with_x) in enumerate(zip(plan.steps, uses_x(plan.steps)), 1):
        rows.append({
            "step": k,
            "tensors that meet": f"{s.left} · {s.right}",
            "involves x": with_x,
            "einsum": s.equation,
            "summed over": s.summed or "(none)",
            "result": s.result,
            "result shape": shape_text(s.result_shape),
            "result indices": indexed_shape(s.result_indices, s.result_shape),
            "multiply-adds": s.macs,
            "multiply-adds / sample": s.macs / batch,
            "result memory": btcore.format_bytes(s.result_elements * size),
            "result bytes": s.result_elements * size,
        })
    return rows


def indexed_shape(indices: str, shape) -> str:
    """A shape with each size labelled by its index letter, ``b=16 × A=8 × ..`` (``b`` is the batch)."""
    return " × ".join(f"{c}={n:,}" for c, n in zip(indices, shape))


def step_sentence(step, meanings: dict[str, tuple[str, int]], involves_x: bool = True) -> str:
    """A one-paragraph Markdown description of a step: who meets, over what, what comes out."""
    def idx(letters: str) -> str:
        return ", ".join(f"{meanings[c][0]} ({meanings[c][1]:,})" if c in meanings else c for c in letters)

    summed = (f"They are summed over **{idx(step.summed)}**" if step.summed
              else "No index is summed (an outer product)")
    kept = set(step.left_indices) & set(step.right_indices) - set(step.summed)
    shared = f"; the shared index {idx(''.join(sorted(kept)))} is kept, not summed" if kept else ""
    return (
        f"**{step.left}** (shape {shape_text(step.left_shape)}) meets **{step.right}** "
        f"(shape {shape_text(step.right_shape)}). {summed}{shared}. The result **{step.result}** has shape "
        f"**{shape_text(step.result_shape)}**, index by index {indexed_shape(step.result_indices, step.result_shape)}"
        f"{' (b is the batch)' if 'b' in step.result_indices else ''} ({step.result_elements:,} numbers, "
        f"{btcore.format_bytes(step.result_elements * btcore.dtype_bytes('float32'))} in float32), and the step costs "
        f"**{step.macs:,}** multiply-adds: the product of the sizes of every index involved."
        + ("" if involves_x else " This step joins only the format's own tensors, not x: its result is the same "
           "for every input, so its cost does not grow with the batch.")
    )


def bt_breakdown(spec) -> dict[str, int]:
    """A BT spec's parameters split into factors and cores (all N blocks)."""
    factors = sum(prod(s) for s in spec.factor_shapes())
    core = prod(spec.core_shape)
    assert factors + core == spec.params
    return {"factors": factors, "core": core, "params": spec.params}


def budget_pairs(in_modes, out_modes, budget: int, ranks) -> list[dict]:
    """For each Tucker rank R, the most blocks N whose BT format fits in ``budget`` parameters.

    Rows ``{"R", "N", "params", "factors", "core", "per_block"}``; ranks a mode cannot take, or
    whose single block already exceeds the budget, are skipped.
    """
    rows = []
    for r in ranks:
        try:
            per_block = btcore.bt_params(in_modes, out_modes, r, 1)
        except ValueError:
            continue
        n = int(budget) // per_block
        if n < 1:
            continue
        spec = btcore.BTSpec(in_modes, out_modes, r, n, max_bytes=None)
        rows.append({"R": r, "N": n, "per_block": per_block, **bt_breakdown(spec)})
    return rows


def growth_rows(in_size: int, out_size: int, blocks: int, ranks, orders, own=None) -> list[dict]:
    """BT parameters when the same I x J matrix is tensorized into d modes, for each d and R.

    Modes come from ``btcore.factorize`` (balanced), except for the order of ``own`` = (in_modes,
    out_modes), the user's own modes, which are used as they are. Orders that cannot be split, and
    ranks above a mode's size, are skipped. Rows ``{"d", "in_modes", "out_modes", "R", "params",
    "factors", "core", "core_per_block"}``.
    """
    rows = []
    for d in orders:
        try:
            if own is not None and len(own[0]) == d:
                im, om = tuple(own[0]), tuple(own[1])
            else:
                im, om = btcore.factorize(in_size, d), btcore.factorize(out_size, d)
        except ValueError:
            continue
        for r in ranks:
            try:
                spec = btcore.BTSpec(im, om, r, blocks, max_bytes=None)
            except ValueError:
                continue
            b = bt_breakdown(spec)
            rows.append({"d": d, "in_modes": im, "out_modes": om, "R": r, **b,
                         "core_per_block": prod(spec.ranks)})
    return rows


def _tex_int(n) -> str:
    return f"{int(n):,}".replace(",", "{,}")


def diagram_formulas(specs: dict) -> list[str]:
    """The LaTeX of each format's entry of W and its parameter count, for the specs built (by label)."""
    tex = {
        "Dense": r"\text{dense: } y_{j} = \sum_{i} x_{i}\, W_{ij}, \qquad P_{\mathrm{dense}} = IJ = ",
        "TT": r"\text{TT: } W[(i_1..i_d),(j_1..j_d)] = G_1[i_1,j_1]\,G_2[i_2,j_2]\cdots G_d[i_d,j_d], \qquad "
              r"P_{\mathrm{TT}} = \sum_{k=1}^{d} r_{k-1} I_k J_k r_k = ",
        "BT": r"\text{BT: } W[(i_1..i_d),(j_1..j_d)] = \sum_{n=1}^{N} \sum_{r_1..r_d} C_n[r_1..r_d] "
              r"\prod_{k=1}^{d} A_n^{(k)}[i_k, j_k, r_k], \qquad P_{\mathrm{BT}} = N\Big(\sum_{k=1}^{d} I_k J_k R_k + "
              r"\prod_{k=1}^{d} R_k\Big) = ",
        "TR": r"\text{TR: } W[(i_1..i_d),(j_1..j_d)] = \operatorname{tr}\big(G_1[i_1,j_1]\,G_2[i_2,j_2]\cdots "
              r"G_d[i_d,j_d]\big)\ (r_0 = r_d), \qquad P_{\mathrm{TR}} = \sum_{k=1}^{d} r_{k-1} I_k J_k r_k = ",
    }
    return [tex[name] + _tex_int(specs[name].params) for name in ("Dense", "TT", "BT", "TR") if name in specs]


#: How the diagrams read (Markdown with LaTeX), under the formulas.
DIAGRAMS_TEXT = (
    r"**TT** is a chain: each core $G_k$ holds, for every pair $(i_k, j_k)$, an $r_{k-1} \times r_k$ matrix, and "
    r"an entry of W is the product of those d small matrices ($r_0 = r_d = 1$, so the product is a number). "
    r"**TR** (Tensor Ring) closes the chain: the first and last bonds are one index $r_0 = r_d$, and the trace of "
    r"the product of the d matrices is the entry; with $r_0 = r_d = 1$ it is TT. Every TR core carries two real "
    r"bonds, so at the same rank a ring has more parameters than a chain, and no core is special. "
    r"**BT** is a sum of N **Tucker** blocks: in each block a small core $C_n$ ($R_1 \times \dots \times R_d$) is "
    r"joined to d factors $A_n^{(k)}$ of size $(I_k J_k) \times R_k$. The core grows as $R^d$; the factors only "
    "linearly in R."
)


def ring_growth_rows(in_modes, out_modes, ranks) -> list[dict]:
    """TT and TR parameters at each uniform rank r of ``ranks`` (a rank a format refuses is left out).

    Rows ``{"rank", "TT", "TR", "largest TR core"}``; ``TT`` or ``TR`` is None where that format
    refuses the rank. A TR core k holds r_{k-1} I_k J_k r_k numbers: quadratic in the rank.
    """
    rows = []
    for r in ranks:
        row = {"rank": r}
        for label, key in (("TT", "tt"), ("TR", "tr")):
            try:
                spec = btcore.formats.spec_for(key, in_modes, out_modes, tt_ranks=r, tr_ranks=r, max_bytes=None)
            except ValueError:
                spec = None
            row[label] = None if spec is None else spec.params
            if label == "TR":
                row["largest TR core"] = None if spec is None else max(prod(s) for s in spec.core_shapes())
        if row["TT"] is not None or row["TR"] is not None:
            rows.append(row)
    return rows


def ring_growth_text(spec) -> str:
    """How a TR spec's size follows its ranks, with its own numbers (Markdown)."""
    sizes = [prod(s) for s in spec.core_shapes()]
    k = max(range(spec.d), key=sizes.__getitem__)
    r0, r1 = spec.core_shapes()[k][0], spec.core_shapes()[k][-1]
    return (f"A TR core G{sub(k + 1)} holds r{sub(k)} · I{sub(k + 1)} · J{sub(k + 1)} · r{sub(k + 1)} = "
            f"{r0} · {spec.in_modes[k]} · {spec.out_modes[k]} · {r1} = {sizes[k]:,} numbers (your largest core): "
            "quadratic in the ranks, so doubling every rank multiplies the parameters by four, while BT's core "
            "grows as R^d. At the same rank a ring is larger than a chain (TT's end cores have a bond of size 1); "
            f"your TR has {spec.params:,} parameters in all.")


def examples_for(cfg) -> dict:
    """The small matrices section 1 can draw: the user's own W first when it has at most 4,096 entries."""
    examples = dict(TEACHING_EXAMPLES)
    if cfg.in_size * cfg.out_size <= 4096 and cfg.d >= 2:
        examples = {f"your configuration ({cfg.in_size} x {cfg.out_size})": (cfg.in_modes, cfg.out_modes), **examples}
    return examples


def page_fields(cfg, specs: dict, examples: dict) -> tuple:
    """The Learn page's inputs (kept across page switches and in the link), with defaults from ``cfg``."""
    tabs = tuple(step_tabs(specs)) or (LABELS["Dense"],)
    return (
        Field("example", next(iter(examples)), "choice", choices=tuple(examples)),
        Field("grow_d", min(max(cfg.d, 2), 6), "int", 2, 6),
        Field("grow_r", min(cfg.bt_rank if isinstance(cfg.bt_rank, int) else 4, 16), "int", 1, 16),
        Field("grow_n", min(cfg.blocks, 8), "int", 1, 8),
        Field("budget", specs["BT"].params if "BT" in specs else 10_000, "int", 1, 10**9),
        *(Field(f"step_{name}", 1, "int", 1, 64) for name in FORMATS),
        Field("steps_tab", tabs[0], "choice", choices=tabs),
    )


def step_tabs(specs: dict) -> list[str]:
    """The walkthrough's tab labels: one per format that could be built, in :data:`FORMATS` order."""
    return [LABELS[name] for name in FORMATS if name in specs]


#: The Learn page's sections: (anchor, title), for its headers and its table of contents.
SECTIONS = (
    ("tensor", "1. From a matrix to a tensor"),
    ("diagrams", "2. Four tensor networks for the same W"),
    ("steps", "3. Computing y = x W step by step"),
    ("sizes", "4. How the sizes grow"),
    ("cases", "5. Special cases, and what the paper keeps dense"),
)


def section_title(anchor: str) -> str:
    return dict(SECTIONS)[anchor]


#: The bullets of the special-cases section (Markdown with LaTeX), one string per bullet.
SPECIAL_CASES = (
    "**Tucker** is BT with one block (N = 1): one core and d factors.",
    r"**CP** (canonical polyadic) of rank N is BT with R = 1: every core is a single number $c_n$, so W is a "
    r"weighted sum of N Kronecker products of d small $I_k \times J_k$ matrices: "
    r"$W = \sum_n c_n\, a_n^{(1)} \otimes \dots \otimes a_n^{(d)}$.",
    "BT sits between them: for a fixed budget, choose many small blocks or few richer ones.",
    r"A Tucker rank larger than its mode's size $I_k J_k$ adds parameters and no expressive power; `btcore` "
    "rejects it.",
)


def ucf11_example() -> dict:
    """The paper's UCF11 input-to-hidden numbers, computed by btcore from the app's presets."""
    cfg = PRESETS[UCF11_LSTM_PRESET]
    dense = cfg.dense_spec().params
    bt1 = btcore.bt_params(cfg.in_modes, cfg.out_modes, cfg.bt_rank, 1)
    bt2 = btcore.bt_params(cfg.in_modes, cfg.out_modes, cfg.bt_rank, 2)
    tt = btcore.tt_params(cfg.in_modes, cfg.out_modes, cfg.tt_ranks)
    hidden = cfg.out_size // 4
    return {
        "in_modes": cfg.in_modes, "out_modes": cfg.out_modes, "rank": cfg.bt_rank,
        "dense": dense, "bt_n1": bt1, "bt_n2": bt2, "tt": tt,
        "ratio_bt_n2": dense / bt2, "ratio_tt": dense / tt,
        # hidden-to-hidden map of the LSTM: 4 gates, hidden 256 -> 256 x 1,024
        "recurrent": btcore.dense_params(hidden, cfg.out_size), "hidden": hidden,
        "accuracy": {f"{prefix}LSTM": btcore.rnn.PAPER_UCF11_ACCURACY[kind]
                     for kind, prefix in (("dense", ""), ("tt", "TT-"), ("bt", "BT-"))},
    }


def ucf11_rows(u: dict) -> list[dict]:
    """The worked example's table: dense, TT-LSTM and BT-LSTM (N = 1, 2) input maps, from :func:`ucf11_example`."""
    return [
        {"format": "dense LSTM input map", "setting": "57,600 × 1,024", "parameters": u["dense"], "fewer than dense": "1x"},
        {"format": "TT-LSTM", "setting": "ranks 1-4-4-4-1", "parameters": u["tt"], "fewer than dense": f"{u['ratio_tt']:,.1f}x"},
        {"format": "BT-LSTM", "setting": f"R = {u['rank']}, N = 1", "parameters": u["bt_n1"],
         "fewer than dense": f"{u['dense'] / u['bt_n1']:,.1f}x"},
        {"format": "BT-LSTM", "setting": f"R = {u['rank']}, N = 2", "parameters": u["bt_n2"],
         "fewer than dense": f"{u['ratio_bt_n2']:,.1f}x"},
    ]


def ucf11_text(u: dict) -> tuple[str, str]:
    """The Markdown before and after the worked example's table."""
    fmt = lambda m: "x".join(map(str, m))
    acc = u["accuracy"]
    intro = (f"Ye et al. (CVPR 2018) classify UCF11 videos with an LSTM whose input is a raw 160 × 120 × 3 frame: "
             f"57,600 inputs, tensorized as {fmt(u['in_modes'])}. The four gates are stacked into one "
             f"57,600 × 1,024 input-to-hidden matrix, with the factor 4 folded into the first output mode: "
             f"{fmt(u['out_modes'])}.")
    outro = (f"{u['dense']:,} / {u['bt_n2']:,} = {u['ratio_bt_n2']:,.1f}: the paper's “17,388 times fewer parameters” "
             f"(N = 2 is inferred from that ratio). Reported top-1 accuracy on UCF11: LSTM {acc['LSTM']}, TT-LSTM "
             f"{acc['TT-LSTM']}, BT-LSTM {acc['BT-LSTM']}; these are the paper's numbers, not reproduced here.")
    return intro, outro


def recurrent_text(u: dict) -> str:
    """Why both papers keep the hidden-to-hidden weights dense, with the UCF11 numbers."""
    return (f"**Why the recurrent weights stay dense.** An LSTM computes its gates from $x_t W + h_{{t-1}} U$. In the "
            f"paper's setting W is {u['dense']:,} numbers, while U maps the {u['hidden']} hidden units to the 4 gates: "
            f"{u['hidden']} × {u['hidden'] * 4:,} = {u['recurrent']:,}, only {u['recurrent'] / u['dense']:.2%} of W. "
            "Almost all the parameters are in the input map, so both the BT-RNN and the TT-RNN papers decompose only W "
            "and keep U dense.")


@dataclass(frozen=True)
class TensorizationGrid:
    """Index maps of a small tensorized matrix W (I x J).

    ``block[i][j]`` is the first pair index p₁ = i₁·J₁ + j₁ of entry (i, j) (its colour),
    ``inner[i][j]`` the position q of (i₂, j₂, .., i_d, j_d) in the remaining pairs (its label),
    ``rows[i]`` / ``cols[j]`` the multi-indices (i₁..i_d) / (j₁..j_d). The interleaved tensor,
    unfolded with (i₁, j₁) as rows, has entry W[i, j] at row ``block[i][j]``, column ``inner[i][j]``.
    """

    in_modes: tuple[int, ...]
    out_modes: tuple[int, ...]
    rows: list[tuple[int, ...]]
    cols: list[tuple[int, ...]]
    block: list[list[int]]
    inner: list[list[int]]

    @property
    def n_blocks(self) -> int:
        return self.in_modes[0] * self.out_modes[0]

    @property
    def n_inner(self) -> int:
        return prod(i * j for i, j in zip(self.in_modes[1:], self.out_modes[1:]))


def _multi_index(flat: int, modes) -> tuple[int, ...]:
    out = []
    for m in reversed(modes):
        out.append(flat % m)
        flat //= m
    return tuple(reversed(out))


def tensorization_grid(in_modes, out_modes) -> TensorizationGrid:
    """The index maps of :class:`TensorizationGrid` (row-major, as ``btcore`` reshapes x and W)."""
    im, om = btcore.check_modes(in_modes, "in_modes"), btcore.check_modes(out_modes, "out_modes")
    if len(im) != len(om):
        raise ValueError("in_modes and out_modes need the same number of modes")
    rows = [_multi_index(i, im) for i in range(prod(im))]
    cols = [_multi_index(j, om) for j in range(prod(om))]
    block, inner = [], []
    for ri in rows:
        brow, irow = [], []
        for cj in cols:
            pairs = [a * j + b for a, b, j in zip(ri, cj, om)]
            brow.append(pairs[0])
            q = 0
            for p, i, j in zip(pairs[1:], im[1:], om[1:]):
                q = q * (i * j) + p
            irow.append(q)
        block.append(brow)
        inner.append(irow)
    return TensorizationGrid(im, om, rows, cols, block, inner)
