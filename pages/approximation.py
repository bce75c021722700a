"""Approximation: fit BT, TT, Tucker, CP and TR to a matrix; error vs parameters, reconstructions, convergence."""

from __future__ import annotations

import math

import streamlit as st

import btcore
from app.approximation import advice as adv
from app.approximation import inputs as fields
from app.approximation import plan
from app.approximation import session as S
from app.approximation import views
from app.approximation.plan import EFFORT, MAX_CP_RANK, MAX_ENTRIES, TARGETS
from app.frame import page_setup
from app.jobs import share_note
from app.snippets import approximation_snippet
from app.config import config_chosen, get_config
from app.widgets import format_ints, show_error
from btcore import decompose as dec
from btcore.images import ASSET_DIR, PHOTOS, list_images

K, STATE = S.K, S.STATE
#: Progress poll period (s). Faster polling slows the fits: the many small torch ops of an ALS sweep wait
#: for the GIL while a fragment rerun holds it. Default fit in the browser, measured here: 8.8-16.3 s at
#: 0.5 s polling, 6.1-6.9 s at 1 s, 5.5-5.8 s at 2 s.
POLL_S = 1.0
#: Widgets drawn only in some states (a target's own controls, the ranks of one sizing mode, the lesson view's
#: hidden ones): Streamlit keeps their last value while they are not drawn, through a page switch too.
PERSIST = "session"

frame = page_setup("approximation", fields.FIELDS, prefix=K,
                   defaults=fields.defaults(get_config(), S.shapes_page_config()))
store, lesson = frame.inputs, frame.lesson
st.title("Approximation")
st.caption("Fit Block-Term, Tensor-Train, Tucker, CP and Tensor-Ring formats to a matrix and compare their errors at "
           "equal parameter counts. Fits run in the background (BT/Tucker/CP by joint ALS, TT by TT-SVD, TR by "
           "ALS over the ring's cores).")

trained = S.trained_runs()
target_keys = [k for k in TARGETS if k != "trained" or trained]
if store["target"] not in target_keys:
    store.set("target", "bt")

c_target, c_shape, c_size = st.columns([1, 1, 1.3], gap="large")
errors: list[tuple[str, Exception]] = []
waiting = False  # an upload not chosen yet: no spec, no error
W_given, target_kwargs, target_extra = None, {}, ()
explain_as = None  # the kind of target the teaching text describes (default: the target itself)
target_label = None  # what names the target in the results
with c_target:
    st.subheader("Target")
    kind = st.selectbox("Matrix", target_keys, format_func=TARGETS.get, key=K + "target", on_change=S.on_target,
                        help="The structured targets show where each format wins; the random one why nothing "
                             "compact fits a matrix without structure.")
    if kind in ("bt", "tt"):
        noise = st.select_slider("Noise (relative)", fields.NOISES, key=K + "noise", persist_state=PERSIST,
                                 help="‖E‖ = noise · ‖W_exact‖: the best error any format can reach is about this.")
        target_kwargs = {"noise": float(noise)}
    elif kind == "kernel":
        ls = st.select_slider("Length scale", fields.LENGTH_SCALES, key=K + "length_scale", persist_state=PERSIST,
                              help="Smaller: a sharper kernel, harder to compress.")
        target_kwargs = {"length_scale": float(ls)}
    elif kind == "image":
        names = list_images()
        if names:
            if store["image"] not in names:
                store.set("image", names[0])
            target_kwargs = {"name": st.selectbox("Image", names, key=K + "image", persist_state=PERSIST)}
            target_label = target_kwargs["name"]
        else:
            errors.append(("Target", ValueError(f"no images found in {ASSET_DIR}")))
    elif kind == "photo":
        target_label = st.selectbox("Photo", list(PHOTOS), key=K + "photo", persist_state=PERSIST, on_change=S.on_target,
                                    format_func=lambda n: f"{n}: {PHOTOS[n][1]}",
                                    help="Bundled with scikit-image (no download), in grey. Choosing one sets modes for "
                                         "its own size; other modes resize it.")
        target_kwargs = {"name": target_label}
    elif kind == "digits":
        st.caption("1,792 handwritten digits (8 x 8 pixels, one a row) from scikit-learn; the data set's last 5 of "
                   "1,797 are left out so the rows factor (1,792 = 7 x 16 x 16).")
    elif kind == "trained":
        if store["trained"] not in trained:
            store.set("trained", next(iter(trained)))
        run = st.selectbox("Trained run", list(trained), key=K + "trained", persist_state=PERSIST, on_change=S.on_trained,
                           help="Left by the Training page in this session.")
        if run in trained:
            (tI, tJ), t_im, t_om, t_kind = trained[run]
            target_label = run
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
                target_label = up.name
                st.caption(f"{up.name}: {W_given.shape[0]:,} x {W_given.shape[1]:,}")
            except ValueError as exc:
                errors.append(("Upload", exc))
    if not lesson:
        st.number_input("Seed", 0, 2**31 - 1, key=K + "seed", help="Seeds the target and the fits' starts.")
    seed = store["seed"]

