"""What the Approximation page draws from its results: the table, the figures, the advice.

Called from ``pages/approximation.py`` in the script thread; pure drawing (the numbers come from
:mod:`.run`, :mod:`.analysis` and :mod:`.advice`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.approximation import charts as ca

from . import advice as adv
from . import analysis
from .inputs import STATE, K
from .run import RunResult, results_csv



__all__ = ["table_frame", "NOT_APPLICABLE", "eta_text", "ETA_ROSE", "draw_table", "draw_figures", "draw_results", "draw_advice", "compression_text"]


@st.cache_data(max_entries=64, show_spinner=False)
def _explain(key: tuple, finished: str, _main: list, _sweep: list, target: str, shape: tuple, noise) -> str:
    """The teaching text of one finished run, written once for every session showing it (a shared or stored
    run has one key and one finish time; the records themselves, ``_``-named, are not hashed)."""
    return analysis.explain(_main, _sweep, target, shape, noise=noise)


#: What a table cell shows where a column does not apply to the row (TT and TR have no blocks).
NOT_APPLICABLE = "—"


def table_frame(rows: list) -> pd.DataFrame:
    """The results table of the main fits: every cell a value or :data:`NOT_APPLICABLE` (never "None")."""
    return pd.DataFrame([{
        "format": r.format, "ranks": r.ranks, "blocks N": NOT_APPLICABLE if r.blocks is None else f"{r.blocks:,}",
        "parameters": r.params, "compression": compression_text(r.compression), "relative error": r.rel_error,
        "fit time (s)": r.seconds, "ALS sweeps": r.sweeps,
        "stopped on": r.stop_reason or NOT_APPLICABLE} for r in rows])


#: A projected total time (elapsed + left) this many times the lowest one projected before is "uncertain".
ETA_ROSE = 1.5


def eta_text(elapsed: float, left: float | None, lowest_total: float | None) -> str:
    """The time-left part of a progress line: "about 12 s left", or, once the projected total has risen
    above :data:`ETA_ROSE` times its lowest earlier value, the same marked as uncertain with that history."""
    if left is None:
        return " · time left: estimated once some work is done"
    text = f" · about {left:,.0f} s left"
    total = elapsed + left
    if lowest_total is not None and total > ETA_ROSE * lowest_total:
        text += f" (uncertain: the projected total rose from {lowest_total:,.0f} s to {total:,.0f} s)"
    return text


def compression_text(ratio: float) -> str:
    """``ratio`` (dense entries / parameters) as the page writes it everywhere: "17,554.3x"."""
    return f"{ratio:,.1f}x"



def draw_table(rows: list) -> None:
    table = table_frame(rows)
    st.dataframe(table, hide_index=True, width="stretch", key=K + "table", column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
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


def draw_figures(res: RunResult, lesson: bool = False) -> None:
    st.markdown("#### Target and reconstructions")
    errors = {r.format: r.error_text.split(" (")[0] for r in res.main}  # the number; the table has the notes
    if getattr(res, "picture", False):
        st.plotly_chart(ca.grey_images(res.target_small, res.recons, shape=res.shape, errors=errors),
                        width="stretch", key=K + "heatmaps")
    else:
        st.plotly_chart(ca.heatmaps(res.target_small, res.recons, shape=res.shape, errors=errors),
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
        st.plotly_chart(ca.convergence({r.format: r.history for r in res.main},
                                       phases={r.format: getattr(r, "phases", []) for r in res.main}),
                        width="stretch", key=K + "convergence")
        st.caption("Error per iteration of the start that was kept (the error never increases): ALS sweeps, and "
                   "Gauss-Newton steps (shaded) where a fit left an ALS swamp. TT-SVD is direct: one point.")
        stalled = [r for r in res.main if getattr(r, "status", "") == "stalled" and not r.at_precision]
        for r in stalled:
            st.warning(analysis.stall_text(r.format, r.rel_error, r.rank_floor, getattr(res, "effort", "quick"),
                                           lesson), icon=":material/trending_flat:")


def draw_results(res: RunResult, spec, lesson: bool = False) -> None:
    st.subheader("Results")
    when = "from the cache" if STATE.get("from_cache") else f"fitted at {res.finished}"
    st.caption(f"{res.desc} · {when} in {res.seconds:.1f} s")
    note = None if STATE.get("from_cache") else STATE.get("shared_note")
    if note:
        st.caption(note)
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
        st.markdown(_explain(res.key, res.finished, res.main, res.sweep, res.target, res.shape, res.noise))
    if res.recons:
        draw_figures(res, lesson)
    if lesson:
        return
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Results (CSV)", results_csv(res), "btlab_approximation.csv", "text/csv",
                       icon=":material/download:", key=K + "dl_csv")
    if res.pt:
        c2.download_button("Fitted factors (.pt)", res.pt, "btlab_factors.pt", "application/octet-stream",
                           icon=":material/download:", key=K + "dl_pt",
                           help="torch.load(path, weights_only=True): per format its factors and core (BT, Tucker, "
                                "CP) or cores (TT, TR), with the ranks and the relative error.")


def draw_advice(advice: adv.Advice, spec, inputs, lesson: bool = False) -> None:
    """The advisor's Pareto front, its recommendation and the button that applies it."""
    st.markdown("#### Suggested format")
    df, best = advice.table, advice.best
    st.caption(f"{len(df)} candidates over {len(df.attrs.get('tensorizations', []))} tensorizations, every one within "
               f"{advice.budget:,} parameters, in {advice.seconds:.1f} s" + (" (stopped early)" if advice.stopped else "")
               + ". TT by TT-SVD, Tucker screened by its truncated HOSVD, BT, CP and TR by short ALS fits; the candidates "
               "near the front were refitted in full.")
    if STATE.get("suggest_note"):
        st.caption(STATE.get("suggest_note"))
    if spec is not None and advice.key != (spec.target_key, adv.advice_budget(spec),
                                           tuple(t.task.format.lower() for t in spec.main)):
        st.info("The target or the budget changed since this suggestion: press **Suggest** to update it.",
                icon=":material/edit:")
    if best is None:
        st.warning("No candidate was evaluated.", icon=":material/stop_circle:")
        return
    c1, c2 = st.columns([3, 2], gap="large")
    c1.plotly_chart(ca.advice_front(df), width="stretch", key=K + "advice_chart")
    with c2:
        st.markdown(f"**{best.format}** on {'x'.join(map(str, best.in_modes))} → {'x'.join(map(str, best.out_modes))}, "
                    f"ranks {'-'.join(map(str, best.ranks))}" + ("" if best.blocks is None else f", N = {best.blocks}")
                    + f": **{best.params:,} parameters**, relative error **{best.error:.4g}** ({df.attrs['rule']}).")
        st.button("Use this suggestion", key=K + "apply", icon=":material/check:", on_click=adv.apply, args=(inputs,),
                  type="primary", help="Sets the modes and this format's ranks (explicit ranks) and, when it can hold "
                                       "them, the shared configuration of the Shapes, Learn and Training pages. "
                                       "Undo puts both back.")
        applied = STATE.get(adv.APPLIED)
        if applied:
            st.caption(f"Applied {applied[0]}. {applied[2]}")
        if STATE.get(adv.UNDO) is not None:
            st.button("Undo", key=K + "undo", icon=":material/undo:", on_click=adv.undo, args=(inputs,),
                      help="Restores the page's inputs and the shared configuration as they were before.")
        elif STATE.get(adv.UNDONE):
            st.caption("Undone: the inputs and the shared configuration are as they were before the suggestion.")
    front = df[df["pareto"]][["format", "in_modes", "out_modes", "ranks", "blocks", "params", "error", "stage"]]
    with st.expander(f"Pareto front ({len(front)} of {len(df)} candidates)"):
        st.dataframe(front.assign(**{c: front[c].map(lambda t: "x".join(map(str, t))) for c in ("in_modes", "out_modes")},
                                  ranks=front["ranks"].map(lambda t: "-".join(map(str, t)))),
                     hide_index=True, width="stretch", key=K + "advice_table")
