"""Approximation: fit BT, TT, Tucker and CP to a matrix; error vs parameters, reconstructions, convergence."""

from __future__ import annotations

import hashlib
import io
import time
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st
import torch

import btcore
from app import charts_approx as ca
from app.jobs import get_job, start_job
from app.state import CONFIG_KEY, get_config
from app.widgets import format_ints, parse_ints, parse_rank, rank_text, show_error
from btcore import decompose as dec
from btcore import targets as tg

K = "approx_"  # widget and state key prefix
JOB_KEY = "approximation"
TRAIN_JOB_KEY = "training"  # the Training page's job in the session's registry (pages/training.py's JOB_KEY)
#: Largest target fitted here (entries): 4M entries = 32 MiB in float64; fits stay interactive.
MAX_ENTRIES = 1 << 22
#: Largest upload read (bytes): a float64 matrix of MAX_ENTRIES plus file overhead.
MAX_UPLOAD = 2 * 8 * MAX_ENTRIES
CACHE_SIZE = 6          # finished runs kept per session
FIT_CACHE_SIZE = 400    # single fits kept per session (factors only)
MAX_CP_RANK = 2000
#: Progress poll period (s). Faster polling slows the fits: the many small torch ops of an ALS sweep wait
#: for the GIL while a fragment rerun holds it. Default fit in the browser, measured here: 8.8-16.3 s at
#: 0.5 s polling, 6.1-6.9 s at 1 s, 5.5-5.8 s at 2 s.
POLL_S = 1.0
SHAPES = {
    "256 x 256 (4x4x4x4 -> 4x4x4x4)": ((4, 4, 4, 4), (4, 4, 4, 4)),
    "1,024 x 1,024 (4x8x8x4 -> 4x8x8x4)": ((4, 8, 8, 4), (4, 8, 8, 4)),
    "4,096 x 256, tall (8x8x8x8 -> 4x4x4x4)": ((8, 8, 8, 8), (4, 4, 4, 4)),
    "576 x 64, tall (4x12x12 -> 4x4x4)": ((4, 12, 12), (4, 4, 4)),
}
DEFAULT_SHAPE = next(iter(SHAPES))
SHAPES_PAGE = "Shapes page's modes"
CUSTOM = "Custom"
TARGETS = {
    "bt": "Exact BT (N=2, R=3) + noise",
    "tt": "Exact TT (ranks 4) + noise",
    "kernel": "Smooth kernel",
    "gaussian": "Gaussian random",
    "image": "Image",
    "trained": "Trained model: input-to-hidden weights",
    "upload": "Upload a matrix (.npy / .pt)",
}
EFFORT = {"quick": {"restarts": 1, "max_iter": 30}, "thorough": {"restarts": 3, "max_iter": 100}}


# -- state helpers ---------------------------------------------------------------------------------
def _entries(im, om) -> int:
    return btcore.shapes.prod(im) * btcore.shapes.prod(om)


def _shapes_page_config():
    """The Shapes page's modes when the user set them and they are small enough to fit here."""
    if CONFIG_KEY not in st.session_state:
        return None
    cfg = get_config()
    if len(cfg.in_modes) != len(cfg.out_modes) or _entries(cfg.in_modes, cfg.out_modes) > MAX_ENTRIES:
        return None
    return cfg


def _set_modes(im, om) -> None:
    st.session_state[K + "in_modes"] = format_ints(im)
    st.session_state[K + "out_modes"] = format_ints(om)


def _on_shape() -> None:
    name = st.session_state[K + "shape"]
    if name in SHAPES:
        _set_modes(*SHAPES[name])
    elif name == SHAPES_PAGE and _shapes_page_config() is not None:
        cfg = _shapes_page_config()
        _set_modes(cfg.in_modes, cfg.out_modes)


def _mark_custom() -> None:
    st.session_state[K + "shape"] = CUSTOM


