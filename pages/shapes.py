"""Shapes & parameters: pick modes, ranks and blocks; compare dense, TT, BT, Tucker and CP."""

import pandas as pd
import streamlit as st

import btcore
from app import charts
from app.state import PRESETS, LabConfig, get_config, set_config
from app.widgets import format_ints, parse_ints, parse_rank, rank_text, show_error

K = "shapes_"  # widget key prefix
PRESET_KEY = "btlab_preset"  # the last preset chosen; widget state is dropped when the page is left


def _load_widgets(cfg: LabConfig, preset: str | None = None) -> None:
    st.session_state[K + "in_size"] = cfg.in_size
    st.session_state[K + "out_size"] = cfg.out_size
    st.session_state[K + "d"] = cfg.d
    st.session_state[K + "in_modes"] = format_ints(cfg.in_modes)
    st.session_state[K + "out_modes"] = format_ints(cfg.out_modes)
    st.session_state[K + "bt_rank"] = rank_text(cfg.bt_rank)
    st.session_state[K + "blocks"] = cfg.blocks
    st.session_state[K + "tt_ranks"] = rank_text(cfg.tt_ranks)
    st.session_state[K + "batch"] = cfg.batch
    if preset is not None:
        st.session_state[K + "preset"] = preset


def _apply_preset() -> None:
    name = st.session_state[K + "preset"]
    st.session_state[PRESET_KEY] = name
    if name in PRESETS:
        _load_widgets(PRESETS[name])


def _suggest_modes() -> None:
    """Refill the mode boxes with balanced factorizations of the sizes (on size or d change)."""
    _mark_custom()
    st.session_state.pop(K + "suggest_error", None)
    d = st.session_state[K + "d"]
    for side in ("in", "out"):
        try:
            st.session_state[K + f"{side}_modes"] = format_ints(btcore.factorize(st.session_state[K + f"{side}_size"], d))
        except ValueError as exc:
            st.session_state[K + "suggest_error"] = f"{side}put size: {exc}"


def _mark_custom() -> None:
    st.session_state[K + "preset"] = st.session_state[PRESET_KEY] = "Custom"


def _preset_name(cfg: LabConfig) -> str:
    """The preset last chosen if the configuration still is it, else the first that matches."""
    last = st.session_state.get(PRESET_KEY)
    if last in PRESETS and PRESETS[last] == cfg:
        return last
    return next((n for n, c in PRESETS.items() if c == cfg), "Custom")


if K + "in_modes" not in st.session_state:
    _load_widgets(get_config(), preset=_preset_name(get_config()))

st.title("Shapes & parameters")
st.caption("Tensorize a weight matrix W (I x J) and compare how many parameters and multiply-adds each "
           "format needs. Everything here is exact arithmetic from `btcore`; nothing is trained.")

left, right = st.columns([1, 1], gap="large")
with left:
    st.selectbox("Preset", ["Custom", *PRESETS], key=K + "preset", on_change=_apply_preset,
                 help="The UCF11 presets are the paper's input-to-hidden map: 57,600 pixels in, 4 gates x 256 out.")
    c1, c2, c3 = st.columns(3)
    c1.number_input("Input size I", min_value=1, max_value=10**9, step=1, key=K + "in_size", on_change=_suggest_modes)
    c2.number_input("Output size J", min_value=1, max_value=10**9, step=1, key=K + "out_size", on_change=_suggest_modes)
    c3.number_input("Order d", min_value=1, max_value=btcore.formats.MAX_ORDER, step=1, key=K + "d",
                    on_change=_suggest_modes, help="Number of modes each side is split into.")
    c1, c2 = st.columns(2)
    c1.text_input("Input modes I₁x..xI_d", key=K + "in_modes", on_change=_mark_custom,
                  help="Filled with a balanced factorization of I when you change I or d; edit freely.")
    c2.text_input("Output modes J₁x..xJ_d", key=K + "out_modes", on_change=_mark_custom)
    if K + "suggest_error" in st.session_state:
        st.warning(st.session_state[K + "suggest_error"], icon=":material/warning:")
with right:
    c1, c2 = st.columns(2)
    c1.text_input("BT rank R", key=K + "bt_rank", on_change=_mark_custom,
                  help="One rank for all modes, or one per mode: 4 or 4,4,2,2. N=1 is Tucker, R=1 is CP.")
    c2.number_input("BT blocks N", min_value=1, max_value=64, step=1, key=K + "blocks", on_change=_mark_custom)
    c1, c2 = st.columns(2)
    c1.text_input("TT ranks", key=K + "tt_ranks", on_change=_mark_custom,
                  help="One rank for every bond, or the d-1 inner ranks: 4 or 4,8,4.")
    c2.number_input("Batch size", min_value=1, max_value=65536, step=1, key=K + "batch",
                    help="The fastest contraction order depends on the batch size; multiply-adds are per sample.")

try:
    in_modes = parse_ints(st.session_state[K + "in_modes"], "input modes")
    out_modes = parse_ints(st.session_state[K + "out_modes"], "output modes")
    btcore.check_modes(in_modes, "input modes", int(st.session_state[K + "in_size"]))
    btcore.check_modes(out_modes, "output modes", int(st.session_state[K + "out_size"]))
    cfg = LabConfig(in_modes, out_modes, parse_rank(st.session_state[K + "bt_rank"], "BT rank"),
                    int(st.session_state[K + "blocks"]), parse_rank(st.session_state[K + "tt_ranks"], "TT ranks"),
                    int(st.session_state[K + "batch"]))
    specs = cfg.specs()
    rows = [btcore.summary_row(s, cfg.batch) for s in specs]
