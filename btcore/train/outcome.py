"""How a run ends, honestly: "diverged" and "stalled" with the likely cause, from what the run observed.

A :class:`Watch` follows one run. The loop asks it about every batch (non-finite inputs), every loss
(non-finite, or more than ``TrainConfig.diverge_factor`` times the first step's), every gradient norm
(non-finite, or more than ``TrainConfig.grad_factor`` times the first step's), the parameters after
a step (non-finite: the step itself blew up) and every evaluation (the task's validation metric
still at chance, see :class:`~btcore.tasks.Chance`, over two evaluations or more, once
``TrainConfig.stall_fraction`` of the steps are done and before the last: :meth:`Watch.judge`). A run
that ran all its steps is never "stalled": :meth:`Watch.ending` says what its evaluations showed,
"too short" to judge (one evaluation, a validation set whose noise hides the gap to chance) or
"at chance". Each check returns None or the
reason, a sentence that names the likely cause (the learning rate, the data, the weight decay) and
the fix, so the page and the CLI can say it as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..tasks import Chance, DeferredChance

__all__ = ["Watch", "VERDICTS"]

#: What a run's evaluations show about learning (:meth:`Watch.judge`).
VERDICTS = ("learnt", "too short", "at chance")


def _g(v: float) -> str:
    return f"{v:.3g}"


@dataclass
class Watch:
    """The divergence and stall checks of one run (see the module docstring)."""

    lr: float
    weight_decay: float
    clipped: bool
    diverge_factor: float | None = 10.0
    grad_factor: float | None = 1e4
    stall_fraction: float | None = 0.5
    chance: Chance | DeferredChance | None = None
    higher_is_better: bool = True
    metric_label: str = "validation accuracy"
    format_metric: Callable[[float], str] = "{:.1%}".format
    data_check: str = "check that the labels match the clips"
    first_loss: float | None = None
    first_grad: float | None = None
    val_size: int | None = None
    best: float | None = None
    evals: int = 0
    optimizer: str = "adam"

    #: Per optimiser: the learning rates at or above which, and below which, a stall is blamed on the
    #: rate, and the range to quote (None: none is quoted). Adaptive optimisers scale each step by the
    #: gradient's running size, so their usual rates are the same few decades; plain SGD's depend on
    #: the loss's scale, so it gets a higher bound (plain SGD at 1.0 stalls at chance on the action task:
    #: tests/test_train_outcome.py) and no range.
    LR_HINTS = {"adam": (0.1, 1e-4, "Adam: about 1e-3 to 1e-2"), "adamw": (0.1, 1e-4, "AdamW: about 1e-3 to 1e-2"),
                "rmsprop": (0.1, 1e-4, "RMSprop: about 1e-3 to 1e-2"), "sgd": (1.0, 1e-4, None)}

    # -- causes ------------------------------------------------------------------------------------
    def _too_fast(self) -> str:
        """The step-size cause: weight decay when lr * weight_decay is large, else the learning rate."""
        if self.weight_decay > 0 and self.lr * self.weight_decay >= 0.5:
            return (f"the weight decay is too strong for this learning rate (weight_decay {_g(self.weight_decay)} x "
                    f"lr {_g(self.lr)} = {_g(self.lr * self.weight_decay)}; a step scales the weights by 1 minus "
                    "that, so above 2 they flip sign and grow): lower the weight decay")
        fix = f"lower the learning rate (now {_g(self.lr)})"
        return f"the learning rate is likely too high: {fix}" + ("" if self.clipped else " or enable gradient clipping")

    # -- checks --------------------------------------------------------------------------------------
    def batch(self, x: torch.Tensor, step: int) -> str | None:
        """A reason when the batch of ``step`` has NaN or infinite inputs (a data problem, not an optimiser one)."""
        if bool(torch.isfinite(x).all()):
            return None
        bad = int((~torch.isfinite(x)).sum())
        return (f"stopped at step {step}: the training data has {bad:,} non-finite input value(s) (NaN or inf) in "
                "this batch; the cause is the data, not the learning rate: check or clean the clips (e.g. with "
                "torch.nan_to_num) before training")

    def loss(self, value: float, step: int) -> str | None:
        """A reason when the training loss is non-finite or has grown ``diverge_factor`` times its first value."""
        if not math.isfinite(value):
            return f"stopped at step {step}: the training loss became non-finite ({value}); {self._too_fast()}"
        if self.first_loss is None:
            self.first_loss = value
            return None
        f = self.diverge_factor
        if f and value > f * max(self.first_loss, 1e-12):
            return (f"stopped at step {step}: the training loss rose to {_g(value)}, more than {f:g} x its starting "
                    f"value {_g(self.first_loss)}; {self._too_fast()}")
        return None

    def gradient(self, norm: float, step: int) -> str | None:
        """A reason when the gradient norm (before clipping) is non-finite or ``grad_factor`` times its first value."""
        if not math.isfinite(norm):
            return f"stopped at step {step}: the gradient became non-finite; {self._too_fast()}"
        if self.first_grad is None:
            self.first_grad = norm
            return None
        f = self.grad_factor
        if f and norm > f * max(self.first_grad, 1e-12):
            return (f"stopped at step {step}: the gradient norm exploded to {_g(norm)}, more than {f:g} x its "
                    f"starting value {_g(self.first_grad)}; {self._too_fast()}")
        return None

    def parameters(self, finite: bool, step: int) -> str | None:
        """A reason when a step with a finite loss and gradient left non-finite weights."""
        if finite:
            return None
        return f"stopped at step {step}: the weights became non-finite in the optimiser step; {self._too_fast()}"

    def validation(self, val_loss: float, metric: float, step: int, total: int) -> tuple[str, str] | None:
        """``(status, reason)`` when the evaluation shows divergence, or a stall (:meth:`judge` "at chance")
        past ``stall_fraction`` of the steps and before the last one.

        The last evaluation ends the run anyway: it is never a stall (a run that ran all its steps is
        not "stalled"); :meth:`ending` then says what its evaluations showed.
        """
        if not math.isfinite(val_loss):
            return "diverged", (f"stopped at step {step}: the validation loss is non-finite while training was "
                                "finite; the validation data may hold NaN or inf values: check them")
        f = self.diverge_factor
        if f and self.first_loss is not None and val_loss > f * max(self.first_loss, 1e-12):
            return "diverged", (f"stopped at step {step}: the validation loss rose to {_g(val_loss)}, more than "
                                f"{f:g} x the starting loss {_g(self.first_loss)}; {self._too_fast()}")
        if math.isfinite(metric):
            better = max if self.higher_is_better else min
            self.best = metric if self.best is None else better(self.best, metric)
        self.evals += 1
        sf = self.stall_fraction
        if not sf or self.chance is None or step < sf * total or step >= total:
            return None
        verdict = self.judge()
        if verdict is None or verdict[0] != "at chance":
            return None
        return "stalled", (f"stopped at step {step} of {total}, past {sf:.0%} of the steps: {verdict[1]}; "
                           + self._stall_cause())

    def judge(self) -> tuple[str, str] | None:
        """``(verdict, why)``: what the evaluations so far show about learning (one of :data:`VERDICTS`).

        "learnt": the best metric is beyond chance by the task's margin. "at chance": two evaluations
        or more, the best within one standard error of chance (the task's :attr:`Chance.error`, else
        half its margin), and a validation set large enough that a model twice as good as chance
        would not look like chance. Anything else is "too short" (to judge): a single evaluation, a
        validation set too small, or a best above chance by more than the noise but less than the
        margin. None when there is no chance level or the checks are off (``stall_fraction``).
        """
        c = self.chance
        if not self.stall_fraction or c is None:
            return None
        hib = self.higher_is_better
        best = self.best if self.best is not None else float("nan")
        if c.learnt(best, hib):
            return "learnt", ""
        value, margin, error = c.value, c.margin, c.error
        if not math.isfinite(value):  # a deferred level that turned out to have none
            return None
        fm, n, label = self.format_metric, self.evals, self.metric_label
        seen = (f"best {fm(best)} after {n} evaluation{'' if n == 1 else 's'}, chance {fm(value)}; learning needs "
                f"{'above' if hib else 'below'} {fm(value + margin if hib else value - margin)}"
                + (f" on {self.val_size:,} validation examples" if self.val_size else ""))
        if n < 2:
            return "too short", (f"too few evaluations to judge whether the model learns ({label} {seen}); "
                                 "train for more epochs")
        if error is not None and hib and 2 * error >= value:
            return "too short", (f"the validation set is too small to judge whether the model learns ({label} {seen}; "
                                 f"its standard error at chance, {fm(error)}, hides even twice chance): use more "
                                 "validation examples")
        noise = error if error is not None else margin / 2
        gap = best - value if hib else value - best
        if not gap <= noise:  # also a best that is not a number
            return "too short", (f"{label} is above chance by more than "
                                 + (f"one standard error ({fm(error)})" if error is not None else "the noise")
                                 + f" but less than learning needs ({seen}): too short to judge; train for more "
                                 "epochs or use more validation examples")
        return "at chance", f"{label} stayed at chance ({seen})"

    def ending(self) -> tuple[str | None, str]:
        """``(verdict, note)`` of a run that ran all its steps: :meth:`judge`'s verdict (None: none) and, unless
        it learnt, what its evaluations showed ("at chance": with the likely cause and the fix)."""
        j = self.judge()
        if j is None or j[0] == "learnt":
            return (None if j is None else j[0]), ""
        verdict, why = j
        return verdict, why + ("; " + self._stall_cause() if verdict == "at chance" else "")

    def _stall_cause(self) -> str:
        high, low, usual = self.LR_HINTS.get(self.optimizer, (float("inf"), 0.0, None))
        if self.lr >= high:
            return (f"the learning rate (now {_g(self.lr)}) is likely too high: the steps jump past what the model "
                    "could learn; lower it" + (f" ({usual})" if usual else ""))
        if self.lr < low:
            return f"the learning rate (now {_g(self.lr)}) is likely too low: raise it"
        data = f"{self.data_check}, or " if self.data_check else ""
        if self.weight_decay > 0 and self.lr * self.weight_decay > 1e-3:
            return (f"the weight decay ({_g(self.weight_decay)}) may hold the weights near zero: lower it"
                    + (f", or {self.data_check}" if self.data_check else ""))
        return f"the model learns nothing from this data at learning rate {_g(self.lr)}: {data}try another learning rate"