def _trained_runs() -> dict:
    """The models the Training page left: run name -> (shape, in_modes, out_modes, kind).

    Read from each run's configuration; no matrix is formed here (see :func:`_trained_matrix`).
    """
    job = get_job(TRAIN_JOB_KEY)
    if job is None or job.running:
        return {}
    out = {}
    for r in getattr(job, "result", None) or []:
        if getattr(r, "model", None) is None:
            continue
        try:
            mc = r.config.model
            shape = (int(mc.input_size), int(mc.gates * mc.hidden_size))
            im, om = tuple(mc.in_modes), tuple(mc.out_modes)
            if len(om) != len(im) or btcore.shapes.prod(om) != shape[1]:  # a dense map of another order
                om = btcore.factorize(shape[1], len(im))
            if btcore.shapes.prod(im) != shape[0]:
                im = btcore.factorize(shape[0], len(om))
        except Exception:  # noqa: BLE001 - a model we cannot read is simply not offered
            continue
        out[str(r.name)] = (shape, im, om, str(getattr(mc, "kind", "dense")))
    return out


def _trained_matrix(name: str) -> np.ndarray:
    """The input-to-hidden matrix (I x J, float64) of one trained run, formed once per run and job."""
    job = get_job(TRAIN_JOB_KEY)
    memo = st.session_state.get(K + "trained_memo")
    if memo is not None and memo[0] is job and memo[1] == name:
        return memo[2]
    run = next(r for r in job.result if str(r.name) == name)
    imap = run.model.rnn.cell.input_map
    with torch.no_grad():
        W = imap.weight.T if isinstance(imap, torch.nn.Linear) else imap.weight_matrix()
    W = W.detach().to("cpu", torch.float64).numpy().copy()
    st.session_state[K + "trained_memo"] = (job, name, W)
    return W


def _on_trained() -> None:
    runs = _trained_runs()
    name = st.session_state.get(K + "trained")
    if name not in runs and runs:
        name = next(iter(runs))
    if st.session_state.get(K + "target") == "trained" and name in runs:
        _set_modes(runs[name][1], runs[name][2])
        st.session_state[K + "shape"] = CUSTOM


def _suggest_for(shape) -> None:
    try:
        d = len(parse_ints(st.session_state.get(K + "in_modes", ""), "input modes"))
    except ValueError:
        d = 4
    try:
        _set_modes(btcore.factorize(shape[0], d), btcore.factorize(shape[1], d))
    except ValueError:
        _set_modes(btcore.factorize(shape[0], 2, max_mode=None), btcore.factorize(shape[1], 2, max_mode=None))
    st.session_state[K + "shape"] = CUSTOM


def _init() -> None:
    cfg = get_config()
    small = _shapes_page_config()
    if small is not None:
        st.session_state[K + "shape"] = SHAPES_PAGE
        _set_modes(small.in_modes, small.out_modes)
    else:
        st.session_state[K + "shape"] = DEFAULT_SHAPE
        _set_modes(*SHAPES[DEFAULT_SHAPE])
    st.session_state[K + "bt_rank"] = rank_text(cfg.bt_rank)
    st.session_state[K + "blocks"] = int(cfg.blocks)
    st.session_state[K + "tt_ranks"] = rank_text(cfg.tt_ranks)
    st.session_state[K + "tucker_rank"] = rank_text(cfg.bt_rank)
    st.session_state[K + "cp_rank"] = 8


if K + "in_modes" not in st.session_state:
    _init()


# -- the worker: btcore only, never st.* -----------------------------------------------------------
def _fit_one(W, im, om, task, effort, seed, progress, should_stop):
    fmt, kw = task["format"], dict(EFFORT[effort])
    if fmt == "TT":
        return dec.fit_tt(W, im, om, task["ranks"], warn=False)
    kw.update(seed=seed, progress=progress, should_stop=should_stop, warn=False)
    if fmt == "Tucker":
        del kw["restarts"]  # fit_tucker's default: one (HOSVD) start suffices at either effort
        return dec.fit_tucker(W, im, om, task["ranks"], **kw)
    if fmt == "CP":
        return dec.fit_cp(W, im, om, task["blocks"], **kw)
    return dec.fit_bt(W, im, om, task["ranks"], task["blocks"], **kw)


def _describe(fmt: str, im, om, ranks, blocks) -> str:
    """The ranks as btcore.formats.describe writes them ("R=3, N=2", "ranks 1-4-4-4-1", "rank 8")."""
    if fmt == "TT":
        return btcore.formats.describe(btcore.TTSpec(im, om, ranks, max_bytes=None))
    return btcore.formats.describe(btcore.BTSpec(im, om, ranks, blocks, max_bytes=None))


