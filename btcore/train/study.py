"""The format study: validation metric vs input-map parameters vs speed, across formats at equal budgets.

:func:`plan_study` turns a task, a list of parameter budgets for the input map and the formats
(default every factorized format of :data:`btcore.rnn.KINDS`) into jobs: the dense model once, and
per budget and format the largest uniform ranks whose input-map parameters fit the budget
(:func:`btcore.compress.rank_for_budget`; for BT at each block count of ``bt_blocks``, the R x N
grid). With ``compress_from`` (a trained dense model or a checkpoint) each budget also gets the
dense model compressed into each format (:func:`btcore.compress`), evaluated as it is
("compressed") and after ``finetune_epochs`` of training ("finetuned").

:func:`run_study` trains the jobs one after another (every run on the same seeded batches, so
a stop keeps the runs that finished), or the share ``rank::world`` of them; :func:`merge_study`
joins shares in job order. The :class:`StudyResult` marks the Pareto front of the metric vs
the input-map parameters in each phase (:func:`pareto_flags`), recommends the best metric within
the budget (ties to fewer parameters, :func:`recommend`) only where the measurements tell it apart from
the others and from chance (:func:`judge`: binomial noise of an accuracy on the validation clips) and exports it (:meth:`StudyResult.export_code`,
:meth:`StudyResult.export_state_dict`). Budgets count work (epochs), never seconds.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..compress import COMPRESS_FORMATS, compress, format_ranks, rank_for_budget
from ..rnn import KINDS
from ..tasks import Task
from .config import TrainConfig
from .distributed import Processes
from .estimate import probe_seconds
from .io import load_checkpoint
from .race import compare
from .run import Run, never_stop

__all__ = ["StudyJob", "StudyRow", "StudyResult", "plan_study", "run_study", "merge_study", "estimate_study",
           "pareto_flags", "recommend", "judge", "Verdict", "share_noise", "study_formats", "PHASES", "TIMING_FIELDS",
           "SHARE_METRICS", "NOISE_Z"]

#: The phases of a row: trained in its format, compressed from the dense model, compressed and fine-tuned.
PHASES = ("trained", "compressed", "finetuned")
#: Fields measured in seconds (they differ between machines and runs; everything else reproduces).
TIMING_FIELDS = ("examples_per_s", "seconds")
#: Metrics that are a share of the validation examples (accuracy): their noise is binomial (:func:`share_noise`).
SHARE_METRICS = ("val_acc",)
#: Two metrics closer than this many standard errors of their difference cannot be told apart (about 95 %).
NOISE_Z = 2.0


def study_formats() -> tuple[str, ...]:
    """The factorized formats a study compares: :data:`btcore.rnn.KINDS` without ``"dense"``."""
    return tuple(k for k in KINDS if k != "dense")


@dataclass(frozen=True)
class StudyJob:
    """One unit of work: train ``config`` ("trained"), or compress the dense model at ``budget`` and fine-tune it."""

    index: int
    name: str
    format: str
    budget: int | None
    phase: str  # "trained" or "compressed" (which also yields the "finetuned" row)
    config: TrainConfig | None = None
    blocks: int | None = None


@dataclass
class StudyRow:
    """One result: a model's format, ranks, size, metric and speed, and whether it is on the front / recommended.

    Fields
    ------
    run : str
        The model's name (unique in the study), e.g. ``"BT-LSTM (R=4, N=2) @3,000"``.
    format : str
        ``"dense"``, ``"tt"``, ``"bt"`` (or a further format of :data:`btcore.rnn.KINDS`).
    phase : str
        ``"trained"`` (trained in its format), ``"compressed"`` (the dense model fitted, not trained
        since) or ``"finetuned"`` (compressed, then trained ``finetune_epochs``).
    budget : int or None
        The input-map parameter budget it was sized for (None: the dense model).
    ranks : list of int or None
        The format's ranks (TT: r_0..r_d with the boundary 1s; BT: the per-mode Tucker ranks).
    blocks : int or None
        BT's block count N.
    params, total_params : int
        Input-map parameters (bias excluded) / all of the model's parameters.
    val_metric, val_loss : float
        The task's metric (:attr:`StudyResult.metric`) and loss on the validation data, at the end.
    examples_per_s : float or None
        Median training examples per second (timing: differs between machines).
    seconds : float
        The run's own seconds (timing).
    status : str
        The run's end: "done", "stalled", "diverged".
    job : int
        The index of the job that made it (the torchrun assignment: job ``i`` on rank ``i % K``).
    pareto, recommended : bool
        On the front of metric vs params within its phase / the study's recommendation.
    fit_error : float or None
        Compressed rows: the largest relative Frobenius error of the fitted layers.
    """

    run: str
    format: str
    phase: str
    budget: int | None
    ranks: list | None
    blocks: int | None
    params: int  # input-map parameters (bias excluded)
    total_params: int
    val_metric: float
    val_loss: float
    examples_per_s: float | None
    seconds: float
    status: str
    job: int
    pareto: bool = False
    recommended: bool = False
    fit_error: float | None = None

    def to_dict(self) -> dict:
        """Plain JSON-able values (non-finite floats become None)."""
        out = dataclasses.asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


@dataclass
class StudyResult:
    """A study's rows with the Pareto front and the recommendation, and the models to export."""

    task: str
    metric: str
    metric_label: str
    higher_is_better: bool
    budgets: list[int]
    rows: list[StudyRow]
    stopped: bool = False
    estimated_s: float | None = None
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    configs: dict[str, Any] = field(default_factory=dict, repr=False)
    val_size: int | None = None  # validation examples each metric was measured on
    chance: float | None = None  # the metric of a model that learnt nothing
    chance_margin: float | None = None  # how far beyond chance counts as learning
    verdict: Verdict | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.mark()

    def mark(self) -> None:
        """Set every row's ``pareto`` (within its phase) and ``recommended`` flag."""
        for phase in PHASES:
            rows = [r for r in self.rows if r.phase == phase]
            for r, flag in zip(rows, pareto_flags([r.params for r in rows], [r.val_metric for r in rows],
                                                  self.higher_is_better)):
                r.pareto = flag
        share = self.metric in SHARE_METRICS
        self.verdict = judge(self.rows, max(self.budgets) if self.budgets else None, self.higher_is_better,
                             n_val=self.val_size if share else None, chance=self.chance if share else None,
                             chance_margin=self.chance_margin if share else None)
        for r in self.rows:
            r.recommended = r is self.verdict.best

    @property
    def recommended(self) -> StudyRow | None:
        return next((r for r in self.rows if r.recommended), None)

    def to_dict(self) -> dict:
        """The study as plain data: its task, metric and direction, budgets, rows (:meth:`StudyRow.to_dict`)."""
        rec = self.recommended
        return {"task": self.task, "metric": self.metric, "metric_label": self.metric_label,
                "higher_is_better": self.higher_is_better, "budgets": list(self.budgets), "stopped": self.stopped,
                "estimated_s": self.estimated_s, "recommended": rec.run if rec else None,
                "verdict": self.verdict.to_dict() if self.verdict else None, "val_size": self.val_size,
                "chance": self.chance, "rows": [r.to_dict() for r in self.rows]}

    def _pick(self, run: str | None) -> StudyRow:
        row = self.recommended if run is None else next((r for r in self.rows if r.run == run), None)
        if row is None or row.run not in self.models:
            raise ValueError(f"no trained model for run {run!r}" if run else "the study recommends no model")
        return row

    def export_state_dict(self, run: str | None = None) -> bytes:
        """The trained weights of ``run`` (default: the recommended one) as a ``.pt`` state dict, in bytes."""
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.models[self._pick(run).run].state_dict().items()}, buf)
        return buf.getvalue()

    def export_code(self, run: str | None = None, weights_file: str = "model.pt") -> str:
        """Python code that builds ``run``'s model (default: the recommended one) and loads ``weights_file``."""
        row = self._pick(run)
        cfg, model = self.configs[row.run], self.models[row.run]
        c, m = type(cfg), type(model)
        imap = getattr(model, "input_map", None)
        lines = [f"# {row.run}: {row.format.upper()} input map, {row.params:,} parameters, "
                 f"{self.metric_label} {row.val_metric:.4g} ({row.phase})",
                 "import torch", f"from {c.__module__} import {c.__name__}", f"from {m.__module__} import {m.__name__}",
                 "", f"config = {c.__name__}(**{cfg.to_dict()!r})", f"model = {m.__name__}(config)",
                 f"model.load_state_dict(torch.load({weights_file!r}, weights_only=True))"]
        if imap is not None and hasattr(imap, "spec"):
            s = imap.spec
            lines += [f"# the input map: {type(imap).__name__}(in_modes={tuple(s.in_modes)}, out_modes="
                      f"{tuple(s.out_modes)}, ...) = model.input_map"]
        return "\n".join(lines) + "\n"


