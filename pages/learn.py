"""Learn: what BT, TT and TR are and how ``y = x W`` is contracted, for the user's own configuration."""

import pandas as pd
import streamlit as st

import btcore
from app.learn import charts as cl
from app.learn import content as ld
from app.charts import FORMAT_COLORS
from app.frame import page_setup
from app.snippets import learn_snippet
from app.config import get_config
from app.widgets import format_ints, page_link, rank_text, show_error

K = "learn_"  # widget key prefix


def _link_to_shapes(label: str = "Change the configuration on the Shapes & parameters page") -> None:
    page_link("shapes.py", label, ":material/straighten:")


cfg = get_config()
specs, errors = ld.build_specs(cfg)
examples = ld.examples_for(cfg)
FIELDS = ld.page_fields(cfg, specs, examples)
frame = page_setup("learn", FIELDS, prefix=K)
inputs, lesson = frame.inputs, frame.lesson
if inputs["example"] not in examples:  # the configuration changed under a stored choice
    inputs.set("example", next(iter(examples)))
    frame.write_url()
tab_field = next(f for f in FIELDS if f.name == "steps_tab")
if inputs["steps_tab"] not in tab_field.options():  # a format this configuration cannot build
    inputs.set("steps_tab", tab_field.default)
    frame.write_url()

st.title("Learn: BT, TT and TR")
st.caption("What the Block-Term, Tensor-Train and Tensor Ring formats are, drawn and counted for **your** configuration "
           "(the one chosen on the Shapes & parameters page). Every number on this page comes from `btcore`.")
st.markdown(
    f"**Your configuration:** W is {cfg.in_size:,} × {cfg.out_size:,}, tensorized as rows "
    f"{format_ints(cfg.in_modes)} and columns {format_ints(cfg.out_modes)} (order d = {cfg.d}); "
    f"BT with Tucker rank R = {rank_text(cfg.bt_rank)} and N = {cfg.blocks} block{'s' if cfg.blocks != 1 else ''}; "
    f"TT ranks {rank_text(cfg.tt_ranks)}; TR ranks {rank_text(cfg.tr_ranks)}; batch {cfg.batch}."
)
c1, c2 = st.columns([4, 1])
c1.markdown("**On this page:** " + " · ".join(f"[{title}](#{anchor})" for anchor, title in ld.SECTIONS))
with c2:
    frame.link(by_fragments=True)
for name, msg in errors.items():
    # btcore's messages contain products like "I*J = 4*4", which Markdown would turn into italics
    show_error(ValueError(msg), f"{name} cannot be built from this configuration")
if errors:
    st.info("The page explains what it can and skips the rest. A format is invalid when its modes do not pair up "
            "(the row and column modes need the same count d), when a rank is larger than the mode or bond it "
            "compresses (then it adds parameters and no expressive power), or when it would be too large to "
            "store. Each message above names the field and the fix.", icon=":material/info:")
    _link_to_shapes()
if "Dense" not in specs:
    st.stop()

dense = specs["Dense"]
bt, tt, tr = specs.get("BT"), specs.get("TT"), specs.get("TR")

# ---------------------------------------------------------------- 1. tensorization
st.header(ld.section_title("tensor"), anchor="tensor")
st.markdown(
    r"A layer computes **y = x W** with W of shape I × J. Write each row index i as a tuple $(i_1, \dots, i_d)$ "
    r"with $i_k < I_k$, row-major, so $I = I_1 \cdots I_d$; do the same for the columns with $J = J_1 \cdots J_d$. "
    "Nothing is computed: the same numbers are just indexed by 2d small indices instead of 2 large ones. "
    r"BT, TT and TR then **pair** each row mode with its column mode, $(i_k, j_k)$, and compress the tensor "
    r"with d modes of sizes $I_k J_k$."
)

@frame.fragment("tensorization")
def tensorization_section() -> None:
    """Reruns alone when its own widgets change (the rest of the page stays as drawn)."""
    choice = st.selectbox("Example matrix", list(examples), key=K + "example",
                          help="Your own W is drawn here when it has at most 4,096 entries; otherwise pick a small one.")
    grid = ld.tensorization_grid(*examples[choice])
    st.plotly_chart(cl.tensorization_figure(grid), width="stretch", key=K + "tensorization")
    im0, om0 = grid.in_modes, grid.out_modes
    st.caption(
        f"Colour = the pair (i₁, j₁): W splits into an {im0[0]} × {om0[0]} grid of blocks, one per pair. "
        "Number = the position of the remaining pairs (i₂, j₂, …) inside the block. On the right every block of W "
        r"has become one row: this regrouped (interleaved) tensor, with modes of size $I_k J_k$, is what the formats "
        "factorize. Hover an entry to see its indices."
        + ("" if cfg.in_size * cfg.out_size <= 4096 else
           f" Your W has {cfg.in_size * cfg.out_size:,} entries, too many to draw, so a small example stands in for it.")
    )


