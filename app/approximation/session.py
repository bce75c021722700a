"""The Approximation page's session state: defaults, widget callbacks, trained runs, uploads,
the two caches and the harvest of a finished job.

Inputs are read and written through the page's store (:func:`app.frame.stored_inputs`), the rest
through :data:`~.inputs.STATE`; the fitting itself is :mod:`app.approximation.run`, run in a
background job (:mod:`app.jobs`), shared with every session that fits the same inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict

import numpy as np
import torch

import btcore
from app import jobs
from app.config import config_chosen, get_config
from app.frame import stored_inputs
from btcore.target_matrices import natural_shape
from btcore.uploads import load_uploaded
from btcore.shapes import format_ints, parse_ints, prod

from .inputs import CUSTOM, DEFAULT_SHAPE, SHAPES, SHAPES_PAGE, STATE, K  # noqa: F401 - the page reads them here
from .plan import MAX_ENTRIES, RunSpec
from .run import RunResult, make_worker

JOB_KEY = "approximation"
TRAIN_JOB_KEY = "training"  # the Training page's job in the session's registry (pages/training.py's JOB_KEY)
#: Largest upload read (bytes): a float64 matrix of MAX_ENTRIES plus file overhead.
MAX_UPLOAD = 2 * 8 * MAX_ENTRIES
CACHE_SIZE = 6          # finished runs kept per session
FIT_CACHE_SIZE = 400    # single fits kept per session (factors only)


# -- modes and defaults ------------------------------------------------------------------------
def shapes_page_config():
    """The Shapes page's modes when the user set them and they are small enough to fit here."""
    if not config_chosen():
        return None
    cfg = get_config()
    if len(cfg.in_modes) != len(cfg.out_modes) or prod(cfg.in_modes) * prod(cfg.out_modes) > MAX_ENTRIES:
        return None
    return cfg


def _store():
    """The page's inputs, with what the widgets report now (a callback runs before the page's sync)."""
    store = stored_inputs("approximation")
    store.sync()
    return store


def set_modes(im, om) -> None:
    store = _store()
    store.set("a_in", format_ints(im))
    store.set("a_out", format_ints(om))


def on_shape() -> None:
    name = _store()["shape"]
    cfg = shapes_page_config()
    if name in SHAPES:
        set_modes(*SHAPES[name])
    elif name == SHAPES_PAGE and cfg is not None:
        set_modes(cfg.in_modes, cfg.out_modes)


def mark_custom() -> None:
    _store().set("shape", CUSTOM)


def suggest_for(shape) -> None:
    """Modes that fit a given matrix's shape (same order as typed, else 2)."""
    try:
        d = len(parse_ints(_store()["a_in"], "input modes"))
    except ValueError:
        d = 4
    try:
        set_modes(btcore.factorize(shape[0], d), btcore.factorize(shape[1], d))
    except ValueError:
        set_modes(btcore.factorize(shape[0], 2, max_mode=None), btcore.factorize(shape[1], 2, max_mode=None))
    _store().set("shape", CUSTOM)


# -- given matrices: trained runs and uploads ------------------------------------------------------
def trained_runs() -> dict:
    """The models the Training page left: run name -> (shape, in_modes, out_modes, kind).

    Read from each run's configuration; no matrix is formed here (see :func:`trained_matrix`).
    """
    job = jobs.get_job(TRAIN_JOB_KEY)
    if job is None or job.running:
        return {}
    out = {}
    for r in job.result or []:
        if getattr(r, "model", None) is None:
            continue
        try:
            mc = r.config.model
            shape = (int(mc.input_size), int(mc.gates * mc.hidden_size))
            im, om = tuple(mc.in_modes), tuple(mc.out_modes)
            if len(om) != len(im) or prod(om) != shape[1]:  # a dense map of another order
                om = btcore.factorize(shape[1], len(im))
            if prod(im) != shape[0]:
                im = btcore.factorize(shape[0], len(om))
        except Exception:  # noqa: BLE001 - a model we cannot read is simply not offered
            continue
        out[str(r.name)] = (shape, im, om, str(getattr(mc, "kind", "dense")))
    return out


def trained_matrix(name: str) -> tuple[np.ndarray, tuple]:
    """The input-to-hidden matrix (I x J, float64) of one trained run, formed once per run and job,
    and what identifies it (for the caches)."""
    job = jobs.get_job(TRAIN_JOB_KEY)
    extra = ("trained", name, id(job), job.started_at)
    memo = STATE.get("trained_memo")
    if memo is not None and memo[0] is job and memo[1] == name:
        return memo[2], extra
    run = next(r for r in job.result if str(r.name) == name)
    imap = run.model.rnn.cell.input_map
    with torch.no_grad():
        W = imap.weight.T if isinstance(imap, torch.nn.Linear) else imap.weight_matrix()
    W = W.detach().to("cpu", torch.float64).numpy().copy()
    STATE.set("trained_memo", (job, name, W))
    return W, extra


