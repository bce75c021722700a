"""Small drawn pieces of the Training page: run outcomes, the queue line, the speed line, the estimate, the sweep.

These call ``st.*`` (unlike the rest of :mod:`app.training`); each takes plain values or the
trainer's events, so the page stays a list of sections.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from app.training import charts as ct
from app.training import tables
from app.training.inputs import changed_since
from app.training.plan import replaced
from app.widgets import escape_markdown
from btcore.train import SLOW_S, TrainConfig, checkpoint_bytes, histories_csv, probe_seconds, summary, sweep_csv, sweep_rows
from btcore.train.estimate import data_seconds, total_estimate

__all__ = ["show_outcomes", "outcome_kind", "show_queue", "speed_line", "estimate_runs", "show_estimate", "span_text", "estimate_text", "eta_text",
           "data_estimate", "sweep_probes", "show_sweep",
           "is_sweep", "show_adjustments", "number_text", "table_columns", "show_changed", "show_downloads"]


def show_adjustments(plan, choices) -> None:
    """A warning for each chosen value a model does not use (field, value used, why); other fits as notes."""
    for model, note in zip(plan.models, plan.model_notes):
        warnings = replaced(choices, model, note)
        for w in warnings:
            st.warning(escape_markdown(w), icon=":material/tune:")
        if note and not warnings:
            st.info(f"Adjusted to fit this frame size: {escape_markdown(note)}", icon=":material/tune:")


def show_changed(made_with: dict | None, now: dict[str, str]) -> None:
    """Say so when the page's inputs changed since the run shown (its results are of the inputs it started with)."""
    changes = changed_since(made_with or {}, now)
    if changes:
        st.info("These results are of the inputs the run started with; changed since: "
                + escape_markdown("; ".join(changes)) + ". Press **Train** to run the inputs above.",
                icon=":material/edit:")


def show_downloads(events: list[dict], results, key: str) -> None:
    """The histories (CSV), the summary (JSON) and one run's checkpoint, after a job has finished."""
    c1, c2, c3 = st.columns(3)
    c1.download_button("Histories (CSV)", histories_csv(events), "btlab_training.csv", "text/csv",
                       icon=":material/download:", key=key + "dl_csv")
    c2.download_button("Summary (JSON)", json.dumps(summary(results), default=str, indent=1),
                       "btlab_training_summary.json", "application/json", icon=":material/download:",
                       key=key + "dl_json")
    names = [r.name for r in results if r.model is not None]
    if names:
        pick = c3.selectbox("Checkpoint of", names, key=key + "ckpt_run", label_visibility="collapsed")
        res = next(r for r in results if r.name == pick)
        c3.download_button(f"Checkpoint of {pick} (.pt)",  # made only when the download is clicked
                           lambda: checkpoint_bytes(res.model, res.config, res.history), "btlab_model.pt",
                           "application/octet-stream", icon=":material/download:", key=key + "dl_ckpt",
                           help="Weights and configuration; load with btcore.train.load_checkpoint.")


#: How :func:`show_outcomes` says each kind of outcome: (its words, the alert, its icon).
_OUTCOMES = {"diverged": ("diverged", st.error, ":material/trending_up:"),
             "stalled": ("stalled", st.warning, ":material/horizontal_rule:"),
             "at chance": ("at chance", st.warning, ":material/horizontal_rule:"),
             "too short": ("too short to judge", st.info, ":material/hourglass_empty:")}


def outcome_kind(end: dict) -> str | None:
    """The key of :data:`_OUTCOMES` of a run's end event: its early end, or what a finished run's evaluations
    showed when it did not learn (the trainer's ``verdict``); None for a run that learnt, or was stopped."""
    if end["status"] in ("diverged", "stalled"):
        return end["status"]
    if end["status"] == "done" and end.get("verdict") in ("at chance", "too short"):
        return end["verdict"]
    return None


def show_outcomes(events: list[dict]) -> None:
    """Each diverged run as an error, each stalled run (and each finished one still at chance) as a warning,
    each finished run too short to judge as a note, with the reason as the trainer gave it.

    More than three such runs (a sweep) are one line per kind naming the runs, the reasons below it
    in an expander, so the charts stay in view.
    """
    ends = [ev for ev in events if ev.get("event") == "end" and outcome_kind(ev)]
    if len(ends) <= 3:
        for ev in ends:
            words, alert, icon = _OUTCOMES[outcome_kind(ev)]
            alert(f"**{escape_markdown(ev['run'])}** {words}: {escape_markdown(ev['reason'])}", icon=icon)
        return
    for kind, (words, alert, icon) in _OUTCOMES.items():
        runs = [ev for ev in ends if outcome_kind(ev) == kind]
        if runs:
            alert(f"{len(runs)} runs {words}: " + ", ".join(f"**{escape_markdown(ev['run'])}**" for ev in runs),
                  icon=icon)
    early = any(ev["status"] != "done" for ev in ends)
    with st.expander("Why each run stopped early" if early else "What each run's evaluations show",
                     icon=":material/info:"):
        for ev in ends:
            words = _OUTCOMES[outcome_kind(ev)][0]
            st.markdown(f"- **{escape_markdown(ev['run'])}** {words}: {escape_markdown(ev['reason'])}")


