"""Shapes & parameters: pick modes, ranks and blocks; compare dense and every registered format (TT, BT, TR),
with Tucker and CP as BT's special cases."""

import streamlit as st

import btcore
from app.shapes import charts, formulas, tables
from app.shapes import inputs as si
from app.shapes import session as ss
from app.shapes.inputs import K
from app.frame import page_setup
from app.snippets import shapes_snippet
from app.config import PRESETS, get_config
from app.widgets import escape_markdown, format_ints, rank_text, show_error

start = get_config()
frame = page_setup(ss.PAGE, si.FIELDS, prefix=K, defaults=ss.first_defaults(start), check=si.link_check(start))
inputs, lesson = frame.inputs, frame.lesson
ss.origin()  # remember the modes the page opened with

st.title("Shapes & parameters")
st.caption("Tensorize a weight matrix W (I x J) and compare how many parameters and multiply-adds each "
           "format needs. Everything here is exact arithmetic from `btcore`; nothing is trained.")

left, right = st.columns([1, 1], gap="large")
with left:
    st.selectbox("Preset", ["Custom", *PRESETS], key=K + "preset", on_change=ss.on_preset,
                 help="The UCF11 presets are the paper's input-to-hidden map: 57,600 pixels in, 4 gates x 256 out.")
    c1, c2, c3 = st.columns([2, 2, 1])  # room for 1,000,000,000 in the size fields
    c1.number_input("Input size I", step=1, key=K + "in_size", on_change=ss.on_size, args=(("in",),),
                    help="1 to 1,000,000,000.")
    c2.number_input("Output size J", step=1, key=K + "out_size", on_change=ss.on_size, args=(("out",),),
                    help="1 to 1,000,000,000.")
    c3.number_input("Order d", step=1, key=K + "d", on_change=ss.on_size, args=(("in", "out"),),
                    help=f"Number of modes each side is split into: 1 to {btcore.formats.MAX_ORDER}.")
    c1, c2 = st.columns(2)
    c1.text_input("Input modes I₁x..xI_d", key=K + "in_modes", on_change=ss.on_modes, args=("in",),
                  help="A balanced factorization of I is filled in when you change I or d, unless you typed "
                       "your own modes: those are kept, and the suggestion is offered.")
    c2.text_input("Output modes J₁x..xJ_d", key=K + "out_modes", on_change=ss.on_modes, args=("out",))
    if ss.suggest_error():
        st.warning(escape_markdown(ss.suggest_error()), icon=":material/warning:")
    offers = ss.offers()
    if offers:
        text = "; ".join(f"{side}put modes {format_ints(m)}" for side, m in offers.items())
        st.button(f"Use suggested {text}", key=K + "use_suggestion", on_click=ss.take_suggestion,
                  icon=":material/auto_fix_high:")
with right:
    c1, c2 = st.columns(2)
    c1.text_input("BT rank R", key=K + "bt_rank", on_change=ss.mark_custom,
                  help="One rank for all modes, or one per mode: 4 or 4,4,2,2. N=1 is Tucker, R=1 is CP.")
    c2.number_input("BT blocks N", step=1, key=K + "blocks", on_change=ss.mark_custom, help="1 to 64.")
    c1, c2, c3 = st.columns(3)
    c1.text_input("TT ranks", key=K + "tt_ranks", on_change=ss.mark_custom,
                  help="One rank for every bond, or the d-1 inner ranks: 4 or 4,8,4.")
    c2.text_input("TR ranks", key=K + "tr_ranks", on_change=ss.mark_custom,
                  help="Tensor Ring: one rank for every bond, or the d bonds r₁..r_d, the last closing the ring "
                       "(r₀ = r_d): 4 or 4,3,2,3.")
    if not lesson:
        c3.number_input("Batch size", step=1, key=K + "batch", persist_state="session",
                        help="1 to 65,536. The fastest contraction order "
                        "depends on the batch size; multiply-adds are per sample.")

cfg, error = ss.shown_config(inputs.values)
if error is not None:
    show_error(error, "Check the configuration")
    st.warning(f"The results below are for the last valid configuration ({format_ints(cfg.in_modes)} -> "
               f"{format_ints(cfg.out_modes)}, R = {cfg.bt_rank}, N = {cfg.blocks}, TT ranks {cfg.tt_ranks}, TR ranks "
               f"{cfg.tr_ranks}), not for the inputs above.",
               icon=":material/history:")
frame.write_url(cfg)