tensorization_section()

# ---------------------------------------------------------------- 2. diagrams
st.header(ld.section_title("diagrams"), anchor="diagrams")
st.markdown(
    "In a tensor-network diagram a **node** is a tensor and each **leg** one of its indices; a line joining "
    "two nodes is an index they share and that is summed over. Legs are labelled with your mode sizes; "
    "hover a node for its shape and parameter count."
)
with st.container(key=K + "diagrams"):
    c1, c2 = st.columns([2, 3])
    with c1:
        st.plotly_chart(cl.dense_diagram(dense), width="stretch", key=K + "diagram_dense")
    with c2:
        if tt is not None:
            st.plotly_chart(cl.tt_diagram(tt), width="stretch", key=K + "diagram_tt")
        else:
            st.info("The TT diagram needs a valid TT configuration (see the error above).")
    if bt is not None:
        st.plotly_chart(cl.bt_diagram(bt), width="stretch", key=K + "diagram_bt")  # wraps rows: legible at any N
    else:
        st.info("The BT diagram needs a valid BT configuration (see the error above).")
    if tr is not None:
        st.plotly_chart(cl.tr_diagram(tr), width="stretch", key=K + "diagram_tr")  # the ring grows with d
    else:
        st.info("The TR diagram needs a valid TR configuration (see the error above).")
for tex in ld.diagram_formulas(specs):
    st.latex(tex)
st.markdown(ld.DIAGRAMS_TEXT)
if bt is not None and bt.blocks > 4:
    st.caption(f"{bt.blocks} blocks are too many to draw legibly: blocks 4 to {bt.blocks - 1} are shown as ⋯; all "
               "are identical in shape.")

# ---------------------------------------------------------------- 3. walkthrough
st.header(ld.section_title("steps"), anchor="steps")
st.markdown(
    f"W is never formed. x (batch × I) is reshaped to batch × I₁ × … × I_d and contracted with the "
    f"format's tensors **two at a time**, in the order `btcore.matmul` actually uses for a batch of "
    f"{cfg.batch} (searched once with opt_einsum for the fewest multiply-adds, then cached). A step that "
    "joins tensors with index sizes s₁, s₂, … over all the indices they carry costs s₁·s₂·⋯ multiply-adds. "
    "The order matters a lot: a bad one can cost many times more."
)