def number_text(formats: dict[str, str]) -> dict:
    """Column settings for the numbers :func:`app.training.tables.shown` wrote as text: right-aligned."""
    return {col: st.column_config.TextColumn(alignment="right") for col in formats}


def table_columns(formats: dict[str, str]) -> dict:
    """Column settings of the live table: narrow number columns (right-aligned text), the run's name of medium
    width, so the table fits the page width; the note is where a run stopped (its whole reason is in the outcomes
    above), the input-map column wide enough for its header.
    """
    return {col: st.column_config.TextColumn(alignment="right", width="small") for col in formats} | {
        "run": st.column_config.TextColumn(width="medium"), "note": st.column_config.TextColumn(width="medium"),
        "input-map parameters": st.column_config.TextColumn(alignment="right", width="medium"),
        "status": st.column_config.TextColumn(width="small"), "epoch": st.column_config.NumberColumn(width="small"),
        "step": st.column_config.NumberColumn(width="small")}


def show_queue(snap: dict) -> bool:
    """The queue line of a waiting job; True when it is waiting."""
    if snap["status"] != "queued":
        return False
    pos = snap.get("position")
    where = f"position {pos}" if pos else "starting"
    st.info(f"Waiting for a free slot on this server ({where} in the queue): other sessions' jobs are running. "
            "It starts by itself; Stop takes it out of the queue.", icon=":material/hourglass_top:")
    return True


def speed_line(rows: list[dict], events: list[dict]) -> str:
    """One line on the measured examples/s of each model (Markdown), with an explanation only where the
    measurements support it: why BT was slower than dense, or that it was faster.

    ``events`` give each run's format (its ``start`` event's ``kind``).
    """
    speeds = {r["run"]: r["examples/s"] for r in rows if isinstance(r.get("examples/s"), (int, float))}
    if len(speeds) < 2:
        return ""
    kinds = {e["run"]: e.get("kind") for e in events if e.get("event") == "start"}
    fastest = max(speeds, key=speeds.get)
    parts = ", ".join(f"{escape_markdown(k)} {v:,.0f}" for k, v in speeds.items())
    line = f"Measured examples/s: {parts}; fastest: {escape_markdown(fastest)}."
    bt = [v for k, v in speeds.items() if kinds.get(k) == "bt"]
    dense = [v for k, v in speeds.items() if kinds.get(k) == "dense"]
    if not bt or not dense:
        return line
    how = " ([how the contraction runs](/learn#steps))"
    if max(bt) < min(dense):
        return line + (" BT was slower than dense here: it contracts its N blocks one mode at a time, and with small "
                       "modes its many small steps cost more than one dense matrix product" + how + ".")
    if min(bt) > max(dense):
        return line + (" BT was faster than dense here: at this size its few contraction steps cost less than one "
                       "dense matrix product" + how + ".")
    return line


@st.cache_data(show_spinner=False, max_entries=64)
def _probe(config_dict: dict, n_train: int, n_val: int, frames: int) -> dict:
    return probe_seconds(TrainConfig.from_dict(config_dict), n_train, n_val, frames, steps=2)


def estimate_runs(runs, n_train: int, n_val: int, frames: int) -> list[dict]:
    """Each run's timed probe (:func:`btcore.train.probe_seconds` on the real shapes, cached per configuration)."""
    return [_probe(r.to_dict(), int(n_train), int(n_val), int(frames)) for r in runs]


def _between(lo: dict, hi: dict, t: float) -> dict:
    return {k: (lo[k] + t * (hi[k] - lo[k]) if isinstance(lo[k], (int, float)) else lo[k]) for k in lo}


def sweep_probes(runs, probe) -> list[dict]:
    """Probes of a sweep's runs, timing only the smallest and the largest BT model of the grid.

    ``probe(run) -> dict`` times one run (:func:`estimate_runs` on one); every other BT run's probe is
    interpolated linearly in its input-map parameters between those two (its steps and evaluations
    are the same: the grid shares the data and the optimiser), so a 3 x 3 grid costs two probes, not nine.
    """
    bt = [r for r in runs if r.model.kind == "bt"]
    if len(bt) <= 2:
        return [probe(r) for r in runs]
    size = {id(r): r.model.input_map_params() for r in bt}
    small, large = min(bt, key=lambda r: size[id(r)]), max(bt, key=lambda r: size[id(r)])
    p_small, p_large = probe(small), probe(large)
    span = max(size[id(large)] - size[id(small)], 1)
    return [probe(r) if r.model.kind != "bt" else _between(p_small, p_large, (size[id(r)] - size[id(small)]) / span)
            for r in runs]