with c_shape:
    st.subheader("Shape")
    small_cfg = S.shapes_page_config()
    shape_opts = list(S.SHAPES) + ([S.SHAPES_PAGE] if small_cfg is not None else []) + [S.CUSTOM]
    if store["shape"] not in shape_opts:
        store.set("shape", S.CUSTOM)
    st.selectbox("Modes", shape_opts, key=K + "shape", on_change=S.on_shape,
                 format_func=lambda s: (f"{s}: {format_ints(small_cfg.in_modes)} -> {format_ints(small_cfg.out_modes)}"
                                        if s == S.SHAPES_PAGE and small_cfg is not None else s))
    if small_cfg is None and config_chosen():
        cfg = get_config()
        st.caption(f"The Shapes page's {cfg.in_size:,} x {cfg.out_size:,} is too large to fit here "
                   f"(limit {MAX_ENTRIES:,} entries).")
    c1, c2 = st.columns(2)
    c1.text_input("Input modes I₁x..xI_d", key=K + "in_modes", on_change=S.mark_custom)
    c2.text_input("Output modes J₁x..xJ_d", key=K + "out_modes", on_change=S.mark_custom)

with c_size:
    st.subheader("Formats and size")
    inputs = plan.SpecInputs(store["a_in"], store["a_out"], target=kind,
                             target_kwargs=target_kwargs, target_extra=target_extra, explain_as=explain_as,
                             target_label=target_label)
    inputs.formats = st.multiselect("Formats", list(plan.PAGE_FORMATS), key=K + "formats")
    inputs.mode = st.radio("Size by", ["parameter budget", "explicit ranks"], horizontal=True, key=K + "mode")
    if inputs.mode == "parameter budget":
        inputs.budget = st.number_input("Parameter budget", 8, 10**9, step=100, key=K + "budget", persist_state=PERSIST,
                                        help="Each format is fitted at the ranks whose parameter count is closest.")
    else:
        c1, c2 = st.columns(2)
        inputs.bt_rank = c1.text_input("BT rank R", key=K + "bt_rank", persist_state=PERSIST, help="One rank, or one per mode: 3 or 3,3,2,2.")
        inputs.blocks = c2.number_input("BT blocks N", 1, 64, step=1, key=K + "blocks", persist_state=PERSIST)
        c1, c2, c3, c4 = st.columns(4)
        inputs.tt_ranks = c1.text_input("TT ranks", key=K + "tt_ranks", persist_state=PERSIST)
        inputs.tucker_rank = c2.text_input("Tucker rank", key=K + "tucker_rank", persist_state=PERSIST)
        inputs.cp_rank = c3.number_input("CP rank", 1, MAX_CP_RANK, step=1, key=K + "cp_rank", persist_state=PERSIST)
        inputs.tr_ranks = c4.text_input("TR ranks", key=K + "tr_ranks", persist_state=PERSIST,
                                        help="One rank, or one per bond of the ring (d of them): 3 or 3,4,4,3.")
    inputs.sweep_points = st.slider("Sweep: budgets for the error-vs-parameters chart", 0, 7, key=K + "sweep",
                                    help="Geometric budgets from 1/4 to 4x your size, each fitted in every format. "
                                         "0: off.")
    if not lesson:
        with st.expander("Fit settings"):
            st.radio("Effort", list(EFFORT), horizontal=True, key=K + "effort", persist_state=PERSIST,
                     help=plan.effort_help())
            st.number_input("BT candidates per budget", 1, 4, key=K + "bt_choices", persist_state=PERSIST,
                            help="BT has two knobs (R and N): the closest (R, N) pairs to each budget are all fitted "
                                 "and the best is kept.")
    inputs.effort, inputs.bt_choices = store["effort"], store["bt_cands"]
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
adv.harvest()
job = STATE.get("job")
running = job is not None and job.running
sjob = STATE.get(adv.JOB)
suggesting = sjob is not None and sjob.running
c1, c2, c3, _ = st.columns([1, 1, 1, 3])
if c1.button("Fit", type="primary", icon=":material/play_arrow:", key=K + "fit", disabled=running or spec is None):
    if S.start(spec, W_given):
        job, running = STATE["job"], True
