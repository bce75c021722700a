"""Drawn pieces of the Format study page: the plan before launch, the live table, the results and their exports.

These call ``st.*``; each takes plain values, the plan, or the :class:`~btcore.train.study.StudyResult`.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import streamlit as st

from app.widgets import escape_markdown, show_error
from btcore.train import SLOW_S
from btcore.train.study import NOISE_Z, SHARE_METRICS

from . import charts
from .charts import PHASE_NAMES
from .inputs import K
from .plan import StudyPlan
from .run import STATE
from .sources import UPLOAD_MAX_BYTES, read_upload
from .timing import seconds_text, study_estimate

__all__ = ["upload_control", "estimate", "show_plan", "show_live", "show_results", "results_csv", "results_table",
           "verdict_text", "clips_to_separate", "estimate_text", "TABLE_COLUMNS", "MISSING"]

#: The results table's columns, in order (fields of the study's rows).
TABLE_COLUMNS = ("run", "format", "phase", "budget", "ranks", "blocks", "params", "total_params", "val_metric",
                 "val_loss", "examples_per_s", "seconds", "status", "pareto", "recommended", "fit_error")


#: A cell with no value (the dense model's budget, a trained run's fit error).
MISSING = "—"


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


def estimate(plan: StudyPlan, key: str) -> dict:
    """The study's estimate of every phase with its range (:func:`~app.study.timing.study_estimate`), once per plan."""
    memo = STATE.setdefault("estimates", {})
    if key not in memo:
        memo.clear()  # one plan's estimate is all a page shows
        memo[key] = study_estimate(plan)
    return memo[key]


def estimate_text(est: dict) -> str:
    """The estimate as one line: its range and each phase."""
    phases = [f"data {est['data_s']:,.1f} s", f"building {est['build_s']:,.1f} s",
              f"training {est['train_s']:,.1f} s", f"evaluation {est['eval_s']:,.1f} s"]
    if est.get("fit_s"):
        phases.append(f"compression fits {est['fit_s']:,.1f} s")
    return (f"Estimated: **{seconds_text(est['low_s'], est['high_s'])}** for the whole study ({', '.join(phases)}), "
            "from timed steps of each model here; the range spans the fastest and slowest timed step and load "
            "from other sessions.")


def show_plan(plan: StudyPlan, est: dict | None) -> None:
    """What will run: the jobs with their budgets and sizes, notes on what did not fit, the estimate."""
    rows = [{"run": j.name, "format": charts.format_label(j.format), "phase": j.phase, "budget": _int(j.budget),
             "input-map params": _int(j.config.model.input_map_params() if j.config is not None else None)}
            for j in plan.jobs]
    fine = f", then {plan.finetune_epochs} fine-tuning epochs each" if plan.finetune_epochs else ""
    epochs = f"{plan.base.epochs} epoch{'s' if plan.base.epochs != 1 else ''}"
    st.markdown(f"**{len(plan.jobs)} runs** on {escape_markdown(plan.data_label)} ({plan.features:,} input features, "
                f"input modes {'x'.join(map(str, plan.base.model.in_modes))}), {epochs} each{fine}.")
    for note in plan.notes:
        st.info(escape_markdown(note) + "; raise that budget to include it.", icon=":material/info:")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="study_plan_table",
                 column_config={c: st.column_config.TextColumn(alignment="right") for c in ("budget",
                                                                                           "input-map params")})
    if est is not None:
        st.caption(estimate_text(est))
        if est["estimated_s"] > SLOW_S:
            st.warning(f"This study is estimated at {seconds_text(est['low_s'], est['high_s'])} here; lower the "
                       "epochs, the clips or the budgets for a quick look.", icon=":material/schedule:")


def show_live(rows: list[dict]) -> None:
    """The runs started so far (updated while the study runs)."""
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="study_live_table")


def results_csv(result) -> str:
    """The study's rows as CSV (the columns of :data:`TABLE_COLUMNS`)."""
    return pd.DataFrame([r.to_dict() for r in result.rows], columns=list(TABLE_COLUMNS)).to_csv(index=False)


def clips_to_separate(a: float, b: float) -> int | None:
    """Validation clips at which accuracies ``a`` and ``b`` differ by :data:`~btcore.train.study.NOISE_Z` standard
    errors of their difference (None: equal accuracies, which no number of clips tells apart)."""
    if a == b:
        return None
    return math.ceil(NOISE_Z**2 * (a * (1 - a) + b * (1 - b)) / (a - b) ** 2)