@frame.fragment("steps")
def steps_section() -> None:
    """Reruns alone when its own widgets change (the rest of the page stays as drawn)."""
    walk = st.cache_data(lambda cfg, _specs: {n: ld.walkthrough_rows(s, cfg.batch) for n, s in _specs.items()},
                         max_entries=256, show_spinner=False)(cfg, specs)  # specs follow cfg; shared by sessions
    dense_per_sample = sum(r["multiply-adds / sample"] for r in walk["Dense"])
    st.plotly_chart(cl.format_cost_stack(walk), width="stretch", key=K + "cost_stack")
    labels = ld.LABELS
    names = [n for n in ld.FORMATS if n in specs]
    # only the open tab is drawn (each holds two charts and a table): a tab switch reruns this fragment
    tabs = st.tabs([labels[n] for n in names], key=K + "steps_tab", on_change="rerun")
    for tab, name in zip(tabs, names):
        if not tab.open:
            continue
        with tab:
            spec, rows = specs[name], walk[name]
            plan = spec.plan(cfg.batch)
            choice = btcore.planner_choice(spec, cfg.batch)
            meanings = ld.index_meanings(spec, cfg.batch)
            total = plan.macs
            st.markdown(f"**{len(rows)} step{'s' if len(rows) != 1 else ''}, {total:,} multiply-adds for the batch "
                        f"= {total / cfg.batch:,.0f} per sample** ({total / cfg.batch / dense_per_sample:.2%} of dense), "
                        "along the FLOP-optimal path. The scheme `btcore.matmul` runs here (planner): "
                        f"`{choice.scheme}` ({choice.macs_per_sample:,.0f} multiply-adds per sample, modelled "
                        f"{choice.modelled_s * 1e3:,.3f} ms), the one its time model (fixed reference rates) expects "
                        "to run fastest.")
            if name != "Dense" and total / cfg.batch >= dense_per_sample:
                st.info(f"Here {labels[name]} needs at least as many multiply-adds as the dense matrix: with a W this "
                        "small the saved parameters do not save work. The factorized formats pay off on large layers "
                        "such as the paper's 57,600 × 1,024; for small ones `btcore.matmul(..., method=\"auto\")` "
                        "can form W once and do one matrix product instead.", icon=":material/info:")
            if len(rows) > 1:
                if inputs[f"step_{name}"] > len(rows):  # a stored step of a longer plan
                    inputs.set(f"step_{name}", len(rows))
                k = st.slider("Step", 1, len(rows), key=K + f"step_{name}",
                              help="Move through the contraction order btcore uses.")
            else:
                k = 1
            c1, c2 = st.columns([3, 2])
            with c1:
                st.markdown(f"**Step {k} of {len(rows)}.** "
                            + ld.step_sentence(plan.steps[k - 1], meanings, rows[k - 1]["involves x"]))
                st.caption("Index letters: " + ", ".join(f"`{c}` = {m} ({s:,})" for c, (m, s) in meanings.items()))
            with c2:
                st.plotly_chart(cl.contraction_tree(plan.steps, k, title="the order: each step joins two tensors"),
                                width="stretch", key=K + f"tree_{name}")
            st.plotly_chart(cl.step_bars(rows, color=FORMAT_COLORS[name],
                                         dense_per_sample=None if name == "Dense" else dense_per_sample, selected=k,
                                         title=f"{labels[name]}: multiply-adds per sample, by step"),
                            width="stretch", key=K + f"bars_{name}")
            table = pd.DataFrame(rows)[["step", "tensors that meet", "result indices", "result shape", "multiply-adds",
                                        "multiply-adds / sample", "result memory", "summed over", "einsum", "result",
                                        "involves x"]]
            st.dataframe(table, hide_index=True, width="stretch", key=K + f"table_{name}", column_config={
                "multiply-adds": st.column_config.NumberColumn(format="localized"),
                "multiply-adds / sample": st.column_config.NumberColumn(format="localized"),
            })
            st.caption(f"Multiply-adds per sample summed over the steps: {total / cfg.batch:,.0f}, the figure the "
                       "Shapes page lists. Result memory: float32 bytes of each intermediate for the whole batch "
                       f"of {cfg.batch}. On a CPU `btcore.matmul` runs the steps that involve x in row blocks so the "
                       "intermediates stay in cache: same multiply-adds, less memory traffic.")
    if bt is not None and tt is not None:
        st.markdown(
            "Each TT step is one matrix product (a GEMM); so is each TR step, but every TR core carries two bonds, "
            "so an intermediate holding one end of the ring's closing bond keeps it open until the core at the "
            "other end is joined. BT steps carry more indices at once (the block index n "
            "and several ranks), so they are smaller, batched contractions: fewer multiply-adds do not always mean "
            "less time; `btcore.matmul(..., tune=True)` times a few candidate orders and keeps the fastest."
        )


steps_section()

# ---------------------------------------------------------------- 4. feel the sizes
st.header(ld.section_title("sizes"), anchor="sizes")
st.subheader("The Rᵈ core")
st.markdown(
    f"Keep your W ({cfg.in_size:,} × {cfg.out_size:,}) and split it into d modes: "
    + (f"your own modes for d = {cfg.d}, a balanced split by `btcore.factorize` for the others. " if 2 <= cfg.d <= 6
       else "a balanced split by `btcore.factorize`. ")
    + "More modes make each factor smaller, but the core "
    r"has $R^d$ entries per block: as R and d grow it soon outweighs the factors, which is why BT is used with "
    "small R (the paper: R = 4, d = 4)."
)