def on_trained() -> None:
    runs = trained_runs()
    store = _store()
    name = store["trained"]
    if name not in runs and runs:
        name = next(iter(runs))
    if store["target"] == "trained" and name in runs:
        set_modes(runs[name][1], runs[name][2])
        store.set("shape", CUSTOM)


def on_target() -> None:
    """Target callback: a target with a size of its own (a photo, the digits) sets modes that factor it."""
    store = _store()
    kind = store["target"]
    if kind == "trained":
        on_trained()
        return
    shape = natural_shape(kind, name=store["photo"]) if kind in ("photo", "digits") else None
    if shape is not None:
        d = 3 if kind == "digits" else 4  # 64 columns: 4x4x4; a photo's 512 sides: 4x4x4x8
        set_modes(btcore.factorize(shape[0], d, max_mode=None), btcore.factorize(shape[1], d, max_mode=None))
        store.set("shape", CUSTOM)


def read_upload(name: str, data: bytes) -> tuple[np.ndarray, tuple]:
    """The uploaded matrix (read once per content) and what identifies it; ValueError if unreadable."""
    sha = hashlib.sha256(data).hexdigest()
    memo = STATE.get("upload_memo")
    if memo is None or memo[0] != sha:
        try:
            memo = (sha, load_uploaded(name, data, max_bytes=MAX_UPLOAD), None)
        except ValueError as exc:
            memo = (sha, None, str(exc))
        STATE.set("upload_memo", memo)
    if memo[2] is not None:
        raise ValueError(memo[2])
    return memo[1], ("upload", sha)


# -- caches, runs and harvest ----------------------------------------------------------------------
def result_cache() -> OrderedDict:
    """Finished runs (not stopped, nothing failed): spec key -> :class:`RunResult`, newest last."""
    c = STATE.get("cache")
    if not isinstance(c, OrderedDict):
        c = OrderedDict()
        STATE.set("cache", c)
    return c


def fit_cache() -> dict:
    """Single fits kept across runs: (target, format, ranks, blocks, effort, seed) -> (M, info).

    Read and written in the script thread only: a worker gets a copy and returns its new fits.
    """
    return STATE.setdefault("fit_cache", {})


def merge_fits(new_fits: dict) -> None:
    """Add a run's new fits to the fit cache (newest last) and drop the oldest beyond FIT_CACHE_SIZE."""
    c = fit_cache()
    for k, v in new_fits.items():
        c.pop(k, None)
        c[k] = v
    while len(c) > FIT_CACHE_SIZE:
        c.pop(next(iter(c)))


def start(spec: RunSpec, W_given) -> bool:
    """Show the cached result of ``spec``, or start a job that computes it (then True).

    The job is shared (:func:`app.jobs.start_job`): its key is the whole spec and the given matrix, so
    every session fitting the same target, modes, sizes, effort and seed follows one worker. The
    session's fit cache only spares fits; it does not change a result (fits are reproducible).
    """
    STATE.pop("job_error")
    STATE.pop("job_note")
    cached = result_cache().get(spec.key)
    if cached is not None:
        result_cache().move_to_end(spec.key)
        STATE.set("shown", cached)
        STATE.set("from_cache", True)
        return False
    job = jobs.start_job(JOB_KEY, make_worker(spec, W_given, dict(fit_cache())), name="approximation",
                         share=("approximation fit", spec, W_given))
    STATE.set("job", job)  # the registry's job; tests join it
    return True


def harvest() -> bool:
    """Move a finished job's result into the cache and onto the screen (once). True when it did."""
    job = STATE.get("job")
    if job is None or job.running or STATE.get("harvested") is job:
        return False
    STATE.set("harvested", job)
    snap = job.snapshot()
    if snap["error"]:
        STATE.set("job_error", snap["error"])
        return True
    res: RunResult | None = snap["result"]
    if res:
        merge_fits(res.new_fits)  # fits of a stopped or partly failed run are still good
        res = dataclasses.replace(res, new_fits={})  # the job's result may be other sessions' too: not changed
        if not res.stopped and not res.failures:
            cache = result_cache()
            cache[res.key] = res
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        if res.main or res.sweep:
            STATE.set("shown", res)
        elif res.stopped:
            STATE.set("job_note", "Stopped before any fit finished; the results below (if any) are older.")
        STATE.set("from_cache", False)
        STATE.set("shared_note", jobs.share_note(job))
    elif snap["status"] == "stopped" and snap["message"]:
        STATE.set("job_note", snap["message"][0].upper() + snap["message"][1:] + ".")
    return True