def verdict_text(result) -> tuple[str, list[str]]:
    """Why the study recommends no run (a sentence) and what would help, naming only the page's controls."""
    v, n = result.verdict, result.val_size
    top, label = v.top, result.metric_label
    clips = "Validation clips" if result.task != "sequences" else "a .npz with more examples (a quarter is validated)"
    if v.reason == "chance":
        head = (f"No recommendation: the best run, {top.run}, reaches {label} {top.val_metric:.1%} on {n:,} "
                f"validation clips, within the noise of chance ({result.chance:.1%}, ± {result.chance_margin:.1%}): "
                "every run is still near chance, so the runs cannot be told apart.")
        more = " and **Training clips**" if result.task != "sequences" else ""
        return head, [f"More **Epochs**{more}: the models have not learnt beyond chance yet.",
                      f"More **{clips}**: one clip is {1 / n:.1%} of the accuracy now."]
    names = ", ".join(f"{r.run} ({r.val_metric:.1%})" for r in v.tied[:4]) + (" and more" if len(v.tied) > 4 else "")
    head = (f"No recommendation: {top.run} has the best {label} ({top.val_metric:.1%}), but {len(v.tied)} other "
            f"run{'s are' if len(v.tied) > 1 else ' is'} within the noise of it: {names}. On {n:,} validation clips "
            f"an accuracy's standard error is about {v.noise:.1%} (one clip is {1 / n:.1%}), so these runs cannot be "
            "told apart.")
    need = clips_to_separate(top.val_metric, v.tied[0].val_metric)
    tips = [f"More **{clips}**: " + (f"a gap of {abs(top.val_metric - v.tied[0].val_metric):.1%} is told apart on about "
                                     f"{need:,} (now {n:,})." if need else "the top runs scored the same, so more "
                                     "clips alone cannot separate them.")]
    tips.append("More **Epochs**: longer training can open the gaps between the formats beyond the noise.")
    return head, tips


def _export(result, row, key: str, downloads: bool) -> None:
    code = result.export_code(row.run, weights_file="model.pt")
    st.code(code, language="python")
    if downloads:
        c1, c2 = st.columns(2)
        c1.download_button("Layer configuration (.py)", code, "btlab_study_model.py", "text/x-python",
                           icon=":material/download:", key=key + "dl_code")
        c2.download_button("Trained weights (.pt)", lambda: result.export_state_dict(row.run), "model.pt",
                           "application/octet-stream", icon=":material/download:", key=key + "dl_weights",
                           help="This model's state dict; the code above loads it.")


def _int(v) -> str:
    return MISSING if v is None else f"{int(v):,}"


def _num(v, fmt: str) -> str:
    return MISSING if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def results_table(result) -> tuple[pd.DataFrame, dict]:
    """The results as the page shows them: human column names, every cell text (integers with thousands
    separators, :data:`MISSING` where a value does not apply), the internal columns left to the CSV."""
    rows = [r.to_dict() for r in result.rows]
    compressed = any(r["phase"] != "trained" for r in rows)
    share = result.metric in SHARE_METRICS
    out = []
    for r in rows:
        row = {"Run": r["run"]}
        if compressed:
            row["Phase"] = PHASE_NAMES[r["phase"]]
        row |= {"Budget": _int(r["budget"]), "Input-map params": _int(r["params"]),
                result.metric_label.capitalize(): _num(r["val_metric"], ".1%" if share else ".4g"),
                "Examples/s": _int(None if r["examples_per_s"] is None else round(r["examples_per_s"])),
                "Seconds": _num(r["seconds"], ",.1f"), "Status": r["status"],
                "Front": "yes" if r["pareto"] else ""}
        if compressed:
            row["Fit error"] = _num(r["fit_error"], ".3f")
        out.append(row)
    table = pd.DataFrame(out)
    wide = ("Input-map params", result.metric_label.capitalize())  # headers that a small column would cut
    config = {c: st.column_config.TextColumn(alignment="right", width=None if c in wide else "small")
              for c in table.columns if c not in ("Run", "Phase", "Status", "Front")}
    config |= {c: st.column_config.TextColumn(width="small") for c in ("Status", "Front")}
    config["Run"] = st.column_config.TextColumn(help="The format, its ranks and the budget it was sized for")
    return table, config


def _recommendation(result, key: str, downloads: bool) -> None:
    v = result.verdict
    if v is None or v.top is None:
        st.warning("No run finished within the largest budget, so there is nothing to recommend.",
                   icon=":material/help:")
        return
    rec = v.best
    if rec is None:
        head, tips = verdict_text(result)
        st.warning(escape_markdown(head) + "\n\nWhat would help:\n" +
                   "\n".join(f"- {t}" for t in tips),
                   icon=":material/balance:")
        if v.top.run in result.models:
            with st.expander(f"Export the top-scoring run anyway ({v.top.run}; not a recommendation)"):
                _export(result, v.top, key, downloads)
        return
    why = (f"told apart from every other run and from chance by more than {NOISE_Z:g} standard errors on "
           f"{result.val_size:,} validation clips" if v.reason == "clear"
           else "this metric has no noise estimate here, so it is the best measured")
    st.success(f"**Recommended: {escape_markdown(rec.run)}** — {result.metric_label} {rec.val_metric:.4g} with "
               f"{rec.params:,} input-map parameters ({rec.phase}): the best {result.metric_label} within the largest "
               f"budget, {max(result.budgets):,} ({why}); ties go to fewer parameters.", icon=":material/recommend:")
    _export(result, rec, key, downloads)


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
    table, config = results_table(result)
    st.dataframe(table, hide_index=True, width="stretch", key=key + "results_table", column_config=config)
    st.caption("The CSV and JSON below hold every field with raw values (ranks, blocks, all parameters, "
               "validation loss).")
    _recommendation(result, key, downloads)
    if downloads:
        c1, c2 = st.columns(2)
        c1.download_button("Results (CSV)", results_csv(result), "btlab_study.csv", "text/csv",
                           icon=":material/download:", key=key + "dl_csv")
        c2.download_button("Results (JSON)", json.dumps(data, indent=1, default=str), "btlab_study.json",
                           "application/json", icon=":material/download:", key=key + "dl_json")
