"""Training: race models whose input maps are dense, TT, BT or TR on a task (action clips, digits, captions), live."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st
import torch

import btcore
from app.training import charts as ct
from app.jobs import get_job, share_note
from app.frame import page_setup
from app.config import get_config
from app.training import inputs as fields
from app.training import gallery, tables
from app.training.command import race_command
from app.training.controls import action_controls, scroll_into_view, task_option_controls
from app.training.inputs import HIDDEN_SIZES, SYNTHETIC
from app.training.plan import FRAME_SIZES, KIND_LABELS, Choices, make_runs, paper_models, plan_models
from app.training import views
from app.training.worker import JOB_KEY, STATE, K, DataSpec, RaceInfo, launch
from app.widgets import show_error
from btcore.data import parse_frame_shape
from btcore.classifier import ucf11_config
from btcore.memory import available_memory
from btcore.shapes import parse_ints
from btcore.tasks import TASKS
from btcore.train import OPTIMIZERS, cpu_count, device_name, sweep_configs
from btcore.train.estimate import total_estimate

shared = get_config()
# Every input lives in one store outside the widgets (restored after a page switch, read from a link).
frame = page_setup("training", fields.page_fields(), prefix=K, defaults=fields.defaults(shared))
inputs, lesson = frame.inputs, frame.lesson

st.title("Training")
st.caption("Train recurrent models whose input maps are dense, Tensor-Train, Block-Term or Tensor-Ring on one task, "
           "side by side on the same batches. Training runs in the background; the charts update live.")

dev = device_name("auto")
n_cpu = cpu_count()

# -- task ------------------------------------------------------------------------------------------
c_task, c_model, c_opt = st.columns(3, gap="large")
with c_task:
    st.subheader("Task")
    task_name = st.selectbox("Task", list(fields.page_tasks()), key=K + "task",
                             format_func=lambda n: f"{n} ({TASKS[n].metric_label})")
    if task_name == "action":
        act = action_controls(inputs, K)
        choice, folder, classes, frames = act.choice, act.folder, act.classes, act.frames
        frame_label, train_size, val_size, noise = act.frame_label, act.train_size, act.val_size, act.noise
        options = {}
    else:
        options = task_option_controls(task_name, K)
        choice, folder, classes, frames, noise = None, None, None, 1, None
        frame_label, train_size, val_size = inputs["t_frame"], options.get("train_size"), options.get("val_size")

# -- models ----------------------------------------------------------------------------------------
with c_model:
    st.subheader("Models")
    kinds = st.multiselect("Compare", list(KIND_LABELS), key=K + "kinds")
    cell = st.radio("Cell", ["lstm", "gru"], format_func=str.upper, horizontal=True, key=K + "cell")
    hidden = st.select_slider("Hidden size", HIDDEN_SIZES, key=K + "hidden",
                              help="Factorized into d modes: 64 = 4x4x2x2, 256 = 4x4x4x4 (the paper's).")
    c1, c2 = st.columns(2)
    d = c1.number_input("Order d", 2, 6, step=1, key=K + "d")
    blocks = c2.number_input("BT blocks N", 1, 16, step=1, key=K + "blocks")
    c1, c2, c3 = st.columns(3)
    bt_rank_text = c1.text_input("BT rank R", key=K + "bt_rank")
    tt_rank_text = c2.text_input("TT ranks", key=K + "tt_ranks")
    tr_rank_text = c3.text_input("TR ranks", key=K + "tr_ranks", help="The ring's ranks: one int, or d of them.")
    dropout = st.slider("Dropout (input and state)", 0.0, 0.5, step=0.05, key=K + "dropout")

# -- optimiser -------------------------------------------------------------------------------------
with c_opt:
    st.subheader("Optimiser")
    c1, c2 = st.columns(2)
    batch = c1.number_input("Batch", 1, 1024, key=K + "batch")
    epochs = c2.number_input("Epochs", 1, 500, key=K + "epochs")
    optimizer, lr, clip, seed = (inputs[n] for n in ("t_opt", "t_lr", "t_clip", "t_seed"))
    if not lesson:  # the lesson view trains with the stored (default) optimiser settings
        optimizer = st.selectbox("Optimiser", list(OPTIMIZERS), key=K + "optimizer", persist_state="session")
        c1, c2 = st.columns(2)
        lr = c1.number_input("Learning rate", 1e-5, 1000.0, format="%.4g", key=K + "lr", persist_state="session",
                             help="Up to 1,000, to see a run diverge (SGD, no clipping).")
        clip = c2.number_input("Gradient clip (0 = off)", 0.0, 100.0, key=K + "clip", persist_state="session")
        seed = st.number_input("Seed", 0, 2**31 - 1, key=K + "seed", persist_state="session")
    # torch's thread count is process-wide: the app sets it once at startup, runs never change it.
    nt = torch.get_num_threads()
    st.caption(f"Device: **{dev.split(' (')[0] if 'CPU' not in dev else f'CPU ({n_cpu} cores)'}**"
               + (f" · {nt} thread{'s' if nt != 1 else ''} per operation, set for the whole app" if 'CPU' in dev else ""))

# -- configurations and sizes ----------------------------------------------------------------------
choices = Choices(tuple(kinds), cell, int(hidden), int(d), int(blocks), bt_rank_text, tt_rank_text, float(dropout),
                  frame_label, optimizer, float(lr), int(batch), int(epochs), int(seed), float(clip), tr_rank_text,
                  task_name)
try:
    if task_name == "action" and choice != SYNTHETIC and not classes:
        raise ValueError(f"the clip folder {choice!r} has no readable class sub-folders")
    plan = plan_models(choices, shared, classes, options)
except ValueError as exc:
    show_error(exc, "Check the settings")
    st.stop()

free = available_memory("cuda" if torch.cuda.is_available() else "cpu")
st.divider()
if task_name == "action":
    size_rows = tables.size_rows(list(plan.models), int(batch), int(frames), optimizer)
    st.markdown(plan.summary(int(hidden)))
else:
    size_rows = tables.model_rows(list(plan.models), int(batch), optimizer, task_name)
views.show_adjustments(plan, choices)
st.dataframe(pd.DataFrame(size_rows).drop(columns="_bytes"), hide_index=True, width="stretch", key=K + "sizes",
             column_config={"input-map parameters": st.column_config.NumberColumn(format="localized"),
                            "all parameters": st.column_config.NumberColumn(format="localized")})
too_big = tables.too_big(size_rows, free)
if too_big:
    st.warning(f"{', '.join(too_big)} may need more than half of the {btcore.format_bytes(free)} of free memory on "
               "this machine; lower the frame size, batch or hidden size.", icon=":material/memory:")
if choice == SYNTHETIC:
    clip_bytes = 4 * int(frames) * btcore.shapes.prod(plan.frame_shape)
    st.caption(f"Synthetic data: {int(train_size) + int(val_size):,} clips x {clip_bytes / 1024**2:.2f} MiB; "
               "kept in memory up to 512 MiB per split, generated batch by batch beyond that.")


def data_spec(shape: tuple[int, int, int]) -> DataSpec:
    """The task above (for action: with frames of ``shape``, C x H x W)."""
    if task_name != "action":
        return DataSpec((), 1, int(seed), task=task_name, options=tuple(sorted(options.items())))
    if folder is not None:
        return DataSpec(shape, int(frames), int(seed), folder=folder)
    return DataSpec(shape, int(frames), int(seed), classes=int(classes), train_size=int(train_size),
                    val_size=int(val_size), noise=float(noise))


c1, c2, c_link, c3 = st.columns([1, 1, 1, 3])
job = get_job(JOB_KEY)
running = job is not None and job.running
runs = make_runs(plan.models, choices)
spec = data_spec(plan.frame_shape)
data_s, n_train, n_val = 0.0, int(train_size or 256), int(val_size or 64)
try:
    data_s, n_train, n_val = views.data_estimate(spec)
    views.show_estimate(c3, total_estimate(views.estimate_runs(runs, n_train, n_val, int(frames)), data_s))
except (ValueError, RuntimeError, OSError) as exc:  # e.g. out of memory in the probe
    c3.caption(f"No estimate: {exc}")
if c1.button("Train", type="primary", icon=":material/play_arrow:", key=K + "start", disabled=running):
    launch(runs, spec, inputs.query())
    job, running = get_job(JOB_KEY), True
    STATE.set("scroll", True)  # the live charts come into view
if c2.button("Stop", icon=":material/stop:", key=K + "stop", disabled=not running):
    job.stop()
with c_link:
    frame.link(by_fragments=True)
if not lesson:
    with st.expander("The same comparison from the command line", icon=":material/terminal:"):
        st.code(race_command(runs, spec), language="bash")


# -- live view -------------------------------------------------------------------------------------
st.subheader("Live", anchor="training-live")
if STATE.pop("scroll", False):
    scroll_into_view("training-live")


@st.fragment(run_every=0.5 if running else None)
def live() -> None:
    frame.refresh("live")  # only the fragment reruns when its x-axis radio changes
    now = inputs.query()
    job = get_job(JOB_KEY)
    if job is None:
        st.info("Choose the models and press **Train**. The models take turns, a step each, on the same batches, so "
                "their curves grow together; each keeps its history. A run keeps going while you visit other pages "
                "and shows here on return; it stops when you press Stop or close the tab.",
                icon=":material/model_training:")
        return
    snap = job.snapshot()
    events = snap["events"]
    status = snap["status"]
    eta, first = job.eta(), STATE.get("first_total")
    if eta is not None and (first is None or first[0] is not job):
        first = (job, snap["elapsed"] + eta)  # the first projection
        STATE.set("first_total", first)
    label = {"running": snap["message"] or "starting", "done": "finished", "stopped": "stopped",
             "failed": "failed"}.get(status, status)
    text = f"{label} · {snap['elapsed']:.0f} s" + views.eta_text(eta, snap["elapsed"], first and first[1])
    info = job.info or RaceInfo()
    with st.container():  # lines that come and go: the charts below keep their place (no remount, no flicker)
        if status in ("pending", "running"):
            st.progress(min(1.0, max(0.0, snap["progress"])), text=text)
        elif not views.show_queue(snap):  # ended: a line that says so, not a bar left standing at its end
            st.caption(f"Training {label} after {snap['elapsed']:,.0f} s.")
        st.caption(f"Device: **{info.device or dev}**" + (f" · {info.data}" if info.data else ""))
        if share_note(job):
            st.caption(share_note(job))
        if snap["error"]:
            st.error(snap["error"], icon=":material/error:")
        views.show_changed(info.made_with, now)
        views.show_outcomes(events)
        if status == "stopped" and snap["message"].startswith("stopped"):
            st.info(snap["message"], icon=":material/stop_circle:")
    x = st.radio("Plot against", list(ct.X_AXES), format_func=ct.X_AXES.get, horizontal=True, key=K + "x_axis",
                 persist_state="session",
                 help="Seconds: each model's own training time (in a race the models take turns, so this is the "
                      "time it would take alone).")
    c1, c2 = st.columns(2)
    c1.plotly_chart(ct.loss_figure(events, x, "cross-entropy" if info.metric == "val_acc" else "loss"),
                    width="stretch", key=K + "loss_chart")
    c2.plotly_chart(ct.metric_figure(events, info.metric, info.metric_label, chance=info.chance,
                                     higher_is_better=info.higher_is_better, x=x), width="stretch", key=K + "acc_chart")
    if views.is_sweep(events):
        views.show_sweep(events, info.chance, K, downloads=not lesson, task=info.task,
                         metric=info.metric, metric_label=info.metric_label)
    rows = tables.metrics_rows(events, info.metric, info.metric_label)
    if rows:
        formats = tables.metric_formats(info.metric, info.metric_label)
        st.dataframe(pd.DataFrame(tables.live_table(rows, formats)), hide_index=True, width="stretch", key=K + "metrics",
                     column_config=views.table_columns(formats))
        line = views.speed_line(rows, events)
        if line:
            st.caption(line)
    gallery.show_previews(info.previews, events, K)
    if not job.running and STATE.pop("was_running", False):  # set by launch
        st.rerun()  # a full run turns the timer off and enables the buttons
    if not job.running and snap["result"] and not lesson:
        views.show_downloads(events, snap["result"], K)
        gallery.preview_downloads(info.previews, K)
        st.caption("PNG of a chart: the camera icon in the chart's toolbar.")


live()

# -- the paper -------------------------------------------------------------------------------------
if task_name == "action":  # the paper's UCF11 models are action classifiers
    st.divider()
    st.subheader("Paper: UCF11 (Ye et al. 2018)")
    paper = {k: ucf11_config(k, "lstm") for k in ("dense", "tt", "bt")}
    prow = tables.paper_shown(tables.paper_rows(paper))
    st.dataframe(pd.DataFrame(prow), hide_index=True, width="stretch", key=K + "paper_table", column_config={
        "input-map parameters": st.column_config.NumberColumn(format="localized"),
        "all parameters": st.column_config.NumberColumn(format="localized"),
        "compression": st.column_config.TextColumn(alignment="right"),
        "paper's UCF11 accuracy": st.column_config.NumberColumn(format="percent"),
    })
    st.caption("Frames of 160x120x3 = 57,600 inputs, hidden 256 = 4x4x4x4, the four gates folded into the first output "
               "mode (16x4x4x4). Accuracies are the paper's, on the real UCF11 videos, which BT Lab does not ship.")
    reduced = st.selectbox("Train these three at a reduced frame size on the task above", list(FRAME_SIZES)[:3],
                           key=K + "paper_frame")
    if st.button("Train the paper's architectures", icon=":material/science:", key=K + "paper_start", disabled=running):
        fs = parse_frame_shape(FRAME_SIZES[reduced])
        launch(make_runs(paper_models(fs, classes), choices), data_spec(fs), inputs.query())
        STATE.set("scroll", True)
        st.rerun()

# -- sensitivity sweep -----------------------------------------------------------------------------
if lesson:
    st.stop()  # the lesson view has no sweep
st.divider()
st.subheader("Sensitivity sweep: BT rank R x blocks N")
st.caption("Trains a BT model for every (R, N) with the settings above, plus the dense and TT models as references; "
           f"the final {TASKS[task_name].metric_label} against parameters and as an R x N heatmap appear above, under "
           "the charts.")
c1, c2, c3, c4 = st.columns([1, 1, 1.6, 2])  # the button's label ("Train the sweep (11 runs)") never cut
sweep_r = c1.text_input("Ranks R", key=K + "sweep_ranks")
sweep_n = c2.text_input("Blocks N", key=K + "sweep_blocks")
try:
    bt_model = next(m for m in plan_models(dataclasses.replace(choices, kinds=("BT",)), shared, classes,
                                           options).models)
    base = make_runs([bt_model], choices)[0]
    grid = (parse_ints(sweep_r, "Ranks R"), parse_ints(sweep_n, "Blocks N"))
    refs = make_runs(plan_models(dataclasses.replace(choices, kinds=("Dense", "TT")), shared, classes,
                                 options).models, choices)
    sweep_runs = sweep_configs(base, *grid) + refs
except ValueError as exc:
    show_error(exc, "Check the sweep's ranks and blocks")
    sweep_runs = []
if c3.button(f"Train the sweep ({len(sweep_runs)} runs)", icon=":material/grid_on:", key=K + "sweep_start",
             disabled=running or not sweep_runs):
    launch(sweep_runs, spec, inputs.query())
    STATE.set("scroll", True)
    st.rerun()
if sweep_runs:
    try:
        probes = views.sweep_probes(sweep_runs, lambda r: views.estimate_runs([r], n_train, n_val, int(frames))[0])
        views.show_estimate(c4, total_estimate(probes, data_s), f"the sweep's {len(sweep_runs)} runs")
    except (ValueError, RuntimeError) as exc:
        c4.caption(f"No estimate: {exc}")