def _factors_pt(fits: dict, spec: dict) -> bytes:
    """The fitted factors as a tensors-only ``.pt`` (loads with ``torch.load(weights_only=True)``)."""
    out = {"in_modes": list(spec["in_modes"]), "out_modes": list(spec["out_modes"]), "target": spec["desc"]}
    for fmt, (M, info) in fits.items():
        entry = {"relative_error": float(info.relative_error), "params": int(info.params),
                 "ranks": list(info.ranks)}
        if isinstance(M, btcore.TTMatrix):
            entry["cores"] = [c.detach().cpu() for c in M.cores]
        else:
            entry["factors"] = [f.detach().cpu() for f in M.factors]
            entry["core"] = M.core.detach().cpu()
            entry["blocks"] = int(info.blocks)
        out[fmt] = entry
    buf = io.BytesIO()
    torch.save(out, buf)
    return buf.getvalue()


def make_worker(spec: dict, W_given, known_fits: dict):
    """Build the target, run the main fits and the sweep, and return everything the page draws.

    ``known_fits`` is the page's copy of its fit cache, only read here; the fits made by this run come
    back in the result's ``new_fits`` for the page to merge (:func:`harvest`).
    """
    im, om = spec["in_modes"], spec["out_modes"]

    def target(job):
        t0 = time.perf_counter()
        job.update(message="building the target")
        if W_given is not None:
            W = W_given
        else:
            W = tg.make_target(spec["target"], im, om, spec["seed"], **spec["target_kwargs"])
        tasks = spec["tasks"]
        n = len(tasks)
        done_fits, new_fits, failures = {}, {}, []
        for i, task in enumerate(tasks):
            if job.should_stop:
                break
            fkey = (spec["target_key"], task["format"], tuple(task["ranks"]), task["blocks"], spec["effort"],
                    spec["seed"])
            if fkey in done_fits or fkey in known_fits:
                if fkey not in done_fits:
                    done_fits[fkey] = known_fits[fkey]
                job.update(progress=(i + 1) / n)
                continue
            expect = EFFORT[spec["effort"]]["max_iter"] + 10 * EFFORT[spec["effort"]]["restarts"] + 10
            what = f"{task['format']} {task['label']} ({i + 1} of {n})"
            job.update(message=what, progress=i / n)

            def progress(it, err, _i=i, _what=what):
                job.update(progress=(_i + min(0.95, it / expect)) / n,
                           message=f"{_what}: sweep {it}, error {err:.3g}")

            try:
                M, info = _fit_one(W, im, om, task, spec["effort"], spec["seed"], progress,
                                   lambda: job.should_stop)
            except ValueError as exc:
                failures.append(f"{task['format']} {task['label']}: {exc}")
                done_fits[fkey] = None
                continue
            if info.reason == "stopped":
                break
            done_fits[fkey] = new_fits[fkey] = (M, info)
        job.update(message="reconstructions", progress=max(job.progress, 0.97))
        target_small = ca.downsample(W)
        main, fits, recons, resid = [], {}, {}, {}
        dense = W.shape[0] * W.shape[1]
        for task in tasks:
            task["result"] = done_fits.get((spec["target_key"], task["format"], tuple(task["ranks"]),
                                            task["blocks"], spec["effort"], spec["seed"]))
        groups = {}  # (role, budget, format) -> the candidate with the lowest error, and how many were tried
        for task in tasks:
            g = (task["role"], task["budget"], task["format"])
            best, tried = groups.get(g, (None, []))
            tried = tried + [task["label"]]
            if task["result"] is not None and (best is None or
                                               task["result"][1].relative_error < best["result"][1].relative_error):
                best = task
            groups[g] = (best, tried)
        for (role, _, fmt), (task, tried) in groups.items():
            if role != "main" or task is None:
                continue
            M, info = task["result"]
            Md = M.to(dtype=torch.float64).to_dense().numpy()
            err = dec.relative_error(W, Md)  # from the one dense reconstruction the heatmaps use
            recons[fmt] = ca.downsample(Md)
            resid[fmt] = ca.downsample(W - Md)
            del Md
            fits[fmt] = (M, info)
            notes = list(info.notes)
            if len(tried) > 1:
                notes.append(f"{fmt}: best of {' and '.join(tried)} (closest to the budget)")
            main.append({"format": fmt, "ranks": _describe(fmt, im, om, info.ranks, info.blocks),
                         "blocks": info.blocks, "params": int(info.params), "compression": dense / info.params,
                         "rel_error": err, "error_text": info.error_text, "seconds": info.seconds,
                         "sweeps": info.iterations, "stopped on": info.reason, "at_precision": info.at_precision,
                         "notes": notes, "history": list(info.errors)})
        sweep = []
        for (role, budget, fmt), (task, _) in groups.items():
            if role != "sweep" or task is None:
                continue
            M, info = task["result"]
            sweep.append({"budget": budget, "format": fmt, "params": int(info.params),
                          "rel_error": float(info.relative_error), "error_text": info.error_text,
                          "at_precision": info.at_precision, "seconds": info.seconds,
                          "label": f"{fmt} {task['label']}"})
        return {"key": spec["key"], "desc": spec["desc"], "target": spec["explain_as"],
                "noise": spec["target_kwargs"].get("noise"), "shape": tuple(W.shape),
                "in_modes": im, "out_modes": om, "dense": dense, "target_small": target_small, "main": main,
                "fits": fits, "recons": recons, "residuals": resid, "sweep": sweep, "failures": failures,
                "stopped": job.should_stop, "seconds": time.perf_counter() - t0, "new_fits": new_fits,
                "pt": _factors_pt(fits, spec) if fits else None, "finished": time.strftime("%H:%M:%S")}

    return target