except ValueError as exc:
    show_error(exc, "Check the configuration")
    st.stop()

set_config(cfg)
dense, tt, bt, tucker, cp = rows

st.divider()
cols = st.columns(5)
cols[0].metric("Dense parameters", f"{dense['params']:,}")
for col, row, label in zip(cols[1:], (tt, bt, tucker, cp),
                           (f"TT ({tt['ranks']})", f"BT ({bt['ranks']})", f"Tucker ({tucker['ranks']})", f"CP ({cp['ranks']})")):
    col.metric(f"{label} parameters", f"{row['params']:,}", delta=f"{row['compression']:,.1f}x fewer",
               delta_color="off")

table = pd.DataFrame([{
    "format": r["format"], "ranks": r["ranks"], "parameters": r["params"], "compression vs dense": r["compression"],
    "multiply-adds / sample": r["macs_per_sample"], "parameter memory (float32)": btcore.format_bytes(r["param_bytes"]),
    f"largest intermediate (batch {cfg.batch})": btcore.format_bytes(r["intermediate_bytes"]),
} for r in rows])
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "parameters": st.column_config.NumberColumn(format="localized"),
    "compression vs dense": st.column_config.NumberColumn(format="%.1f x"),
    "multiply-adds / sample": st.column_config.NumberColumn(format="localized"),
})
st.download_button("Download table (CSV)", table.to_csv(index=False).encode(), "btlab_formats.csv", "text/csv",
                   icon=":material/download:")
st.caption(f"CP is shown at rank {cfg.cp_rank()}, the rank whose size is closest to BT's. Multiply-adds follow "
           f"the contraction order `btcore.matmul` uses at batch {cfg.batch} (BT: {bt['macs_per_sample'] / dense['macs_per_sample']:.2%} "
           f"of dense). Memory: parameters in float32, and the largest intermediate of one forward pass.")

st.subheader("How the counts grow")
c1, c2 = st.columns(2)
bt_spec, tt_spec = specs[2], specs[1]
max_rank = min(32, max(btcore.max_uniform_rank(in_modes, out_modes, "bt"), btcore.max_uniform_rank(in_modes, out_modes, "tt")))
ranks = list(range(1, max_rank + 1))
blocks = sorted({1, 2, 4, 8, cfg.blocks})
current = {}
if tt_spec.inner_ranks and len(set(tt_spec.inner_ranks)) == 1:
    current["TT"] = (tt_spec.inner_ranks[0], tt_spec.params)
if isinstance(bt_spec.rank, int):
    current["BT"] = (bt_spec.rank, bt_spec.params)
with c1:
    st.plotly_chart(charts.params_vs_rank(btcore.param_sweep(in_modes, out_modes, ranks, blocks), dense["params"], current),
                    width="stretch", key="shapes_params_chart")
with c2:
    hm_ranks = [r for r in ranks if r <= btcore.max_uniform_rank(in_modes, out_modes, "bt")][:8]
    hm_blocks = list(range(1, 9))
    values = [[dense["params"] / btcore.bt_params(in_modes, out_modes, r, n) for r in hm_ranks] for n in hm_blocks]
    st.plotly_chart(charts.bt_heatmap(hm_ranks, hm_blocks, values,
                                      current=(bt_spec.rank, cfg.blocks) if isinstance(bt_spec.rank, int) else None),
                    width="stretch", key="shapes_heatmap")

st.subheader("The formulas, with your numbers")


def tex_int(n: int) -> str:
    return f"{n:,}".replace(",", "{,}")


terms = " + ".join(f"{i}\\cdot{j}\\cdot{r}" for i, j, r in zip(in_modes, out_modes, bt_spec.ranks))
core = "\\cdot".join(map(str, bt_spec.ranks))
st.latex(r"P_{\mathrm{BT}} = N\Big(\sum_{k=1}^{d} I_k J_k R_k + \prod_{k=1}^{d} R_k\Big) = "
         + f"{bt_spec.blocks}\\,({terms} + {core}) = {tex_int(bt_spec.params)}")
r = tt_spec.ranks
tt_terms = " + ".join(f"{r[k]}\\cdot{i}\\cdot{j}\\cdot{r[k + 1]}" for k, (i, j) in enumerate(zip(in_modes, out_modes)))
st.latex(r"P_{\mathrm{TT}} = \sum_{k=1}^{d} r_{k-1} I_k J_k r_k = " + f"{tt_terms} = {tex_int(tt_spec.params)}")
st.latex(r"P_{\mathrm{dense}} = I \cdot J = " + f"{tex_int(cfg.in_size)} \\cdot {tex_int(cfg.out_size)} = {tex_int(dense['params'])}")
st.markdown(
    f"With one block (N = 1) BT is the **Tucker** format; with R = 1 it is **CP** of rank N. "
    f"The core alone has R^d = {btcore.shapes.prod(bt_spec.ranks):,} entries per block: it grows "
    "exponentially with d, so BT is used with small R. The other pages use this configuration."
)