@st.cache_data(show_spinner=False, max_entries=32)
def _data(spec) -> tuple[float | tuple[float, float, float], int, int]:
    task = spec.make_task()
    if spec.task == "action" and spec.folder is None:
        return data_seconds(task, spec.seed), int(spec.train_size), int(spec.val_size)
    if spec.task == "action":  # a clip folder: walked (its exact split) and a few clips read and timed
        est = task.folder_estimate()
        return (est["seconds"], est["low_s"], est["high_s"]), est["train"], est["val"]
    t0 = time.perf_counter()
    train, val = task.data(spec.seed)
    return time.perf_counter() - t0, len(train), len(val)


def data_estimate(spec) -> tuple[float | tuple[float, float, float], int, int]:
    """``(seconds to build the data, training examples, validation examples)`` of ``spec`` (a DataSpec; cached).

    The seconds are one number, or for a clip folder ``(estimate, low, high)`` (as
    :func:`btcore.train.estimate.total_estimate` takes them).
    Synthetic clips are timed on a sample; a clip folder is walked (its split counted exactly) and a
    few of its clips read and timed; another task's data are built once and timed (and counted).
    """
    return _data(spec)


def span_text(est: dict) -> str:
    """The estimate's seconds as the page writes them everywhere (Markdown): its range, or one number when
    both ends round alike; under a second is "under 1 s". The middle lies inside the range."""
    lo, mid, hi = est["low_s"], est["estimated_s"], est["high_s"]
    if f"{lo:,.0f}" != f"{hi:,.0f}":
        return f"**{lo:,.0f}-{hi:,.0f} s**"
    return "**under 1 s**" if hi < 0.5 else f"about **{mid:,.0f} s**"


def estimate_text(est: dict, what: str = "all runs") -> str:
    """The estimate as one line (Markdown): its range (:func:`span_text`) and each phase."""
    phases = [f"data {est['data_s']:,.1f} s", f"building {est['build_s']:,.1f} s", f"training {est['train_s']:,.1f} s",
              f"evaluation {est['eval_s']:,.1f} s"]
    return (f"Estimated: {span_text(est)} for {what} ({', '.join(phases)}), from timed steps of each model here; the "
            "range spans the fastest and slowest timed step (and, for a clip folder, sampled clip) and load from "
            "other sessions.")


def show_estimate(where, est: dict, what: str = "all runs") -> None:
    """The estimate (every phase, :func:`estimate_text`) next to Train; above :data:`SLOW_S` a warning with the
    same span (one estimate per screen, never a second rounding of it)."""
    where.caption(estimate_text(est, what))
    if est["estimated_s"] > SLOW_S:
        st.warning(f"This is estimated at {span_text(est)} on this machine (over {SLOW_S / 60:.0f} minutes); lower "
                   "the frame size, the epochs or the number of examples for a quick look.",
                   icon=":material/schedule:")


def eta_text(eta: float | None, elapsed: float, first_total: float | None) -> str:
    """The time left; when the projected total (``elapsed + eta``) grew past the first projection
    ``first_total`` (by over 10 % and 2 s) it says so and why, so time left never grows unexplained.
    """
    if eta is None:
        return ""
    text = f" · about {eta:,.0f} s left"
    total = elapsed + eta
    if first_total is not None and total > 1.1 * first_total + 2.0:
        text += (f" (now about {total:,.0f} s in all, not {first_total:,.0f} s: the measured steps are slower than "
                 "the estimate)")
    return text


def is_sweep(events: list[dict]) -> bool:
    """Whether the events are of a sweep (more than one BT (R, N))."""
    pairs = {(str(e.get("rank")), e.get("blocks")) for e in events if e.get("event") == "start" and e.get("kind") == "bt"}
    return len(pairs) > 1


def show_sweep(events: list[dict], chance: float | None, key: str, downloads: bool = True, *, task: str = "action",
               metric: str = "val_acc", metric_label: str = "validation accuracy") -> None:
    """The sweep's charts (the task's ``metric`` vs parameters, R x N heatmap), its table and CSV, from the end events."""
    starts = {e["run"]: e for e in events if e.get("event") == "start"}
    rows = sweep_rows([{**e, "input_map_params": starts.get(e["run"], {}).get("input_map_params")}
                       for e in events if e.get("event") == "end"], task)
    if not rows:
        st.caption("The sweep's charts appear as its runs finish.")
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(ct.sweep_figure(rows, chance, metric, metric_label), width="stretch", key=key + "sweep_scatter")
    c2.plotly_chart(ct.sweep_heatmap(rows, metric, metric_label), width="stretch", key=key + "sweep_heat")
    table = tables.sweep_table(rows, metric, metric_label)
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key=key + "sweep_table",
                 column_config=number_text({k: "" for k in table[0] if k not in ("run", "status")}))
    if downloads:
        st.download_button("Sweep grid (CSV)", sweep_csv(rows, task), "btlab_sweep.csv", "text/csv",
                           icon=":material/download:", key=key + "dl_sweep")
