"""Approximation: fit BT, TT, Tucker and CP to a matrix; error vs parameters, reconstructions, convergence."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import btcore
from app import charts_approx as ca
from app.approximation import analysis, plan
from app.approximation import state as S
from app.approximation.plan import EFFORT, MAX_CP_RANK, MAX_ENTRIES, TARGETS
from app.approximation.run import RunResult, results_csv
from app.state import CONFIG_KEY, get_config
from app.widgets import format_ints, show_error
from btcore import decompose as dec
from btcore import targets as tg

K = S.K
#: Progress poll period (s). Faster polling slows the fits: the many small torch ops of an ALS sweep wait
#: for the GIL while a fragment rerun holds it. Default fit in the browser, measured here: 8.8-16.3 s at
#: 0.5 s polling, 6.1-6.9 s at 1 s, 5.5-5.8 s at 2 s.
POLL_S = 1.0

S.init_defaults()
st.title("Approximation")
st.caption("Fit Block-Term, Tensor-Train, Tucker and CP formats to a matrix and compare their errors at equal "
           "parameter counts. Fits run in the background (BT/Tucker/CP by joint ALS, TT by TT-SVD).")

trained = S.trained_runs()
target_keys = [k for k in TARGETS if k != "trained" or trained]
if st.session_state.get(K + "target") not in target_keys:
    st.session_state[K + "target"] = "bt"

c_target, c_shape, c_size = st.columns([1, 1, 1.3], gap="large")
errors: list[tuple[str, Exception]] = []
waiting = False  # an upload not chosen yet: no spec, no error
W_given, target_kwargs, target_extra = None, {}, ()
explain_as = None  # the kind of target the teaching text describes (default: the target itself)
with c_target:
    st.subheader("Target")
    kind = st.selectbox("Matrix", target_keys, format_func=TARGETS.get, key=K + "target", on_change=S.on_trained,
                        help="The structured targets show where each format wins; the random one why nothing "
                             "compact fits a matrix without structure.")
    if kind in ("bt", "tt"):
        noise = st.select_slider("Noise (relative)", [0.0, 0.001, 0.01, 0.05, 0.1, 0.3], value=0.01, key=K + "noise",
                                 help="‖E‖ = noise · ‖W_exact‖: the best error any format can reach is about this.")
        target_kwargs = {"noise": float(noise)}
    elif kind == "kernel":
        ls = st.select_slider("Length scale", [0.02, 0.05, 0.1, 0.2, 0.5], value=0.1, key=K + "length_scale",
                              help="Smaller: a sharper kernel, harder to compress.")
        target_kwargs = {"length_scale": float(ls)}
    elif kind == "image":
        names = tg.list_images()
        if names:
            target_kwargs = {"name": st.selectbox("Image", names, key=K + "image")}
        else:
            errors.append(("Target", ValueError(f"no images found in {tg.ASSET_DIR}")))
    elif kind == "trained":
        run = st.selectbox("Trained run", list(trained), key=K + "trained", on_change=S.on_trained,
                           help="Left by the Training page in this session.")
        if run in trained:
            (tI, tJ), t_im, t_om, t_kind = trained[run]
            st.caption(f"{tI:,} x {tJ:,}; suggested modes {format_ints(t_im)} -> {format_ints(t_om)}")
            if tI * tJ > MAX_ENTRIES:
                errors.append(("Trained run", ValueError(
                    f"{run}'s input-to-hidden matrix is {tI:,} x {tJ:,} = {tI * tJ:,} entries, above this page's "
                    f"limit of {MAX_ENTRIES:,}, which keeps fits interactive; train at a smaller frame size, or "
                    "call btcore.fit_bt from a script")))
            else:
                try:
                    W_given, target_extra = S.trained_matrix(run)
                    explain_as = f"trained_{t_kind}"
                except Exception as exc:  # noqa: BLE001 - shown, never raised into the page
                    errors.append(("Trained run", exc))
    elif kind == "upload":
        up = st.file_uploader("Matrix file", type=["npy", "pt", "pth"], key=K + "upload",
                              help="A 2-D array saved with np.save, or a tensor / state dict saved with torch.save. "
                                   "Nothing pickled is ever loaded.")
        if up is None:
            waiting = True
            st.info("Choose a .npy or .pt file holding one 2-D matrix.", icon=":material/upload_file:")
        else:
            try:
                W_given, target_extra = S.read_upload(up.name, up.getvalue())
                st.caption(f"{up.name}: {W_given.shape[0]:,} x {W_given.shape[1]:,}")
            except ValueError as exc:
                errors.append(("Upload", exc))
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=K + "seed", help="Seeds the target and the fits' starts.")

with c_shape:
    st.subheader("Shape")
    small_cfg = S.shapes_page_config()
    shape_opts = list(S.SHAPES) + ([S.SHAPES_PAGE] if small_cfg is not None else []) + [S.CUSTOM]
    if st.session_state.get(K + "shape") not in shape_opts:
        st.session_state[K + "shape"] = S.CUSTOM
    st.selectbox("Modes", shape_opts, key=K + "shape", on_change=S.on_shape,
                 format_func=lambda s: (f"{s}: {format_ints(small_cfg.in_modes)} -> {format_ints(small_cfg.out_modes)}"
                                        if s == S.SHAPES_PAGE and small_cfg is not None else s))
    if small_cfg is None and CONFIG_KEY in st.session_state:
        cfg = get_config()
        st.caption(f"The Shapes page's {cfg.in_size:,} x {cfg.out_size:,} is too large to fit here "
                   f"(limit {MAX_ENTRIES:,} entries).")
    c1, c2 = st.columns(2)
    c1.text_input("Input modes I₁x..xI_d", key=K + "in_modes", on_change=S.mark_custom)
    c2.text_input("Output modes J₁x..xJ_d", key=K + "out_modes", on_change=S.mark_custom)

with c_size:
    st.subheader("Formats and size")
    inputs = plan.SpecInputs(st.session_state[K + "in_modes"], st.session_state[K + "out_modes"], target=kind,
                             target_kwargs=target_kwargs, target_extra=target_extra, explain_as=explain_as)
    inputs.formats = st.multiselect("Formats", list(dec.FORMATS), default=list(dec.FORMATS), key=K + "formats")
    inputs.mode = st.radio("Size by", ["parameter budget", "explicit ranks"], horizontal=True, key=K + "mode")
    if inputs.mode == "parameter budget":
        inputs.budget = st.number_input("Parameter budget", 8, 10**9, 1000, step=100, key=K + "budget",
                                        help="Each format is fitted at the ranks whose parameter count is closest.")
    else:
        c1, c2 = st.columns(2)
        inputs.bt_rank = c1.text_input("BT rank R", key=K + "bt_rank", help="One rank, or one per mode: 3 or 3,3,2,2.")
        inputs.blocks = c2.number_input("BT blocks N", 1, 64, step=1, key=K + "blocks")
        c1, c2, c3 = st.columns(3)
        inputs.tt_ranks = c1.text_input("TT ranks", key=K + "tt_ranks")
        inputs.tucker_rank = c2.text_input("Tucker rank", key=K + "tucker_rank")
        inputs.cp_rank = c3.number_input("CP rank", 1, MAX_CP_RANK, step=1, key=K + "cp_rank")
    inputs.sweep_points = st.slider("Sweep: budgets for the error-vs-parameters chart", 0, 7, 5, key=K + "sweep",
                                    help="Geometric budgets from 1/4 to 4x your size, each fitted in every format. "
                                         "0: off.")
    with st.expander("Fit settings"):
        inputs.effort = st.radio("Effort", list(EFFORT), horizontal=True, key=K + "effort",
                                 help="quick: one start, up to 30 ALS sweeps. thorough: an HOSVD start and two random "
                                      "ones, up to 100 sweeps (slower, sometimes lower errors).")
        inputs.bt_choices = st.number_input("BT candidates per budget", 1, 4, 2, key=K + "bt_choices",
                                            help="BT has two knobs (R and N): the closest (R, N) pairs to each budget "
                                                 "are all fitted and the best is kept.")
    inputs.seed = int(seed)

spec = None
for ctx, exc in errors:
    show_error(exc, ctx)
if not errors and not waiting:
    try:
        spec = plan.build_spec(inputs, None if W_given is None else tuple(W_given.shape))
    except ValueError as exc:
        show_error(exc, "Check the inputs")
        if W_given is not None:
            st.button("Use modes that fit this matrix", key=K + "fix_modes", on_click=S.suggest_for,
                      args=(tuple(W_given.shape),), icon=":material/auto_fix_high:")
if spec is not None:
    I, J = btcore.shapes.prod(spec.in_modes), btcore.shapes.prod(spec.out_modes)
    n_main = len(spec.main)
    st.caption(f"Target {I:,} x {J:,} = {I * J:,} entries ({btcore.format_bytes(8 * I * J)} in float64); the fits "
               f"need about {btcore.format_bytes(spec.peak_bytes)} of the "
               f"{btcore.format_bytes(btcore.available_memory())} free. {n_main} fits at your size, "
               f"up to {len(spec.tasks) - n_main} more (repeats are fitted once) for the sweep over budgets "
               f"{', '.join(f'{b:,}' for b in spec.budgets) or '(off)'}.")

# -- run -------------------------------------------------------------------------------------------
S.harvest()
job = st.session_state.get(K + "job")
running = job is not None and job.running
c1, c2, _ = st.columns([1, 1, 4])
if c1.button("Fit", type="primary", icon=":material/play_arrow:", key=K + "fit", disabled=running or spec is None):
    if S.start(spec, W_given):
        job, running = st.session_state[K + "job"], True
if c2.button("Stop", icon=":material/stop:", key=K + "stop", disabled=not running):
    job.stop()


@st.fragment(run_every=POLL_S if running else None)
def live() -> None:
    job = st.session_state.get(K + "job")
    if job is not None and job.running:
        snap = job.snapshot()
        eta = job.eta()
        text = f"{snap['message'] or 'starting'} · {snap['elapsed']:.0f} s" + (
            f" · about {eta:.0f} s left" if eta is not None else "")
        st.progress(min(1.0, max(0.0, snap["progress"])), text=text)
        if st.session_state.get(K + "shown") is not None:
            st.caption("The results below are the previous run's until this one finishes.")
        return
    if S.harvest():  # finished while only this fragment was rerunning: redraw the page
        st.rerun()
    if st.session_state.get(K + "job_note"):
        st.info(st.session_state[K + "job_note"], icon=":material/stop_circle:")
    if st.session_state.get(K + "job_error"):
        st.error(f"**The fit failed:** {st.session_state[K + 'job_error']}", icon=":material/error:")


live()


# -- results ---------------------------------------------------------------------------------------
def draw_table(rows: list) -> None:
    table = pd.DataFrame([{
        "format": r.format, "ranks": r.ranks, "blocks N": pd.NA if r.blocks is None else r.blocks,
        "parameters": r.params, "compression": r.compression, "relative error": r.rel_error,
        "fit time (s)": r.seconds, "ALS sweeps": r.sweeps, "stopped on": r.stop_reason} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch", key=K + "table", column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "blocks N": st.column_config.NumberColumn(format="%d"),
        "compression": st.column_config.NumberColumn(format="%.1f x"),
        "relative error": st.column_config.NumberColumn(format="%.4g"),
        "fit time (s)": st.column_config.NumberColumn(format="%.2f"),
    })
    notes = sorted({n for r in rows for n in r.notes})
    if notes:
        with st.expander(f"Fit notes ({len(notes)})"):
            for n in notes:
                st.caption(n)
    if any(r.at_precision for r in rows):
        st.caption(f"Errors below {analysis.precision_text()} are at numerical precision (float64): they do not "
                   "rank the formats.")


def draw_figures(res: RunResult) -> None:
    st.markdown("#### Target and reconstructions")
    st.plotly_chart(ca.heatmaps(res.target_small, res.recons, shape=res.shape,
                                errors={r.format: r.error_text for r in res.main}),
                    width="stretch", key=K + "heatmaps")
    if res.target_small.shape != res.shape:
        st.caption(f"Drawn as block means ({res.target_small.shape[0]} x {res.target_small.shape[1]} cells) of "
                   f"the {res.shape[0]:,} x {res.shape[1]:,} matrices.")
    c1, c2 = st.columns(2, gap="large")
    with c1:
        fmts = list(res.residuals)
        pick = st.selectbox("Residual of", fmts, key=K + "residual_of")
        if pick not in res.residuals:
            pick = fmts[0]
        st.plotly_chart(ca.residual_heatmap(res.residuals[pick], pick, shape=res.shape),
                        width="stretch", key=K + "residual")
    with c2:
        st.plotly_chart(ca.convergence({r.format: r.history for r in res.main}), width="stretch",
                        key=K + "convergence")
        st.caption("Error per ALS sweep of the start that was kept (the error never increases). TT-SVD is "
                   "direct: one point.")


def draw_results(res: RunResult) -> None:
    st.subheader("Results")
    when = "from the cache" if st.session_state.get(K + "from_cache") else f"fitted at {res.finished}"
    st.caption(f"{res.desc} · {when} in {res.seconds:.1f} s")
    if spec is not None and spec.key != res.key:
        st.info("The inputs changed since these results: press **Fit** to update them.", icon=":material/edit:")
    if res.stopped:
        st.warning("Stopped: partial results (not cached).", icon=":material/stop_circle:")
    for msg in res.failures:
        st.error(f"**A fit failed:** {msg}", icon=":material/error:")
    if res.main:
        draw_table(res.main)
    c_chart, c_text = st.columns([3, 2], gap="large")
    with c_chart:
        if res.sweep:
            fig = ca.error_vs_params(res.sweep, main=res.main, dense=res.dense, reference=res.target == "gaussian")
            st.plotly_chart(fig, width="stretch", key=K + "pareto_chart")
        else:
            st.info("Sweep off: set the sweep to 3 or more budgets for the error-vs-parameters chart.",
                    icon=":material/show_chart:")
    with c_text:
        st.markdown("#### What these numbers show")
        st.markdown(analysis.explain(res.main, res.sweep, res.target, res.shape, noise=res.noise))
    if res.recons:
        draw_figures(res)
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Results (CSV)", results_csv(res), "btlab_approximation.csv", "text/csv",
                       icon=":material/download:", key=K + "dl_csv")
    if res.pt:
        c2.download_button("Fitted factors (.pt)", res.pt, "btlab_factors.pt", "application/octet-stream",
                           icon=":material/download:", key=K + "dl_pt",
                           help="torch.load(path, weights_only=True): per format its factors and core (BT, Tucker, "
                                "CP) or cores (TT), with the ranks and the relative error.")


shown = st.session_state.get(K + "shown")
if shown is None:
    st.info("Pick a target and a size, then press **Fit**. The default (256 x 256, exact BT structure, budget 1,000 "
            "and a sweep over 5 budgets) takes a few seconds.", icon=":material/compare:")
else:
    draw_results(shown)