specs = cfg.specs()
# Pure functions of the configuration, shared by every session that opens the same link.
rows = st.cache_data(lambda cfg: [tables.with_planner(btcore.summary_row(s, cfg.batch), s, cfg.batch)
                                  for s in cfg.specs()], max_entries=256, show_spinner=False)(cfg)
by_kind = {row["format"]: row for row in rows}
dense, bt = by_kind["Dense"], by_kind["BT"]

st.divider()
for start_at in range(0, len(rows), 3):  # rows of three, so the labels (with their ranks) are never cut
    for col, row in zip(st.columns(3), rows[start_at:start_at + 3]):
        if row is dense:
            col.metric("Dense parameters", f"{dense['params']:,}")
        else:
            col.metric(f"{row['format']} ({row['ranks']}) parameters", f"{row['params']:,}",
                       delta=f"{tables.format_factor(row['compression'])} fewer", delta_color="off")

table = tables.formats_table(rows, cfg.batch)
columns = {name: st.column_config.NumberColumn(format="localized") for name in ("parameters", tables.MACS)}
for name, (header, tip) in tables.short_headers(cfg.batch).items():
    columns[name] = (st.column_config.NumberColumn(header, help=tip, format="localized") if name == tables.COMPRESSION
                     else st.column_config.Column(header, help=tip))
st.dataframe(table, hide_index=True, width="stretch", column_config=columns)
st.dataframe(tables.planner_table(rows), hide_index=True, width="stretch", column_config={
    name: st.column_config.NumberColumn(format="localized") for name in (tables.PLANNER_MACS, tables.PLANNER_MS)})
c1, c2 = st.columns([1, 1])
if not lesson:
    c1.download_button("Download table (CSV)", tables.formats_csv(rows, cfg.batch), "btlab_formats.csv", "text/csv",
                       icon=":material/download:")
with c2:
    frame.link()
st.caption(f"CP is shown at rank {cfg.cp_rank()}, the rank whose size is closest to BT's. **Multiply-adds / sample** "
           f"follow the FLOP-optimal contraction path at batch {cfg.batch}, a count fixed by the shapes (BT: "
           f"{bt['macs_per_sample'] / dense['macs_per_sample']:.2%} of dense). The **planner's** table under it says what "
           "`btcore.matmul` runs here: the scheme its time model expects to be fastest, that scheme's multiply-adds "
           "and its modelled time (a model with fixed reference rates, not a measurement). Memory: parameters in "
           f"float32 (weights), and the largest intermediate of one forward pass at batch {cfg.batch:,}.")

st.subheader("How the counts grow")
c1, c2 = st.columns(2)
by_spec = {spec.kind: spec for spec in specs}
bt_spec = by_spec["BT"]
current = si.uniform_marks(specs)
with c1:
    sweep = st.cache_data(btcore.param_sweep, max_entries=256, show_spinner=False)(
        cfg.in_modes, cfg.out_modes, si.sweep_ranks(cfg), sorted({1, 2, 4, 8, cfg.blocks}))
    st.plotly_chart(charts.params_vs_rank(sweep, dense["params"], current), width="stretch", key="shapes_params_chart")
with c2:
    hm_ranks, hm_blocks, values = st.cache_data(si.heatmap_grid, max_entries=256, show_spinner=False)(cfg)
    uniform = "BT" in current
    st.plotly_chart(charts.bt_heatmap(hm_ranks, hm_blocks, values, current=(current["BT"][0], cfg.blocks) if uniform else None),
                    width="stretch", key="shapes_heatmap")
    if not uniform:
        st.caption(f"Your BT ranks {rank_text(bt_spec.rank)} differ by mode, so they are no cell of this uniform-R "
                   "grid and are not marked.")
missing = [k for k in ("TT", "TR") if k not in current]
if missing:
    st.caption(f"Not marked on the parameters chart: your {' and '.join(missing)} ranks are not uniform.")

st.subheader("The formulas, with your numbers")
for tex in formulas.formulas(specs):
    st.latex(tex)
st.markdown(
    f"With one block (N = 1) BT is the **Tucker** format; with R = 1 it is **CP** of rank N. "
    f"The core alone has R^d = {btcore.shapes.prod(bt_spec.ranks):,} entries per block: it grows "
    "exponentially with d, so BT is used with small R. The other pages use this configuration."
)
if not lesson:
    with st.expander("The code for these numbers", icon=":material/code:"):
        st.code(shapes_snippet(cfg), language="python")