def pareto_flags(params: Sequence[int], metrics: Sequence[float], higher_is_better: bool = True) -> list[bool]:
    """Whether each point is on the Pareto front: no other point has at most its parameters and a metric at least as
    good, one of them strictly. Points with a non-finite metric are never on it."""
    sign = 1.0 if higher_is_better else -1.0
    pts = [(p, sign * m if math.isfinite(m) else None) for p, m in zip(params, metrics)]
    out = []
    for p, m in pts:
        if m is None:
            out.append(False)
            continue
        out.append(not any(q is not None and q_p <= p and q >= m and (q_p < p or q > m) for q_p, q in pts))
    return out


@dataclass(frozen=True)
class Verdict:
    """What the measured rows support: a recommendation, or why there is none.

    Fields
    ------
    best : StudyRow or None
        The recommendation: the top row, told apart from every other row and from chance.
    top : StudyRow or None
        The best finite metric within the budget (ties: fewer parameters), recommended or not.
    tied : tuple of StudyRow
        The other rows within the budget whose metric is within the noise of the top one's, best first.
    reason : str
        ``"clear"`` (recommended), ``"tied"`` (runs within the noise of the top one), ``"chance"`` (the top
        one is within the noise of chance), ``"unmeasured"`` (no noise estimate for this metric: the top one
        is recommended as the best measured) or ``"none"`` (no finished run within the budget).
    noise : float or None
        The standard error of the top metric (None: not a share of the validation examples).
    gap : float or None
        The top metric minus the runner-up's (in the metric's good direction; None: one row).
    """

    best: StudyRow | None
    top: StudyRow | None
    tied: tuple[StudyRow, ...]
    reason: str
    noise: float | None = None
    gap: float | None = None

    def to_dict(self) -> dict:
        """Plain values: the runs by name."""
        return {"best": self.best.run if self.best else None, "top": self.top.run if self.top else None,
                "tied": [r.run for r in self.tied], "reason": self.reason, "noise": self.noise, "gap": self.gap}


