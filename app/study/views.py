"""Drawn pieces of the Format study page: the plan before launch, the live table, the results and their exports.

These call ``st.*``; each takes plain values, the plan, or the :class:`~btcore.train.study.StudyResult`.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.widgets import escape_markdown, show_error
from btcore.train import SLOW_S
from btcore.train.study import estimate_study

from . import charts
from .inputs import K
from .plan import StudyPlan
from .run import STATE
from .sources import UPLOAD_MAX_BYTES, read_upload

__all__ = ["upload_control", "estimate", "show_plan", "show_live", "show_results", "results_csv", "TABLE_COLUMNS"]

#: The results table's columns, in order (fields of the study's rows).
TABLE_COLUMNS = ("run", "format", "phase", "budget", "ranks", "blocks", "params", "total_params", "val_metric",
                 "val_loss", "examples_per_s", "seconds", "status", "pareto", "recommended", "fit_error")


def upload_control() -> bytes | None:
    """The ``.npz`` uploader of the sequences task and the upload it gives (None: none, or refused).

    An accepted upload is kept for the session: the uploader forgets its file on a page switch, the
    page does not. A refused one is said, and drops the earlier upload.
    """
    file = st.file_uploader(f"Sequences (.npz, up to {UPLOAD_MAX_BYTES // 1024**2} MiB)", type=["npz"],
                            key=K + "upload_file")
    if file is None:
        if "upload" not in STATE:
            return None
        name, upload = STATE["upload"]
        st.caption(f"Using the earlier upload `{name}`.")
        return upload
    try:
        upload, n_classes = read_upload(file.name, file.getvalue())
    except ValueError as exc:
        STATE.pop("upload")
        show_error(exc, "The upload was refused")
        return None
    STATE.set("upload", (file.name, upload))
    st.caption(f"`{file.name}`: {n_classes} classes; a quarter of each class is held out for validation.")
    return upload


def estimate(plan: StudyPlan, key: str) -> float:
    """Estimated seconds of the study's trained runs (:func:`~btcore.train.study.estimate_study`), once per plan."""
    memo = STATE.setdefault("estimates", {})
    if key not in memo:
        train_set, val_set = plan.task.data(plan.base.seed)
        memo.clear()  # one plan's estimate is all a page shows
        memo[key] = estimate_study(plan.task, plan.jobs, train_set, val_set)
    return memo[key]


def show_plan(plan: StudyPlan, seconds: float | None) -> None:
    """What will run: the jobs with their budgets and sizes, notes on what did not fit, the estimate."""
    rows = [{"run": j.name, "format": charts.format_label(j.format), "phase": j.phase, "budget": j.budget,
             "input-map params": j.config.model.input_map_params() if j.config is not None else None}
            for j in plan.jobs]
    fine = f", then {plan.finetune_epochs} fine-tuning epochs each" if plan.finetune_epochs else ""
    epochs = f"{plan.base.epochs} epoch{'s' if plan.base.epochs != 1 else ''}"
    st.markdown(f"**{len(plan.jobs)} runs** on {escape_markdown(plan.data_label)} ({plan.features:,} input features, "
                f"input modes {'x'.join(map(str, plan.base.model.in_modes))}), {epochs} each{fine}.")
    for note in plan.notes:
        st.info(escape_markdown(note) + "; raise that budget to include it.", icon=":material/info:")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="study_plan_table",
                 column_config={"input-map params": st.column_config.NumberColumn(format="localized")})
    if seconds is not None:
        st.caption(f"Estimated: about **{seconds:,.0f} s** for the trained runs (a timed probe of each model here; "
                   "compressing adds a fit per budget).")
        if seconds > SLOW_S:
            st.warning(f"This study is estimated at about {seconds / 60:,.0f} minutes here; lower the epochs, the "
                       "clips or the budgets for a quick look.", icon=":material/schedule:")


def show_live(rows: list[dict]) -> None:
    """The runs started so far (updated while the study runs)."""
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="study_live_table")


def results_csv(result) -> str:
    """The study's rows as CSV (the columns of :data:`TABLE_COLUMNS`)."""
    return pd.DataFrame([r.to_dict() for r in result.rows], columns=list(TABLE_COLUMNS)).to_csv(index=False)


def _recommendation(result, key: str, downloads: bool) -> None:
    rec = result.recommended
    if rec is None:
        st.warning("No run finished within the largest budget, so there is nothing to recommend.",
                   icon=":material/help:")
        return
    st.success(f"**Recommended: {escape_markdown(rec.run)}** — {result.metric_label} {rec.val_metric:.4g} with "
               f"{rec.params:,} input-map parameters ({rec.phase}): the best {result.metric_label} within the largest "
               f"budget, {max(result.budgets):,}; ties go to fewer parameters.", icon=":material/recommend:")
    code = result.export_code(weights_file="model.pt")
    st.code(code, language="python")
    if downloads:
        c1, c2 = st.columns(2)
        c1.download_button("Layer configuration (.py)", code, "btlab_study_model.py", "text/x-python",
                           icon=":material/download:", key=key + "dl_code")
        c2.download_button("Trained weights (.pt)", lambda: result.export_state_dict(), "model.pt",
                           "application/octet-stream", icon=":material/download:", key=key + "dl_weights",
                           help="The recommended model's state dict; the code above loads it.")


def show_results(result, key: str, *, downloads: bool = True) -> None:
    """The study's charts, its table, the recommendation with its export, and the results' downloads."""
    data = result.to_dict()
    rows = data["rows"]
    if not rows:
        st.info("No run finished before the stop.", icon=":material/stop_circle:")
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.front_figure(rows, result.metric_label), width="stretch", key=key + "front_chart")
    c2.plotly_chart(charts.speed_figure(rows, result.metric_label), width="stretch", key=key + "speed_chart")
    if any(r["phase"] == "compressed" for r in rows):
        st.plotly_chart(charts.compress_figure(rows, result.metric_label), width="stretch",
                        key=key + "compress_chart")
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["ranks"] = table["ranks"].map(lambda r: "-" if r is None else "x".join(map(str, r)))
    st.dataframe(table, hide_index=True, width="stretch", key=key + "results_table",
                 column_config={"val_metric": st.column_config.NumberColumn(result.metric_label, format="%.4f"),
                                "params": st.column_config.NumberColumn("input-map params", format="localized"),
                                "examples_per_s": st.column_config.NumberColumn("examples/s", format="%.0f")})
    _recommendation(result, key, downloads)
    if downloads:
        c1, c2 = st.columns(2)
        c1.download_button("Results (CSV)", results_csv(result), "btlab_study.csv", "text/csv",
                           icon=":material/download:", key=key + "dl_csv")
        c2.download_button("Results (JSON)", json.dumps(data, indent=1, default=str), "btlab_study.json",
                           "application/json", icon=":material/download:", key=key + "dl_json")