# -- page ------------------------------------------------------------------------------------------
st.title("Approximation")
st.caption("Fit Block-Term, Tensor-Train, Tucker and CP formats to a matrix and compare their errors at equal "
           "parameter counts. Fits run in the background (BT/Tucker/CP by joint ALS, TT by TT-SVD).")

trained = _trained_runs()
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
    kind = st.selectbox("Matrix", target_keys, format_func=TARGETS.get, key=K + "target", on_change=_on_trained,
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
            img = st.selectbox("Image", names, key=K + "image")
            target_kwargs = {"name": img}
        else:
            errors.append(("Target", ValueError(f"no images found in {tg.ASSET_DIR}")))
    elif kind == "trained":
        run = st.selectbox("Trained run", list(trained), key=K + "trained", on_change=_on_trained,
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
                    W_given = _trained_matrix(run)
                except Exception as exc:  # noqa: BLE001 - shown, never raised into the page
                    errors.append(("Trained run", exc))
                else:
                    train_job = get_job(TRAIN_JOB_KEY)
                    target_extra = ("trained", run, id(train_job), train_job.started_at)
                    explain_as = f"trained_{t_kind}"
    elif kind == "upload":
        up = st.file_uploader("Matrix file", type=["npy", "pt", "pth"], key=K + "upload",
                              help="A 2-D array saved with np.save, or a tensor / state dict saved with torch.save. "
                                   "Nothing pickled is ever loaded.")
        if up is None:
            waiting = True
            st.info("Choose a .npy or .pt file holding one 2-D matrix.", icon=":material/upload_file:")
        else:
            data = up.getvalue()
            sha = hashlib.sha256(data).hexdigest()
            memo = st.session_state.get(K + "upload_memo")
            if memo is None or memo[0] != sha:
                try:
                    memo = (sha, tg.load_uploaded(up.name, data, max_bytes=MAX_UPLOAD), None)
                except ValueError as exc:
                    memo = (sha, None, str(exc))
                st.session_state[K + "upload_memo"] = memo
            if memo[2] is not None:
                errors.append(("Upload", ValueError(memo[2])))
            else:
                W_given = memo[1]
                target_extra = ("upload", sha)
                st.caption(f"{up.name}: {W_given.shape[0]:,} x {W_given.shape[1]:,}")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=K + "seed", help="Seeds the target and the fits' starts.")

with c_shape:
    st.subheader("Shape")
    small_cfg = _shapes_page_config()
    shape_opts = list(SHAPES) + ([SHAPES_PAGE] if small_cfg is not None else []) + [CUSTOM]
    if st.session_state.get(K + "shape") not in shape_opts:
        st.session_state[K + "shape"] = CUSTOM
    st.selectbox("Modes", shape_opts, key=K + "shape", on_change=_on_shape,
                 format_func=lambda s: (f"{s}: {format_ints(small_cfg.in_modes)} -> {format_ints(small_cfg.out_modes)}"
                                        if s == SHAPES_PAGE and small_cfg is not None else s))
    if small_cfg is None and CONFIG_KEY in st.session_state:
        cfg = get_config()
        st.caption(f"The Shapes page's {cfg.in_size:,} x {cfg.out_size:,} is too large to fit here "
                   f"(limit {MAX_ENTRIES:,} entries).")
    c1, c2 = st.columns(2)
    c1.text_input("Input modes I₁x..xI_d", key=K + "in_modes", on_change=_mark_custom)
    c2.text_input("Output modes J₁x..xJ_d", key=K + "out_modes", on_change=_mark_custom)

with c_size:
    st.subheader("Formats and size")
    formats = st.multiselect("Formats", list(ca.FORMATS), default=list(ca.FORMATS), key=K + "formats")
    mode = st.radio("Size by", ["parameter budget", "explicit ranks"], horizontal=True, key=K + "mode")
    if mode == "parameter budget":
        budget = st.number_input("Parameter budget", 8, 10**9, 1000, step=100, key=K + "budget",
                                 help="Each format is fitted at the ranks whose parameter count is closest.")
    else:
        c1, c2 = st.columns(2)
        bt_rank_text = c1.text_input("BT rank R", key=K + "bt_rank", help="One rank, or one per mode: 3 or 3,3,2,2.")
        blocks = c2.number_input("BT blocks N", 1, 64, step=1, key=K + "blocks")
        c1, c2, c3 = st.columns(3)
        tt_text = c1.text_input("TT ranks", key=K + "tt_ranks")
        tucker_text = c2.text_input("Tucker rank", key=K + "tucker_rank")
        cp_rank = c3.number_input("CP rank", 1, MAX_CP_RANK, step=1, key=K + "cp_rank")
    sweep_points = st.slider("Sweep: budgets for the error-vs-parameters chart", 0, 7, 5, key=K + "sweep",
                             help="Geometric budgets from 1/4 to 4x your size, each fitted in every format. 0: off.")
    with st.expander("Fit settings"):
        effort = st.radio("Effort", list(EFFORT), horizontal=True, key=K + "effort",
                          help="quick: one start, up to 30 ALS sweeps. thorough: an HOSVD start and two random "
                               "ones, up to 100 sweeps (slower, sometimes lower errors).")
        bt_choices = st.number_input("BT candidates per budget", 1, 4, 2, key=K + "bt_choices",
                                     help="BT has two knobs (R and N): the closest (R, N) pairs to each budget are all "
                                          "fitted and the best is kept.")


# -- validation: a spec or clear errors -------------------------------------------------------------
def build_spec():
    im = parse_ints(st.session_state[K + "in_modes"], "input modes")
    om = parse_ints(st.session_state[K + "out_modes"], "output modes")
    if len(im) != len(om):
        raise ValueError(f"input modes have {len(im)} entries but output modes {len(om)}; both need the same order d")
    if len(im) > btcore.formats.MAX_ORDER:
        raise ValueError(f"order d = {len(im)} is above the supported maximum {btcore.formats.MAX_ORDER}")
    I, J = btcore.shapes.prod(im), btcore.shapes.prod(om)
    if W_given is not None and tuple(W_given.shape) != (I, J):
        raise ValueError(f"the matrix is {W_given.shape[0]:,} x {W_given.shape[1]:,} but the modes give {I:,} x {J:,}; "
                         "choose modes whose products are the matrix's sizes (button below)")
    if I * J > MAX_ENTRIES:
        raise ValueError(f"{I:,} x {J:,} = {I * J:,} entries ({btcore.format_bytes(8 * I * J)} in float64) is above "
                         f"this page's limit of {MAX_ENTRIES:,} entries, which keeps fits interactive; choose smaller "
                         "modes, or call btcore.fit_bt from a script for larger matrices")
    if not formats:
        raise ValueError("choose at least one format")
    if len(im) == 1 and "TT" in formats:
        raise ValueError("order d = 1 is a plain matrix: TT needs at least 2 modes; use d >= 2")
    dense = I * J
    tasks, main_params = [], []
    if mode == "parameter budget":
        center = int(budget)
        if center >= dense:
            raise ValueError(f"a budget of {center:,} parameters is not below the dense {dense:,}; nothing to "
                             "compress. Choose a smaller budget")
        tasks += _candidates(im, om, center, "main")
        main_params = [t["params"] for t in tasks]
    else:
        R = parse_rank(bt_rank_text, "BT rank")
        tt = parse_rank(tt_text, "TT ranks")
        tr = parse_rank(tucker_text, "Tucker rank")
        specs = {"BT": lambda: btcore.BTSpec(im, om, R, int(blocks)), "TT": lambda: btcore.TTSpec(im, om, tt),
                 "Tucker": lambda: btcore.tucker_spec(im, om, tr), "CP": lambda: btcore.cp_spec(im, om, int(cp_rank))}
        for fmt in formats:
            try:
                s = specs[fmt]()
            except ValueError as exc:
                raise ValueError(f"{fmt}: {exc}") from None
            if s.params >= dense:
                raise ValueError(f"{fmt} with these ranks has {s.params:,} parameters, not fewer than the dense "
                                 f"{dense:,}: the ranks are too large to compress anything; lower them")
            if fmt == "TT":
                ranks, n_blocks = dec.cap_tt_ranks(im, om, tt)[0], None
            else:
                ranks, n_blocks = dec.cap_bt_ranks(im, om, s.ranks)[0], s.blocks
            tasks.append({"format": fmt, "ranks": ranks, "blocks": n_blocks, "params": s.params, "role": "main",
                          "budget": None, "label": _describe(fmt, im, om, ranks, n_blocks)})
            main_params.append(s.params)
        center = int(np.median(main_params))
    budgets = ca.sweep_budgets(center, dense, int(sweep_points))
    if mode == "parameter budget" and budgets and center not in budgets:
        budgets = sorted(budgets + [center])
    for b in budgets:  # fits shared with the main ones are done once (the worker de-duplicates)
        tasks += [t for t in _candidates(im, om, b, "sweep") if not (t["format"] == "CP" and t["blocks"] > MAX_CP_RANK)]
    cp_big = [t for t in tasks if t["format"] == "CP" and t["role"] == "main" and t["blocks"] > MAX_CP_RANK]
    if cp_big:
        raise ValueError(f"CP rank {cp_big[0]['blocks']:,} is above {MAX_CP_RANK:,} (CP at large rank is slow); "
                         "lower the budget or drop CP")
    peak = ca.fit_bytes(im, om, tasks)
    btcore.check_allocation(peak, f"fitting a {I:,} x {J:,} matrix", "choose smaller modes or a smaller budget")
    target_key = (kind, int(seed), im, om, tuple(sorted(target_kwargs.items())), target_extra)
    size_desc = (f"budget {center:,}" if mode == "parameter budget" else
                 "ranks " + ", ".join(f"{t['format']} {t['label']}" for t in tasks if t["role"] == "main"))
    desc = f"{TARGETS[kind]}, {I:,} x {J:,} ({format_ints(im)} -> {format_ints(om)}), {size_desc}"
    key = (target_key, tuple(formats), mode, int(bt_choices), tuple((t["format"], tuple(t["ranks"]), t["blocks"], t["role"]) for t in tasks),
           tuple(budgets), effort)
    return {"key": key, "target_key": target_key, "target": kind, "explain_as": explain_as or kind, "target_kwargs": target_kwargs, "seed": int(seed),
            "in_modes": im, "out_modes": om, "tasks": tasks, "effort": effort, "desc": desc,
            "budgets": budgets, "peak_bytes": peak}


def _candidates(im, om, budget: int, role: str) -> list[dict]:
    """Tasks for the formats closest to ``budget``: ``bt_choices`` BT candidates, one of each other format.

    The selection is btcore's (budget_candidates). The fits are not left to dec.compare_formats: it
    returns no fitted matrices (the page draws reconstructions and exports factors), fits each budget on
    its own (the page fits a candidate shared by several budgets once, and reuses the session's fit
    cache), and reports progress per format, not over the whole run.
    """
    out = []
    for fmt in formats:
        per = int(bt_choices) if fmt == "BT" else 1
        for c in dec.budget_candidates(im, om, budget, formats=(fmt,), per_format=per):
            out.append({"format": fmt, "ranks": tuple(c["ranks"]), "blocks": c["blocks"], "params": c["params"],
                        "role": role, "budget": budget,
                        "label": _describe(fmt, im, om, c["ranks"], c["blocks"])})
    return out


spec = None
for ctx, exc in errors:
    show_error(exc, ctx)
if not errors and not waiting:
    try:
        spec = build_spec()
    except ValueError as exc:
        show_error(exc, "Check the inputs")
        if W_given is not None:
            st.button("Use modes that fit this matrix", key=K + "fix_modes", on_click=_suggest_for,
                      args=(tuple(W_given.shape),), icon=":material/auto_fix_high:")
if spec is not None:
    I, J = btcore.shapes.prod(spec["in_modes"]), btcore.shapes.prod(spec["out_modes"])
    n_main = sum(t["role"] == "main" for t in spec["tasks"])
    st.caption(f"Target {I:,} x {J:,} = {I * J:,} entries ({btcore.format_bytes(8 * I * J)} in float64); the fits "
               f"need about {btcore.format_bytes(spec['peak_bytes'])} of the "
               f"{btcore.format_bytes(btcore.available_memory())} free. {n_main} fits at your size, "
               f"up to {len(spec['tasks']) - n_main} more (repeats are fitted once) for the sweep over budgets "
               f"{', '.join(f'{b:,}' for b in spec['budgets']) or '(off)'}.")


# -- run -------------------------------------------------------------------------------------------
def _cache() -> OrderedDict:
    c = st.session_state.get(K + "cache")
    if not isinstance(c, OrderedDict):
        c = st.session_state[K + "cache"] = OrderedDict()
    return c


def _fit_cache() -> dict:
    """Single fits kept across runs: (target, format, ranks, blocks, effort, seed) -> (M, info).

    Read and written in the script thread only: a worker gets a copy and returns its new fits.
    """
    return st.session_state.setdefault(K + "fit_cache", {})


def _merge_fits(new_fits: dict) -> None:
    """Add a run's new fits to the fit cache (newest last) and drop the oldest beyond FIT_CACHE_SIZE."""
    c = _fit_cache()
    for k, v in new_fits.items():
        c.pop(k, None)
        c[k] = v
    while len(c) > FIT_CACHE_SIZE:
        c.pop(next(iter(c)))


def harvest() -> bool:
    """Move a finished job's result into the cache and onto the screen (once). True when it did."""
    job = st.session_state.get(K + "job")
    if job is None or job.running or st.session_state.get(K + "harvested") is job:
        return False
    st.session_state[K + "harvested"] = job
    snap = job.snapshot()
    if snap["error"]:
        st.session_state[K + "job_error"] = snap["error"]
        return True
    res = snap["result"]
    if res:
        _merge_fits(res.pop("new_fits", {}))  # fits of a stopped or partly failed run are still good
        if not res["stopped"] and not res["failures"]:
            cache = _cache()
            cache[res["key"]] = res
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        if res["main"] or res["sweep"]:
            st.session_state[K + "shown"] = res
        elif res["stopped"]:
            st.session_state[K + "job_note"] = "Stopped before any fit finished; the results below (if any) are older."
        st.session_state[K + "from_cache"] = False
    return True


harvest()
job = st.session_state.get(K + "job")
running = job is not None and job.running
c1, c2, _ = st.columns([1, 1, 4])
if c1.button("Fit", type="primary", icon=":material/play_arrow:", key=K + "fit", disabled=running or spec is None):
    st.session_state.pop(K + "job_error", None)
    st.session_state.pop(K + "job_note", None)
    cached = _cache().get(spec["key"])
    if cached is not None:
        _cache().move_to_end(spec["key"])
        st.session_state[K + "shown"] = cached
        st.session_state[K + "from_cache"] = True
    else:
        job = start_job(JOB_KEY, make_worker(spec, W_given, dict(_fit_cache())), name="approximation")
        st.session_state[K + "job"] = job  # the registry's job; tests join it
        running = True
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
    if harvest():  # finished while only this fragment was rerunning: redraw the page
        st.rerun()
    if st.session_state.get(K + "job_note"):
        st.info(st.session_state[K + "job_note"], icon=":material/stop_circle:")
    if st.session_state.get(K + "job_error"):
        st.error(f"**The fit failed:** {st.session_state[K + 'job_error']}", icon=":material/error:")


live()


# -- results ---------------------------------------------------------------------------------------
def draw_results(res: dict) -> None:
    st.subheader("Results")
    when = "from the cache" if st.session_state.get(K + "from_cache") else f"fitted at {res['finished']}"
    st.caption(f"{res['desc']} · {when} in {res['seconds']:.1f} s")
    if spec is not None and spec["key"] != res["key"]:
        st.info("The inputs changed since these results: press **Fit** to update them.", icon=":material/edit:")
    if res["stopped"]:
        st.warning("Stopped: partial results (not cached).", icon=":material/stop_circle:")
    for msg in res["failures"]:
        st.error(f"**A fit failed:** {msg}", icon=":material/error:")
    rows = res["main"]
    if rows:
        table = pd.DataFrame([{
            "format": r["format"], "ranks": r["ranks"], "blocks N": pd.NA if r["blocks"] is None else r["blocks"], "parameters": r["params"],
            "compression": r["compression"], "relative error": r["rel_error"], "fit time (s)": r["seconds"],
            "ALS sweeps": r["sweeps"], "stopped on": r["stopped on"]} for r in rows])
        st.dataframe(table, hide_index=True, width="stretch", key=K + "table", column_config={
            "parameters": st.column_config.NumberColumn(format="localized"),
            "blocks N": st.column_config.NumberColumn(format="%d"),
            "compression": st.column_config.NumberColumn(format="%.1f x"),
            "relative error": st.column_config.NumberColumn(format="%.4g"),
            "fit time (s)": st.column_config.NumberColumn(format="%.2f"),
        })
        notes = sorted({n for r in rows for n in r["notes"]})
        if notes:
            with st.expander(f"Fit notes ({len(notes)})"):
                for n in notes:
                    st.caption(n)
        if any(r["at_precision"] for r in rows):
            below = f"{dec.AT_PRECISION:.0e}".replace("e-0", "e-")
            st.caption(f"Errors below {below} are at numerical precision (float64): they do not rank the formats.")
    c_chart, c_text = st.columns([3, 2], gap="large")
    with c_chart:
        if res["sweep"]:
            fig = ca.error_vs_params(res["sweep"], main=rows, dense=res["dense"], reference=res["target"] == "gaussian")
            st.plotly_chart(fig, width="stretch", key=K + "pareto_chart")
        else:
            st.info("Sweep off: set the sweep to 3 or more budgets for the error-vs-parameters chart.",
                    icon=":material/show_chart:")
    with c_text:
        st.markdown("#### What these numbers show")
        st.markdown(ca.explain(rows, res["sweep"], res["target"], res["shape"], noise=res["noise"]))
    if res["recons"]:
        st.markdown("#### Target and reconstructions")
        shown = res["target_small"].shape != res["shape"]
        st.plotly_chart(ca.heatmaps(res["target_small"], res["recons"], shape=res["shape"],
                                    errors={r["format"]: r["error_text"] for r in rows}),
                        width="stretch", key=K + "heatmaps")
        if shown:
            st.caption(f"Drawn as block means ({res['target_small'].shape[0]} x {res['target_small'].shape[1]} cells) of "
                       f"the {res['shape'][0]:,} x {res['shape'][1]:,} matrices.")
        c1, c2 = st.columns(2, gap="large")
        with c1:
            fmts = list(res["residuals"])
            pick = st.selectbox("Residual of", fmts, key=K + "residual_of")
            if pick not in res["residuals"]:
                pick = fmts[0]
            st.plotly_chart(ca.residual_heatmap(res["residuals"][pick], pick, shape=res["shape"]),
                            width="stretch", key=K + "residual")
        with c2:
            hist = {r["format"]: r["history"] for r in rows}
            st.plotly_chart(ca.convergence(hist), width="stretch", key=K + "convergence")
            st.caption("Error per ALS sweep of the start that was kept (the error never increases). TT-SVD is "
                       "direct: one point.")
    main_df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("history", "notes")} | {"run": "your size"}
                            for r in rows])
    sweep_df = pd.DataFrame([r | {"run": "sweep"} for r in res["sweep"]])
    csv = pd.concat([main_df, sweep_df], ignore_index=True).to_csv(index=False).encode()
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Results (CSV)", csv, "btlab_approximation.csv", "text/csv", icon=":material/download:",
                       key=K + "dl_csv")
    if res["pt"]:
        c2.download_button("Fitted factors (.pt)", res["pt"], "btlab_factors.pt", "application/octet-stream",
                           icon=":material/download:", key=K + "dl_pt",
                           help="torch.load(path, weights_only=True): per format its factors and core (BT, Tucker, "
                                "CP) or cores (TT), with the ranks and the relative error.")


shown = st.session_state.get(K + "shown")
if shown is None:
    st.info("Pick a target and a size, then press **Fit**. The default (256 x 256, exact BT structure, budget 1,000 "
            "and a sweep over 5 budgets) takes a few seconds.", icon=":material/compare:")
else:
    draw_results(shown)