if c2.button("Suggest", icon=":material/auto_awesome:", key=K + "suggest", disabled=suggesting or spec is None,
             help="Search tensorizations, formats and ranks within the budget (btcore.suggest_formats) and "
                  "recommend one; the front of every candidate is drawn below."):
    adv.start(spec, W_given)
    sjob, suggesting = STATE[adv.JOB], True
if c3.button("Stop", icon=":material/stop:", key=K + "stop", disabled=not (running or suggesting),
             help="Stops the fit and the suggestion here. A run shared with other sessions (the same inputs) goes "
                  "on for them; it stops when the last one watching it stops."):
    for j in (job, sjob):
        if j is not None and j.running:
            j.stop()


def show_progress(job, what: str) -> None:
    snap = job.snapshot()
    eta, seen = job.eta(), STATE.get("eta_seen") or {}
    low = seen.get(id(job))
    text = f"{what}: {snap['message'] or 'starting'} · {snap['elapsed']:.0f} s" + views.eta_text(snap["elapsed"], eta, low)
    if eta is not None:  # the lowest projected total of this job, so that a rise is called uncertain
        seen = {k: v for k, v in seen.items() if k in (id(STATE.get("job")), id(STATE.get(adv.JOB)))}
        seen[id(job)] = min(low if low is not None else math.inf, snap["elapsed"] + eta)
        STATE.set("eta_seen", seen)
    st.progress(min(1.0, max(0.0, snap["progress"])), text=text)
    note = share_note(job)
    if note:
        st.caption(note)


@st.fragment(run_every=POLL_S if running or suggesting else None)
def live() -> None:
    job, sjob = STATE.get("job"), STATE.get(adv.JOB)
    busy = False
    if job is not None and job.running:
        show_progress(job, "Fit")
        if STATE.get("shown") is not None:
            st.caption("The results below are the previous run's until this one finishes.")
        busy = True
    if sjob is not None and sjob.running:
        show_progress(sjob, "Suggest")
        busy = True
    if busy:
        return
    if S.harvest() or adv.harvest():  # finished while only this fragment was rerunning: redraw the page
        st.rerun()
    if STATE.get("job_note"):
        st.info(STATE["job_note"], icon=":material/stop_circle:")
    if STATE.get("job_error"):
        st.error(f"**The fit failed:** {STATE['job_error']}", icon=":material/error:")
    if STATE.get(adv.ERROR):
        st.error(f"**The suggestion failed:** {STATE[adv.ERROR]}", icon=":material/error:")


live()

# -- results ---------------------------------------------------------------------------------------
advice = STATE.get(adv.SHOWN)
if advice is not None:
    views.draw_advice(advice, spec, store, lesson)
shown = STATE.get("shown")
if shown is None:
    st.info("Pick a target and a size, then press **Fit**, or **Suggest** for a format, tensorization and ranks "
            "within the budget. The default (256 x 256, exact BT structure, budget 1,000 and a sweep over 5 budgets) "
            "is 29 distinct fits, about 11 s of one core (measured); the progress bar estimates the time left from "
            "each fit's size.", icon=":material/compare:")
else:
    views.draw_results(shown, spec, lesson)

frame.write_url()
c1, c2 = st.columns([1, 1])
with c1:
    frame.link()
if spec is not None and not lesson:
    with c2.expander("The code for these results", icon=":material/code:"):
        st.code(approximation_snippet(spec, budget=adv.advice_budget(spec), uploaded=W_given is not None),
                language="python")
