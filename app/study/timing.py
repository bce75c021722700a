"""The Format study's time estimate before launch, of every phase, with a range (no ``st.*`` here).

The data are built and timed (the study builds them once more when it starts); each trained run is a timed probe
of a few steps on the real data (:func:`btcore.train.estimate.probe_seconds`: building, training,
evaluation); a compressed run's fit is timed once per format on the seeded, untrained dense model at
the largest budget (the costliest fit, so it counts as the high end for every budget) and its
fine-tuning is the trained run of the same format and budget scaled to the fine-tuning epochs.
Everything is summed by :func:`btcore.train.estimate.total_estimate`.
"""

from __future__ import annotations

import time

from btcore.compress import compress
from btcore.train.estimate import probe_seconds, total_estimate
from btcore.train.run import seeded_model

from .plan import StudyPlan

__all__ = ["study_estimate", "seconds_text"]


def _fit_seconds(plan: StudyPlan, jobs) -> dict[str, float]:
    """Seconds of one compression fit per format, at the largest budget (timed on the untrained dense model)."""
    dense = seeded_model(plan.jobs[0].config, "cpu", plan.task)
    out = {}
    for job in sorted(jobs, key=lambda j: -j.budget):
        if job.format not in out:
            t0 = time.perf_counter()
            compress(dense, job.format, budget=job.budget, blocks=job.blocks, seed=plan.base.seed)
            out[job.format] = time.perf_counter() - t0
    return out


def study_estimate(plan: StudyPlan) -> dict:
    """Estimated seconds of ``plan``'s study: :func:`~btcore.train.estimate.total_estimate`'s phases and range,
    plus ``"fit_s"`` (the compression fits) and ``"finetune_s"`` (their fine-tuning, inside ``"train_s"``)."""
    t0 = time.perf_counter()
    train_set, val_set = plan.task.data(plan.base.seed)
    data_s = time.perf_counter() - t0
    probes = {j.index: probe_seconds(j.config, len(train_set), len(val_set), None, data=train_set, task=plan.task)
              for j in plan.jobs if j.config is not None}
    comp = [j for j in plan.jobs if j.phase == "compressed"]
    scaled = []
    for job in comp:
        twin = next((j for j in plan.jobs if j.config is not None and (j.format, j.budget) == (job.format, job.budget)
                     and (j.blocks == job.blocks or job.format != "bt")), None)
        if twin is None:
            continue
        p = dict(probes[twin.index])  # the fine-tuning trains the same architecture for fewer (or more) epochs
        share = plan.finetune_epochs / max(plan.base.epochs, 1)
        p["steps"] = round(p["steps"] * share)
        p["estimated_s"] = p["steps"] * p["step_s"] + (p["estimated_s"] - probes[twin.index]["steps"] * p["step_s"])
        scaled.append(p)  # the evaluation after compressing and after fine-tuning: counted once, as a run's
    est = total_estimate(list(probes.values()) + scaled, data_s)
    fits = _fit_seconds(plan, comp) if comp else {}
    fit_high = sum(fits[j.format] for j in comp)
    est["fit_s"] = fit_high
    est["finetune_s"] = sum(p["steps"] * p["step_s"] for p in scaled)
    est["estimated_s"] += fit_high
    est["high_s"] += fit_high
    est["low_s"] += sum(fits.values())  # at least each format's largest fit; smaller budgets fit faster
    return est


def seconds_text(lo: float, hi: float) -> str:
    """A range of seconds as the page writes it: "under 1 s", "about 3 s", "3-5 s", "2-3 minutes"."""
    if hi < 1:
        return "under 1 s"
    if hi >= 120:
        a, b = max(1, round(lo / 60)), max(1, round(hi / 60))
        return f"about {b:,} minutes" if a == b else f"{a:,}-{b:,} minutes"
    a, b = max(1, round(lo)), max(1, round(hi))
    return f"about {b:,} s" if a == b else f"{a:,}-{b:,} s"
