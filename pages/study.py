"""Format study: validation metric vs input-map parameters vs speed across formats at equal budgets."""

from __future__ import annotations

import hashlib
import json

import streamlit as st

from app.frame import page_setup
from app.jobs import get_job
from app.study import views
from app.study.charts import format_label
from app.study.inputs import (FROM_STUDY, K, NO_COMPRESS, SYNTHETIC, UPLOAD, changed_since, compress_choices,
                              data_choices, fields)
from app.study.plan import balanced_modes, make_plan, study_command
from app.study.run import ENDS, JOB_KEY, ended_since_launch, launch, live_rows, progress_text
from app.training.datasets import DATA_ROOT_ENV, data_root
from app.widgets import show_error
from btcore.tasks import task_names
from btcore.train.study import study_formats

frame = page_setup("study", fields(), prefix=K)
inputs, lesson = frame.inputs, frame.lesson
root = data_root()

st.title("Format study")
st.caption("Dense once, then every ticked format at each input-map parameter budget (the largest ranks that fit), "
           "all trained on the same seeded batches: which format gives the best validation metric for its size "
           "and speed? Optionally, a dense model compressed into each format, as it is and after fine-tuning.")

# -- task and data ---------------------------------------------------------------------------------
c_task, c_model, c_train = st.columns(3, gap="large")
with c_task:
    st.subheader("Task and data")
    task = st.selectbox("Task", task_names(), key=K + "task")
    options = [o for o in data_choices() if (o == SYNTHETIC) == (task != "sequences")]
    if inputs["s_data"] not in options:
        inputs.set("s_data", options[0])
    data = st.selectbox("Data", options, key=K + "data",
                        format_func=lambda o: {SYNTHETIC: "Generated (built in)", UPLOAD: "Upload a .npz"}.get(o, o),
                        help=f"A .npz of X (n, T, D) floats and y (n,) labels 0..K-1: uploaded, or a file under the "
                             f"data root `{root}` (set {DATA_ROOT_ENV} to move it).")
    upload = views.upload_control() if task == "sequences" and data == UPLOAD else None
    if task != "sequences":
        st.text_input("Frame size (C x H x W)", key=K + "frame")
        st.number_input("Frames per clip", 1, 64, key=K + "frames")
        st.number_input("Classes", 2, 8, key=K + "classes")
        c1, c2 = st.columns(2)
        c1.number_input("Training clips", 16, 20_000, step=16, key=K + "train_size")
        c2.number_input("Validation clips", 8, 5_000, step=8, key=K + "val_size")

# -- models ----------------------------------------------------------------------------------------
with c_model:
    st.subheader("Formats and budgets")
    st.text_input("Budgets (input-map parameters)", key=K + "budgets",
                  help="A comma list: each format gets the largest uniform ranks whose input map fits each budget.")
    cols = st.columns(len(study_formats()))
    for col, f in zip(cols, study_formats()):
        col.checkbox(format_label(f), key=K + f"fmt_{f}")
    st.text_input("BT blocks N", key=K + "blocks", help="Several (1,2,4) make BT's R x N grid at each budget.")
    st.radio("Cell", ["lstm", "gru"], format_func=str.upper, horizontal=True, key=K + "cell")
    c1, c2 = st.columns(2)
    c1.number_input("Hidden size", 1, 1024, key=K + "hidden")
    c2.number_input("Order d", 2, 6, key=K + "d")
    if not lesson:  # the lesson view studies the stored (default: balanced) modes
        st.text_input("Input modes (empty: balanced)", key=K + "in_modes", placeholder="balanced",
                      help="The tensorization of the D input features, e.g. 8x8x4x3; empty: balanced modes.")