@frame.fragment("sizes")
def sizes_section() -> None:
    """Reruns alone when its own widgets change (the rest of the page stays as drawn)."""
    c1, c2, c3 = st.columns(3)
    d_pick = c1.slider("Order d", 2, 6, key=K + "grow_d")
    r_pick = c2.slider("Tucker rank R", 1, 16, key=K + "grow_r")
    n_pick = c3.slider("Blocks N", 1, 8, key=K + "grow_n")
    g_rows = st.cache_data(ld.growth_rows, max_entries=256, show_spinner=False)(
        cfg.in_size, cfg.out_size, n_pick, range(1, 17), range(2, 7), own=(cfg.in_modes, cfg.out_modes))
    pick = next((r for r in g_rows if (r["d"], r["R"]) == (d_pick, r_pick)), None)
    if pick is None:
        st.info(f"R = {r_pick} with d = {d_pick} is not a valid choice for this W: either the size cannot be split "
                f"into {d_pick} modes of at most {btcore.MAX_MODE}, or R is above a mode's size I_k·J_k.",
                icon=":material/info:")
    else:
        st.markdown(f"d = {d_pick}: rows {format_ints(pick['in_modes'])}, columns {format_ints(pick['out_modes'])}; "
                    f"R = {r_pick}, N = {n_pick}.")
        m2, m3, m4 = st.columns(3)
        m2.metric("core entries per block (R^d)", f"{pick['core_per_block']:,}")
        m3.metric("BT parameters", f"{pick['params']:,}", delta=f"{dense.params / pick['params']:,.0f}x fewer than dense",
                  delta_color="off")
        m4.metric("share in the cores", f"{pick['core'] / pick['params']:.1%}")
    st.plotly_chart(cl.growth_chart(g_rows, current=(d_pick, r_pick)), width="stretch", key=K + "growth")

    st.subheader("N or R at a fixed budget")
    budget = st.number_input("Parameter budget", min_value=1, max_value=10**9, step=100, key=K + "budget",
                             help="Starts at your BT format's parameter count.")
    if bt is not None:
        b_modes = (bt.in_modes, bt.out_modes)
        b_ranks = range(1, min(btcore.max_uniform_rank(*b_modes, "bt"), 24) + 1)
        b_rows = ld.budget_pairs(*b_modes, budget, b_ranks)
        if b_rows:
            st.plotly_chart(cl.budget_chart(b_rows, budget, current=(bt.rank, bt.blocks) if isinstance(bt.rank, int) else None),
                            width="stretch", key=K + "budget_chart")
            st.caption("Same budget, different shapes: many blocks of low rank (towards CP) or few blocks of high rank "
                       "(towards Tucker). A higher R captures more interaction between modes per block; more blocks add "
                       "independent terms. Which wins depends on the matrix: the Approximation page measures it.")
        else:
            st.info("Even one block of rank 1 exceeds this budget; raise it.", icon=":material/info:")


sizes_section()

if tr is not None:
    st.subheader("Tensor Ring: the ranks")
    r_cap = min(btcore.max_uniform_rank(tr.in_modes, tr.out_modes, "tr"), 16)
    ring = ld.ring_growth_rows(tr.in_modes, tr.out_modes, range(1, r_cap + 1))
    own = set(tr.ranks)
    st.plotly_chart(cl.ring_growth_chart(ring, current=own.pop() if len(own) == 1 else None), width="stretch",
                    key=K + "ring_growth")
    st.caption(ld.ring_growth_text(tr))

st.subheader("Worked example: the paper's UCF11 layer")
u = st.cache_data(ld.ucf11_example, show_spinner=False)()
intro, outro = ld.ucf11_text(u)
st.markdown(intro)
st.dataframe(pd.DataFrame(ld.ucf11_rows(u)), hide_index=True, width="stretch", key=K + "ucf11",
             column_config={"parameters": st.column_config.NumberColumn(format="localized")})
st.markdown(outro)

# ---------------------------------------------------------------- 5. special cases, the paper
st.header(ld.section_title("cases"), anchor="cases")
st.markdown("\n".join("- " + item for item in ld.SPECIAL_CASES))
st.latex(r"\text{Tucker: } N = 1, \qquad \text{CP: } R_1 = \dots = R_d = 1 \;\Rightarrow\; "
         r"W[(i),(j)] = \sum_{n=1}^{N} c_n \prod_{k=1}^{d} a_n^{(k)}[i_k, j_k]")
st.markdown(ld.recurrent_text(u))
st.markdown("**Try it.** Change the modes, ranks and blocks on the Shapes & parameters page: this page follows. "
            "Then see how well each format approximates a given matrix at the same budget, and how BT and TT "
            "recurrent classifiers train against a dense one.")
_link_to_shapes("Shapes & parameters: choose modes, ranks and blocks")
page_link("approximation.py", "Approximation: fit BT, TT, TR, Tucker and CP to a matrix", ":material/compare:")
page_link("training.py", "Training: dense vs factorized recurrent classifiers", ":material/model_training:")
if not lesson:
    with st.expander("The code for this page", icon=":material/code:"):
        st.code(learn_snippet(cfg), language="python")