def share_noise(p: float, n: int) -> float:
    """The binomial standard error ``sqrt(p (1 - p) / n)`` of a share ``p`` (an accuracy) measured on ``n`` examples."""
    p = min(max(float(p), 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / max(int(n), 1))


def judge(rows: Sequence[StudyRow], budget: int | None, higher_is_better: bool = True, *, n_val: int | None = None,
          chance: float | None = None, chance_margin: float | None = None) -> Verdict:
    """Which row the measurements recommend, if any (:class:`Verdict`).

    The top row is the best finite metric among the finished rows whose input-map parameters fit
    ``budget`` (ties: fewer parameters). With ``n_val`` (the metric is a share of ``n_val`` validation
    examples) it is recommended only when it is told apart: every other such row's metric differs
    from it by more than :data:`NOISE_Z` standard errors of the difference (:func:`share_noise`),
    and it is beyond ``chance`` by more than ``chance_margin`` (default :data:`NOISE_Z` standard
    errors of chance). Without ``n_val`` the top row is recommended (``"unmeasured"``).
    """
    ok = [r for r in rows if math.isfinite(r.val_metric) and r.status in ("done", "stalled")
          and (budget is None or r.params <= budget)]
    if not ok:
        return Verdict(None, None, (), "none")
    sign = -1.0 if higher_is_better else 1.0
    ranked = sorted(ok, key=lambda r: (sign * r.val_metric, r.params, r.job))
    top = ranked[0]
    gap = -sign * (top.val_metric - ranked[1].val_metric) if len(ranked) > 1 else None
    if n_val is None:
        return Verdict(top, top, (), "unmeasured", None, gap)
    se = share_noise(top.val_metric, n_val)
    tied = tuple(r for r in ranked[1:] if abs(top.val_metric - r.val_metric)
                 <= NOISE_Z * math.hypot(se, share_noise(r.val_metric, n_val)))
    if chance is not None:
        margin = NOISE_Z * share_noise(chance, n_val) if chance_margin is None else float(chance_margin)
        if -sign * (top.val_metric - chance) <= margin:
            return Verdict(None, top, tied, "chance", se, gap)
    if tied:
        return Verdict(None, top, tied, "tied", se, gap)
    return Verdict(top, top, (), "clear", se, gap)


def recommend(rows: Sequence[StudyRow], budget: int | None, higher_is_better: bool = True, *,
              n_val: int | None = None, chance: float | None = None,
              chance_margin: float | None = None) -> StudyRow | None:
    """The recommended row of :func:`judge` (the best finite metric within ``budget``, ties to fewer parameters,
    told apart from the others and from chance when ``n_val`` is given), or None."""
    return judge(rows, budget, higher_is_better, n_val=n_val, chance=chance, chance_margin=chance_margin).best


def _format_config(task: Task, kind: str, controls: dict, r: int, blocks: int):
    dense = task.model_config("dense", **controls)
    ranks = format_ranks(kind, dense.in_modes, dense.out_modes, r)
    uniform = (lambda rs: r if all(x == r for x in rs) else tuple(rs))  # noqa: E731  (names read "R=4", not "R=(4, 4)")
    if kind == "tt":
        extra = {"tt_ranks": uniform(ranks)}
    elif kind == "bt":
        extra = {"rank": uniform(ranks), "blocks": blocks}
    else:  # a further format: one uniform rank for whichever rank control it reads
        extra = {"rank": r, "tt_ranks": r, "tr_ranks": r, "blocks": blocks}
    return task.model_config(kind, **{**controls, **extra})


def plan_study(task: Task, budgets: Sequence[int], formats: Sequence[str] | None = None, *,
               base: TrainConfig | None = None, controls: dict | None = None, bt_blocks: Sequence[int] | None = None,
               compress_from: bool = False) -> tuple[list[StudyJob], list[str]]:
    """The study's jobs, in order (dense first, then per budget each format), and notes on what did not fit.

    Parameters
    ----------
    task : Task
    budgets : sequence of int
        Most input-map parameters (bias excluded) of each format's model.
    formats : sequence of str, optional
        Factorized formats (default :func:`study_formats`).
    base : TrainConfig, optional
        Training options shared by every run (its model is replaced); default ``TrainConfig()`` of the task.
    controls : dict, optional
        Model controls for :meth:`Task.model_config` (hidden, d, cell, ...).
    bt_blocks : sequence of int, optional
        BT block counts N; several make the R x N grid (default: the controls' ``blocks``, else 2).
    compress_from : bool
        Also plan a "compressed" job per budget and compressible format.
    """
    controls = dict(controls or {})
    budgets = [int(b) for b in budgets]
    if not budgets or any(b < 1 for b in budgets):
        raise ValueError(f"budgets must be positive whole numbers of parameters, got {budgets}")
    formats = list(formats or study_formats())
    for f in formats:
        if f not in study_formats():
            raise ValueError(f"formats: {f!r} is not a factorized format; choose from {', '.join(study_formats())}")
    bt_blocks = [int(n) for n in (bt_blocks or [controls.get("blocks", 2)])]
    controls.pop("blocks", None)
    base = base or TrainConfig(task.model_config("dense", **controls), task=task.name)
    jobs: list[StudyJob] = []
    notes: list[str] = []

    def add(name, fmt, budget, phase, cfg=None, blocks=None):
        cfg = dataclasses.replace(base, model=cfg, name=name, task=task.name) if cfg is not None else None
        jobs.append(StudyJob(len(jobs), name, fmt, budget, phase, cfg, blocks))

    add("dense", "dense", None, "trained", task.model_config("dense", **controls))
    for b in sorted(set(budgets)):
        for f in formats:
            fits = []
            for n in (bt_blocks if f == "bt" else [bt_blocks[0]]):
                r = rank_for_budget(lambda k: _format_config(task, f, controls, k, n).input_map_params(), b)
                fits.append(r is not None)
                if r is None:
                    notes.append(f"{f.upper()}{f' N={n}' if f == 'bt' else ''}: no ranks fit {b:,} parameters")
                    continue
                cfg = _format_config(task, f, controls, r, n)
                add(f"{cfg.describe()} @{b:,}", f, b, "trained", cfg, n if f == "bt" else None)
            if compress_from and f in COMPRESS_FORMATS and fits[0]:  # compressed at the first N, as trained
                add(f"{f.upper()} compressed @{b:,}", f, b, "compressed", None, bt_blocks[0] if f == "bt" else None)
    return jobs, notes


def estimate_study(task: Task, jobs: Sequence[StudyJob], train_data, val_data) -> float:
    """Estimated seconds of the trained jobs: the sum of their timed probes (:func:`~btcore.train.probe_seconds`)."""
    return float(sum(probe_seconds(j.config, len(train_data), len(val_data), None, data=train_data,
                                   task=task)["estimated_s"] for j in jobs if j.config is not None))


def _ranks_of(model_cfg):
    spec = model_cfg.spec() if hasattr(model_cfg, "spec") else None
    ranks = getattr(spec, "ranks", None)
    return list(ranks) if ranks is not None and model_cfg.kind != "dense" else None


def _row(job: StudyJob, phase: str, model_cfg, status: str, metrics: dict, task: Task, total: int,
         speed, seconds: float, fit_error=None) -> StudyRow:
    return StudyRow(job.name if phase != "finetuned" else job.name.replace("compressed", "fine-tuned"), job.format,
                    phase, job.budget, _ranks_of(model_cfg), getattr(model_cfg, "blocks", None) if job.format == "bt"
                    else None, int(model_cfg.input_map_params()), int(total),
                    float(metrics.get(task.metric, float("nan"))), float(metrics.get("val_loss", float("nan"))),
                    speed, float(seconds), status, job.index, fit_error=fit_error)


def _dense_model(compress_from) -> nn.Module:
    """The dense model to compress: a module, a :class:`~btcore.train.TrainResult`'s, or a checkpoint's."""
    if isinstance(getattr(compress_from, "model", None), nn.Module):
        compress_from = compress_from.model  # a TrainResult
    if isinstance(compress_from, nn.Module):
        model, where = compress_from, "compress_from"
    else:
        model, where = load_checkpoint(compress_from)[0], f"compress_from {compress_from}"
    kind = getattr(getattr(model, "config", None), "kind", "dense")
    if kind != "dense":
        raise ValueError(f"{where}: holds a {kind.upper()} model; give a dense one")
    return model


def _compress_job(job, dense, task, base, train, val, finetune_epochs, should_stop, seed):
    """The "compressed" and (with fine-tuning epochs) "finetuned" rows of ``job``, and the fine-tuned model."""
    model, report = compress(dense, job.format, budget=job.budget, blocks=job.blocks, seed=seed)
    err = max(r.fit_error for r in report)
    metrics = task.evaluate(model, val, should_stop=should_stop) or {}
    cfg = model.config
    rows = [_row(job, "compressed", cfg, "done" if metrics else "stopped", metrics, task,
                 sum(p.numel() for p in model.parameters()), None, 0.0, err)]
    models = {rows[0].run: model}
    if finetune_epochs and metrics:
        tc = dataclasses.replace(base, model=cfg, epochs=int(finetune_epochs), stall_fraction=None,
                                 name=job.name.replace("compressed", "fine-tuned"))
        run = Run.open(tc, train, val, task=task, should_stop=should_stop, processes=Processes())
        run.model.load_state_dict(model.state_dict())
        run.announce()
        for _ in run.steps():
            pass
        res = run.finish()
        rows.append(_row(job, "finetuned", cfg, res.status, res.final, task, res.params,
                         res.final.get("examples_per_s"), res.final.get("run_s", 0.0), err))
        rows[0].examples_per_s = rows[1].examples_per_s  # the same architecture runs at the same speed
        models[rows[1].run] = res.model
    return rows, models, {r.run: cfg for r in rows}


def run_study(task: Task, jobs: Sequence[StudyJob], budgets: Sequence[int], *, train_data=None, val_data=None,
              compress_from=None, finetune_epochs: int = 0, callback: Callable[[dict], Any] | None = None,
              progress: Callable[[int, int], Any] | None = None, should_stop: Callable[[], bool] | None = None,
              share: tuple[int, int] = (0, 1), estimated_s: float | None = None) -> StudyResult:
    """Run the jobs (those with ``index % world == rank`` for ``share=(rank, world)``) and return the result.

    Trained jobs go through :func:`~btcore.train.compare` one after another on the same seeded
    batches; the trainer's events go to ``callback``; ``progress(done, total)`` after each job.
    ``should_stop`` ends the study: finished jobs are kept, the interrupted one is dropped and
    ``stopped`` is set. ``compress_from``: a dense model, a :class:`~btcore.train.TrainResult` or a checkpoint path
    (:func:`~btcore.train.save_checkpoint`), for the "compressed" jobs.
    """
    should_stop = should_stop or never_stop
    rank, world = share
    mine = [j for j in jobs if j.index % world == rank]
    base = next(j.config for j in jobs if j.config is not None)
    if train_data is None:
        train_data, val_data = task.data(base.seed)
    dense = _dense_model(compress_from) if any(j.phase == "compressed" for j in mine) else None
    rows: list[StudyRow] = []
    models, configs = {}, {}
    stopped = False
    for done, job in enumerate(mine):
        if should_stop():
            stopped = True
            break
        if job.phase == "trained":
            res = compare([job.config], train_data, val_data, callback=callback, should_stop=should_stop,
                          interleave=False, estimate=False, task=task)[0]
            if res.status == "stopped":
                stopped = True
                break
            rows.append(_row(job, "trained", job.config.model, res.status, res.final, task, res.params,
                             res.final.get("examples_per_s"), res.final.get("run_s", 0.0)))
            models[job.name], configs[job.name] = res.model, job.config.model
        else:
            got, m, c = _compress_job(job, dense, task, base, train_data, val_data, finetune_epochs, should_stop,
                                      base.seed)
            if any(r.status == "stopped" for r in got):
                stopped = True
                break
            rows += got
            models.update(m)
            configs.update(c)
        if progress is not None:
            progress(done + 1, len(mine))
    level = task.chance(train_data, val_data, base.model) if task.metric in SHARE_METRICS else None
    return StudyResult(task.name, task.metric, task.metric_label, task.higher_is_better, sorted(set(budgets)), rows,
                       stopped, estimated_s, models, configs, len(val_data), getattr(level, "value", None),
                       getattr(level, "margin", None))


def merge_study(parts: Sequence[StudyResult]) -> StudyResult:
    """One result from the shares of several processes, rows in job order (flags recomputed over all rows)."""
    first = parts[0]
    rows = sorted((r for p in parts for r in p.rows), key=lambda r: (r.job, PHASES.index(r.phase)))
    models = {k: v for p in parts for k, v in p.models.items()}
    configs = {k: v for p in parts for k, v in p.configs.items()}
    return StudyResult(first.task, first.metric, first.metric_label, first.higher_is_better, first.budgets,
                       [dataclasses.replace(r, pareto=False, recommended=False) for r in rows],
                       any(p.stopped for p in parts), first.estimated_s, models, configs, first.val_size, first.chance,
                       first.chance_margin)