# -- training --------------------------------------------------------------------------------------
with c_train:
    st.subheader("Training")
    c1, c2 = st.columns(2)
    c1.number_input("Epochs", 1, 500, key=K + "epochs")
    c2.number_input("Batch", 1, 1024, key=K + "batch")
    if not lesson:  # the lesson view trains with the stored optimiser settings
        c1, c2 = st.columns(2)
        c1.number_input("Learning rate", 1e-5, 10.0, format="%.4g", key=K + "lr")
        c2.number_input("Seed", 0, 2**31 - 1, key=K + "seed")
    comp = compress_choices()
    if inputs["s_compress"] not in comp:  # a checkpoint removed since it was chosen
        inputs.set("s_compress", NO_COMPRESS)
    compress = st.selectbox("Compress from", comp, key=K + "compress",
                            format_func=lambda o: {NO_COMPRESS: "Nothing (train in format only)",
                                                   FROM_STUDY: "This study's dense model"}.get(o, o),
                            help=f"A dense model compressed into each ticked format at each budget (btcore.compress): this "
                                 f"study's, or a checkpoint (.pt) under the data root `{root}`.")
    if compress != NO_COMPRESS:
        st.number_input("Fine-tune epochs K", 0, 100, key=K + "finetune")

inputs.sync()
values = dict(inputs.values)
st.divider()
try:
    plan = make_plan(values, upload, root)
except ValueError as exc:  # said before any work; a running study still shows below
    plan = None
    show_error(exc, "Check the settings")
query = inputs.query()
job = get_job(JOB_KEY)
running = job is not None and job.running
if plan is not None:
    if not values["s_modes"].strip():
        st.caption(f"Balanced input modes: {'x'.join(map(str, balanced_modes(plan.features, plan.controls['d'])))}.")
    est_key = json.dumps(query, sort_keys=True) + (hashlib.sha256(upload).hexdigest() if upload else "")
    try:
        est = views.estimate(plan, est_key)
    except (ValueError, RuntimeError) as exc:  # e.g. out of memory in a probe
        est = None
        st.caption(f"No estimate: {exc}")
    views.show_plan(plan, est)

c1, c2, c_link, _ = st.columns([1, 1, 1, 3])
if plan is not None and c1.button("Run the study", type="primary", icon=":material/play_arrow:", key=K + "start",
                                  disabled=running):
    job, running = launch(plan, query), True
if c2.button("Stop", icon=":material/stop:", key=K + "stop", disabled=not running):
    job.stop()
with c_link:
    frame.link(by_fragments=True)
if plan is not None and not lesson:
    with st.expander("The same study from the command line", icon=":material/terminal:"):
        st.code(study_command(plan, values), language="bash")
        if upload is not None:
            st.caption("Save your upload as `my_sequences.npz` first.")


# -- progress and results --------------------------------------------------------------------------
@st.fragment(run_every=0.5 if running else None)
def live() -> None:
    frame.refresh("live")
    job = get_job(JOB_KEY)
    if job is None:
        st.info("Choose the budgets and formats and press **Run the study**. The runs go one after another; a stop "
                "keeps the ones that finished.", icon=":material/science:")
        return
    snap = job.snapshot()
    info = job.info
    if snap["status"] not in ENDS:  # a bar only while there is progress to show; an ended study says how it ended
        st.progress(min(1.0, max(0.0, snap["progress"])), text=progress_text(snap, info.total))
    else:
        st.caption(progress_text(snap, info.total))
    if snap["error"]:
        st.error(snap["error"], icon=":material/error:")
    changes = changed_since(info.made_with, inputs.query())
    if changes:
        st.info("These results are of the inputs the study started with; changed since: " + "; ".join(changes),
                icon=":material/edit:")
    result = snap["result"]
    if result is None:
        views.show_live(live_rows(snap["events"], info.metric))
    else:
        if result.stopped:
            st.info("Stopped: the runs that finished are below.", icon=":material/stop_circle:")
        views.show_results(result, K, downloads=not lesson)
    if ended_since_launch(job):
        st.rerun()  # a full run turns the timer off and enables the buttons


live()
