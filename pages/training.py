"""Training: compare dense, TT and BT recurrent classifiers on action clips, live."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

import btcore
from app import charts_training as ct
from app.jobs import get_job, start_job
from app.state import get_config
from app.widgets import format_ints, parse_rank, rank_text, show_error
from btcore.data import ACTION_NAMES, SyntheticActions, load_clip_folder, parse_frame_shape
from btcore.rnn import GATES, ucf11_config
from btcore.train import (OPTIMIZERS, TrainConfig, checkpoint_bytes, compare, cpu_count, device_name,
                          estimate_memory, fit_model_config, histories_csv, summary, with_unique_names)
from btcore.tensors import available_memory

K = "train_"  # widget key prefix
JOB_KEY = "training"
#: A run stops when the page has not redrawn for this long: the user went to another page (closing the
#: tab ends the session, whose release stops the worker at once). Generous, because browsers slow
#: the timers of background tabs down to about once a minute.
HEARTBEAT_S = 90.0
FRAME_SIZES = {"3x16x16 (768 inputs)": "3x16x16", "3x32x32 (3,072 inputs)": "3x32x32",
               "3x48x64 (9,216 inputs)": "3x48x64", "3x120x160 (57,600: the paper's UCF11 frames)": "3x120x160"}
KIND_LABELS = {"Dense": "dense", "TT": "tt", "BT": "bt"}
TASK = SyntheticActions()  # defaults of the synthetic task (as the CLI's)
RUN = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}

shared = get_config()
if K + "bt_rank" not in st.session_state:  # first visit: start from the Shapes page's choices
    st.session_state[K + "bt_rank"] = rank_text(shared.bt_rank)
    st.session_state[K + "blocks"] = shared.blocks
    st.session_state[K + "tt_ranks"] = rank_text(shared.tt_ranks)
    st.session_state[K + "d"] = shared.d

st.title("Training")
st.caption("Train recurrent classifiers whose input-to-hidden map is dense, Tensor-Train or Block-Term on short "
           "action clips, side by side. Training runs in the background; the charts update live.")

dev = device_name("auto")
n_cpu = cpu_count()

# -- task ------------------------------------------------------------------------------------------
c_task, c_model, c_opt = st.columns(3, gap="large")
with c_task:
    st.subheader("Task")
    folder = st.text_input("Clip folder (optional)", key=K + "folder", placeholder="/data/UCF11",
                           help="A folder in the UCF11 layout: one sub-folder per class, clips as frame folders "
                                "(PNG/JPEG), .npy/.npz arrays or animated GIFs. Empty: the synthetic task.")
    source = "folder" if folder.strip() else "synthetic"
    frame_label = st.selectbox("Frame size (C x H x W)", list(FRAME_SIZES), index=1, key=K + "frame")
    frames = st.slider("Sequence length (frames per clip)", 4, 16, TASK.frames, key=K + "frames")
    if source == "synthetic":
        classes = st.slider("Classes (motions)", 2, len(ACTION_NAMES), TASK.classes, key=K + "classes",
                            help="Moves right/left/down/up, grow, shrink, rotate clockwise/anticlockwise: pairs that "
                                 "differ only by the direction of time.")
        c1, c2 = st.columns(2)
        train_size = c1.number_input("Training clips", 32, 20_000, TASK.train_size, step=32, key=K + "train_size")
        val_size = c2.number_input("Validation clips", 16, 5_000, TASK.val_size, step=16, key=K + "val_size")
        noise = st.slider("Pixel noise", 0.0, 0.5, TASK.noise, 0.01, key=K + "noise")
    else:
        train_size, val_size, noise = None, None, None
        root = Path(folder.strip()).expanduser()
        try:
            is_folder = root.is_dir()
            class_dirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if is_folder else []
        except OSError as exc:  # e.g. no permission to list it
            is_folder, class_dirs = None, []
            show_error(exc, f"Cannot read the clip folder `{root}`")
        classes = len(class_dirs) or None
        if is_folder:
            st.caption(f"{len(class_dirs)} class folders in `{root}`; a quarter of each class's clips is held out "
                       "for validation. Frames are resized to the frame size below.")
        elif is_folder is False:
            st.error(f"`{root}` is not a folder on this machine.", icon=":material/error:")

# -- models ----------------------------------------------------------------------------------------
with c_model:
    st.subheader("Models")
    kinds = st.multiselect("Compare", list(KIND_LABELS), default=list(KIND_LABELS), key=K + "kinds")
    cell = st.radio("Cell", ["lstm", "gru"], format_func=str.upper, horizontal=True, key=K + "cell")
    hidden = st.select_slider("Hidden size", [16, 64, 256], value=64, key=K + "hidden",
                              help="Factorized into d modes: 64 = 4x4x2x2, 256 = 4x4x4x4 (the paper's).")
    c1, c2 = st.columns(2)
    d = c1.number_input("Order d", 2, 6, step=1, key=K + "d")
    blocks = c2.number_input("BT blocks N", 1, 16, step=1, key=K + "blocks")
    c1, c2 = st.columns(2)
    bt_rank_text = c1.text_input("BT rank R", key=K + "bt_rank")
    tt_rank_text = c2.text_input("TT ranks", key=K + "tt_ranks")
    dropout = st.slider("Dropout (input and state)", 0.0, 0.5, 0.0, 0.05, key=K + "dropout")

# -- optimiser -------------------------------------------------------------------------------------
with c_opt:
    st.subheader("Optimiser")
    optimizer = st.selectbox("Optimiser", list(OPTIMIZERS), key=K + "optimizer")
    c1, c2 = st.columns(2)
    lr = c1.number_input("Learning rate", 1e-5, 1.0, RUN["lr"], format="%.4f", key=K + "lr")
    batch = c2.number_input("Batch", 1, 1024, RUN["batch_size"], key=K + "batch")
    c1, c2 = st.columns(2)
    epochs = c1.number_input("Epochs", 1, 500, RUN["epochs"], key=K + "epochs")
    clip = c2.number_input("Gradient clip (0 = off)", 0.0, 100.0, 1.0, key=K + "clip")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=K + "seed")
    # torch's thread count is process-wide: the app sets it once at startup, runs never change it.
    st.caption(f"Device: **{dev.split(' (')[0] if 'CPU' not in dev else f'CPU ({n_cpu} cores)'}**"
               + (f" · {torch.get_num_threads()} threads per operation, set for the whole app" if 'CPU' in dev else ""))

# -- configurations and sizes ----------------------------------------------------------------------
try:
    frame_shape = parse_frame_shape(FRAME_SIZES[frame_label])
    if not kinds:
        raise ValueError("choose at least one model to train")
    if source == "folder" and not classes:
        raise ValueError(f"the clip folder {folder.strip()!r} has no class sub-folders")
    bt_rank = parse_rank(bt_rank_text, "BT rank")
    tt_ranks = parse_rank(tt_rank_text, "TT ranks")
    n_classes = classes or 2
    # The Shapes page's modes when they fit: its input modes if they multiply to the frame size, its
    # output modes (gates folded into the first) if they are this cell's gates x the hidden size.
    gates = GATES[cell]
    shared_hidden = None
    if shared.out_modes[0] % gates == 0:
        shared_hidden = (shared.out_modes[0] // gates,) + tuple(shared.out_modes[1:])
    model_cfgs, notes = [], []
    for label in kinds:
        mc, note = fit_model_config(KIND_LABELS[label], cell, frame_shape=frame_shape, hidden=int(hidden), d=int(d),
                                    rank=bt_rank, blocks=int(blocks), tt_ranks=tt_ranks, classes=n_classes,
                                    dropout=float(dropout), in_modes=shared.in_modes, hidden_modes=shared_hidden)
        model_cfgs.append(mc)
        notes += note
except ValueError as exc:
    show_error(exc, "Check the settings")
    st.stop()


def make_runs(models) -> list[TrainConfig]:
    return [TrainConfig(m, optimizer=optimizer, lr=float(lr), batch_size=int(batch), epochs=int(epochs),
                        seed=int(seed), grad_clip=float(clip) if clip > 0 else None, eval_every=0) for m in models]


free = available_memory("cuda" if torch.cuda.is_available() else "cpu")
size_rows = []
for m in model_cfgs:
    mem = estimate_memory(m, int(batch), int(frames), optimizer=optimizer)
    size_rows.append({"model": m.describe(), "input modes": format_ints(m.in_modes),
                      "hidden modes": format_ints(m.hidden_modes), "input-map parameters": m.input_map_params(),
                      "all parameters": m.num_params(), "training memory (est.)": btcore.format_bytes(mem["training"]),
                      "_bytes": mem["training"]})
st.divider()
from_shapes = lambda modes, mine: " (the Shapes page's)" if tuple(modes) == tuple(mine or ()) else ""  # noqa: E731
st.markdown(f"**Before launch:** frames of {format_ints(frame_shape)} = {btcore.shapes.prod(frame_shape):,} inputs "
            f"are tensorized as **{format_ints(model_cfgs[-1].in_modes)}**"
            f"{from_shapes(model_cfgs[-1].in_modes, shared.in_modes)}, hidden {int(hidden)} as "
            f"**{format_ints(model_cfgs[-1].hidden_modes)}**{from_shapes(model_cfgs[-1].hidden_modes, shared_hidden)}.")
for note in notes:
    st.info(f"Adjusted to fit this frame size: {note}", icon=":material/tune:")
st.dataframe(pd.DataFrame(size_rows).drop(columns="_bytes"), hide_index=True, width="stretch", key=K + "sizes",
             column_config={"input-map parameters": st.column_config.NumberColumn(format="localized"),
                            "all parameters": st.column_config.NumberColumn(format="localized")})
too_big = [r["model"] for r in size_rows if r["_bytes"] > 0.5 * free]
if too_big:
    st.warning(f"{', '.join(too_big)} may need more than half of the {btcore.format_bytes(free)} of free memory on "
               "this machine; lower the frame size, batch or hidden size.", icon=":material/memory:")
if source == "synthetic":
    clip_bytes = 4 * int(frames) * btcore.shapes.prod(frame_shape)
    st.caption(f"Synthetic data: {int(train_size) + int(val_size):,} clips x {clip_bytes / 1024**2:.2f} MiB; "
               "kept in memory up to 512 MiB per split, generated batch by batch beyond that.")


# -- the worker ------------------------------------------------------------------------------------
def end_unstarted(job, runs: list[TrainConfig]) -> None:
    """After a stop: an ``end`` event (status "stopped") for every run that never started.

    A stop can come before the first training step (while the clips are generated) or end a
    comparison before its later runs; the table then still lists every planned run, as stopped.
    """
    ended = {e["run"] for e in job.snapshot()["events"] if e.get("event") == "end"}
    for c in runs:
        if c.name not in ended:
            job.append({"event": "end", "run": c.name, "status": "stopped", "steps": 0,
                        "reason": "stopped before training started"})


def make_target(runs: list[TrainConfig], data_spec: dict):
    """A pure-btcore worker: build the data, train the runs, report through the job."""
    runs = with_unique_names(runs)  # the names compare() gives the runs

    def target(job):
        job.update(message="preparing the data", heartbeat=time.time())
        if data_spec["source"] == "synthetic":
            task = SyntheticActions(frame_shape=data_spec["frame_shape"], frames=data_spec["frames"],
                                    classes=data_spec["classes"], train_size=data_spec["train_size"],
                                    val_size=data_spec["val_size"], seed=data_spec["seed"], noise=data_spec["noise"])
            train_set, val_set = task.splits()
            for name, part in (("training", train_set), ("validation", val_set)):
                ok = part.prepare(should_stop=lambda: job.should_stop,
                                  progress=lambda f, name=name: job.update(message=f"generating {name} clips: {f:.0%}"))
                if not ok:
                    if not job.message.startswith("stopped"):
                        job.update(message="stopped by request")
                    end_unstarted(job, runs)
                    return []
        else:
            train_set, val_set = load_clip_folder(data_spec["folder"], data_spec["frame_shape"], data_spec["frames"],
                                                  seed=data_spec["seed"])
        job.update(chance=1.0 / train_set.classes, data_info=f"{len(train_set)} training / {len(val_set)} validation "
                   f"clips, {train_set.classes} classes")

        def cb(ev):
            if ev["event"] == "start":
                job.update(message=f"training {ev['run']} ({ev['run_index'] + 1} of {ev['runs']}) on {ev['device']}",
                           device=ev["device"])
            job.append(ev)
            if "overall_progress" in ev:
                job.update(progress=ev["overall_progress"])

        def should_stop():
            if not job.should_stop and time.time() - getattr(job, "heartbeat", time.time()) > HEARTBEAT_S:
                job.update(message=f"stopped: the page was left (no redraw for {HEARTBEAT_S:.0f} s)")
                job.stop()
            return job.should_stop

        results = compare(runs, train_set, val_set, callback=cb, should_stop=should_stop)
        if job.should_stop:
            if not job.message.startswith("stopped"):
                job.update(message="stopped by request")
            end_unstarted(job, runs)
        return results

    return target


def launch(runs: list[TrainConfig], shape: tuple[int, int, int]) -> None:
    """Start the worker on the task above with frames of ``shape`` (C, H, W)."""
    spec = {"source": source, "folder": folder.strip(), "frame_shape": shape, "frames": int(frames),
            "classes": classes, "train_size": int(train_size or 0), "val_size": int(val_size or 0),
            "seed": int(seed), "noise": float(noise or 0)}
    job = start_job(JOB_KEY, make_target(runs, spec), name="training")
    job.update(heartbeat=time.time())
    st.session_state[K + "was_running"] = True
    st.session_state[K + "job"] = job  # the same object as in the session's job registry (tests join it)


c1, c2, _ = st.columns([1, 1, 4])
job = get_job(JOB_KEY)
running = job is not None and job.running
if c1.button("Train", type="primary", icon=":material/play_arrow:", key=K + "start", disabled=running):
    launch(make_runs(model_cfgs), frame_shape)
    job, running = get_job(JOB_KEY), True
if c2.button("Stop", icon=":material/stop:", key=K + "stop", disabled=not running):
    job.stop()


# -- live view -------------------------------------------------------------------------------------
@st.fragment(run_every=0.5 if running else None)
def live() -> None:
    job = get_job(JOB_KEY)
    if job is None:
        st.info("Choose the models and press **Train**. Runs go one after another on the same data; each keeps "
                f"its history. A run stops when you press Stop, close the tab, or leave this page (after about "
                f"{HEARTBEAT_S:.0f} s without a redraw).", icon=":material/model_training:")
        return
    job.update(heartbeat=time.time())
    snap = job.snapshot()
    events = snap["events"]
    status = snap["status"]
    eta = job.eta()
    label = {"running": snap["message"] or "starting", "done": "finished", "stopped": "stopped",
             "failed": "failed"}.get(status, status)
    text = f"{label} · {snap['elapsed']:.0f} s" + (f" · about {eta:.0f} s left" if eta is not None else "")
    st.progress(min(1.0, max(0.0, snap["progress"])), text=text)
    info = getattr(job, "data_info", None)
    st.caption(f"Device: **{getattr(job, 'device', dev)}**" + (f" · {info}" if info else ""))
    if snap["error"]:
        st.error(snap["error"], icon=":material/error:")
    for ev in events:
        if ev.get("event") == "end" and ev["status"] == "diverged":
            st.warning(f"**{ev['run']}**: {ev['reason']}", icon=":material/warning:")
    if status == "stopped" and snap["message"].startswith("stopped"):
        st.info(snap["message"], icon=":material/stop_circle:")
    c1, c2 = st.columns(2)
    c1.plotly_chart(ct.loss_figure(events), width="stretch", key=K + "loss_chart")
    c2.plotly_chart(ct.accuracy_figure(events, getattr(job, "chance", None)), width="stretch", key=K + "acc_chart")
    rows = ct.metrics_rows(events)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=K + "metrics", column_config={
            "run": st.column_config.TextColumn(width="medium"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "input-map parameters": st.column_config.NumberColumn(format="localized"),
            "train loss": st.column_config.NumberColumn(format="%.3f"),
            "val loss": st.column_config.NumberColumn(format="%.3f"),
            "val accuracy": st.column_config.NumberColumn(format="percent"),
            "examples/s": st.column_config.NumberColumn(format="%.0f"),
            "ms / step": st.column_config.NumberColumn(format="%.1f"),
        })
    if not job.running and st.session_state.get(K + "was_running"):
        st.session_state[K + "was_running"] = False
        st.rerun()  # a full run turns the timer off and enables the buttons
    if not job.running and snap["result"]:
        results = snap["result"]
        c1, c2, c3 = st.columns(3)
        c1.download_button("Histories (CSV)", histories_csv(events), "btlab_training.csv", "text/csv",
                           icon=":material/download:", key=K + "dl_csv")
        c2.download_button("Summary (JSON)", json.dumps(summary(results), default=str, indent=1),
                           "btlab_training_summary.json", "application/json", icon=":material/download:",
                           key=K + "dl_json")
        names = [r.name for r in results if r.model is not None]
        if names:
            pick = c3.selectbox("Checkpoint of", names, key=K + "ckpt_run", label_visibility="collapsed")
            res = next(r for r in results if r.name == pick)
            c3.download_button(f"Checkpoint of {pick} (.pt)",  # made only when the download is clicked
                               lambda: checkpoint_bytes(res.model, res.config, res.history), "btlab_model.pt",
                               "application/octet-stream", icon=":material/download:", key=K + "dl_ckpt",
                               help="Weights and configuration; load with btcore.train.load_checkpoint.")
        st.caption("PNG of a chart: the camera icon in the chart's toolbar.")


live()

# -- the paper -------------------------------------------------------------------------------------
st.divider()
st.subheader("Paper: UCF11 (Ye et al. 2018)")
paper = {k: ucf11_config(k, "lstm") for k in ("dense", "tt", "bt")}
prow = ct.paper_rows(paper)
st.dataframe(pd.DataFrame(prow), hide_index=True, width="stretch", key=K + "paper_table", column_config={
    "input-map parameters": st.column_config.NumberColumn(format="localized"),
    "all parameters": st.column_config.NumberColumn(format="localized"),
    "compression": st.column_config.NumberColumn(format="%.0f x"),
    "paper's UCF11 accuracy": st.column_config.NumberColumn(format="percent"),
})
st.caption("Frames of 160x120x3 = 57,600 inputs, hidden 256 = 4x4x4x4, the four gates folded into the first output "
           "mode (16x4x4x4). Accuracies are the paper's, on the real UCF11 videos, which BT Lab does not ship.")
reduced = st.selectbox("Train these three at a reduced frame size on the task above", list(FRAME_SIZES)[:3], index=1,
                       key=K + "paper_frame")
if st.button("Train the paper's architectures", icon=":material/science:", key=K + "paper_start", disabled=running):
    fs = parse_frame_shape(FRAME_SIZES[reduced])
    models, pnotes = [], []
    for kind in ("dense", "tt", "bt"):
        mc, note = fit_model_config(kind, "lstm", frame_shape=fs, hidden=256, d=4, rank=4, blocks=2, tt_ranks=4,
                                    classes=classes or 2, dropout=0.25)
        models.append(mc)
    launch(make_runs(models), fs)
    st.rerun()
