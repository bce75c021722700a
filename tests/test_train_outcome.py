"""btcore.train.outcome: runs end "diverged" or "stalled" with the likely cause, never "done" with a blown-up loss."""

from __future__ import annotations

import json
import math

import pytest
import torch

from btcore.data import ClipSet
from btcore.tasks.action import chance_level, stall_margin
from btcore.train import TrainConfig, train
from btcore.train.outcome import Watch
from train_helpers import FRAME, data, small_config  # noqa: F401 (data is a fixture)


def test_huge_sgd_learning_rate_diverges_naming_the_learning_rate(data):
    res = train(small_config("bt", optimizer="sgd", lr=1000, grad_clip=None, epochs=2), *data)
    assert res.status == "diverged"
    assert "learning rate is likely too high" in res.reason and "1e+03" in res.reason
    assert "enable gradient clipping" in res.reason


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_learning_rate_one_without_clipping_never_ends_done(data, optimizer):
    # 4 epochs: a stall is judged at half of them (2 evaluations); a run that ran all its steps is never "stalled"
    res = train(small_config("bt", optimizer=optimizer, lr=1.0, grad_clip=None, epochs=4), *data)
    assert res.status in ("diverged", "stalled")
    assert "learning rate" in res.reason and "too high" in res.reason


def test_nan_data_is_blamed_on_the_data():
    x = torch.randn(64, 4, 768)
    bad = ClipSet(x, torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    x[3, 1, 2] = float("nan")  # after ClipSet's own check (which refuses NaN): data spoiled later
    res = train(small_config("tt", batch_size=64, epochs=2), bad, bad)
    assert res.status == "diverged" and "the data" in res.reason and "1 non-finite input" in res.reason
    assert "learning rate" not in res.reason.split(";")[0]


def test_weight_decay_inf_is_refused_and_a_huge_one_is_named(data):
    with pytest.raises(ValueError, match="weight_decay must be a finite number"):
        small_config("bt", weight_decay=float("inf"))
    res = train(small_config("bt", optimizer="sgd", lr=0.1, weight_decay=1e3, epochs=2), *data)
    assert res.status == "diverged" and "weight decay is too strong" in res.reason


def test_tiny_learning_rate_stalls_at_chance(data):
    res = train(small_config("bt", lr=1e-6, epochs=4), *data)
    assert res.status == "stalled" and "too low: raise it" in res.reason
    assert res.final["steps"] == 32  # half of the 64 steps, then it stops
    assert math.isfinite(res.final["val_acc"])


def test_a_learning_run_is_done(data):
    res = train(small_config("bt"), *data)
    assert res.status == "done" and res.final["val_acc"] > 0.5


def test_gradient_explosion_and_checks():
    w = Watch(lr=0.1, weight_decay=0.0, clipped=True, grad_factor=100.0)
    assert w.gradient(1.0, 1) is None and w.gradient(50.0, 2) is None
    assert "gradient norm exploded" in w.gradient(500.0, 3)
    assert "non-finite" in w.gradient(float("nan"), 4)
    w = Watch(lr=0.1, weight_decay=0.0, clipped=False, diverge_factor=10.0)
    assert w.loss(2.0, 1) is None and w.loss(19.0, 2) is None and "rose to 21" in w.loss(21.0, 3)
    assert w.validation(float("inf"), 0.5, 4, 10)[0] == "diverged"
    assert "weights became non-finite" in w.parameters(False, 5)
    assert chance_level(8) == 0.125 and stall_margin(0.125, 10_000) == 0.02


def test_checks_can_be_turned_off(data):
    res = train(small_config("bt", lr=1e-6, epochs=2, stall_fraction=None), *data)
    assert res.status == "done"
    with pytest.raises(ValueError, match="diverge_factor must be a number above 1"):
        TrainConfig(small_config("bt").model, diverge_factor=0.5)
    with pytest.raises(ValueError, match="stall_fraction must be between 0 and 1"):
        TrainConfig(small_config("bt").model, stall_fraction=2)


def _replayed_loss(cfg, data, step):
    """The training loss of ``step``, recomputed by a run without the divergence checks that stops there."""
    import dataclasses
    replay = dataclasses.replace(cfg, diverge_factor=None, grad_factor=None, max_steps=step)
    steps = [e for e in train(replay, *data).history if e["event"] == "step"]
    assert steps[-1]["step"] == step
    return steps[-1]["train_loss"]


def test_the_end_says_where_a_run_diverged_in_numbers(data):
    cfg = small_config("bt", lr=1000.0, grad_clip=None, epochs=2)
    events = []
    res = train(cfg, *data, callback=events.append)
    end = events[-1]
    assert res.status == "diverged" and end["event"] == "end" and end["stop_check"] == "loss"
    steps = [e["step"] for e in events if e["event"] == "step"]
    # the diverging step is the one after the last reported step, and its loss is the one that step computes
    assert end["stop_step"] == res.stop_step == steps[-1] + 1
    assert end["stop_loss"] == res.stop_loss
    assert res.stop_loss == pytest.approx(_replayed_loss(cfg, data, res.stop_step), rel=1e-5)
    assert res.stop_loss > cfg.diverge_factor * events[1]["train_loss"]
    assert f"step {res.stop_step}:" in res.reason and f"{res.stop_loss:.3g}" in res.reason
    assert res.to_dict()["stop_step"] == res.stop_step


def test_runs_that_end_otherwise_say_how(data):
    done = train(small_config("bt", max_steps=3, stall_fraction=None), *data)
    assert done.status == "done"
    assert (done.stop_step, done.stop_loss, done.stop_check) == (None, None, None)
    stalled = train(small_config("bt", lr=1e-6, epochs=4), *data)
    assert stalled.status == "stalled" and stalled.stop_check == "stall"
    assert stalled.stop_step == stalled.final["steps"] == 32 and stalled.stop_loss is None
    x = torch.randn(64, 4, 768)
    bad = ClipSet(x, torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    x[3, 1, 2] = float("nan")
    spoiled = train(small_config("tt", batch_size=64, epochs=2), bad, bad)
    assert (spoiled.stop_step, spoiled.stop_loss, spoiled.stop_check) == (1, None, "inputs")


def test_the_cli_end_line_carries_the_stopping_point(capsys):
    from btcore.train import main
    from train_helpers import CLI_SMALL

    assert main(["--model", "bt", *CLI_SMALL, "--lr", "1000", "--clip", "0", "--steps"]) == 1  # 1: a run diverged
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    end = next(ln for ln in lines if ln.get("event") == "end")
    steps = [ln["step"] for ln in lines if ln.get("event") == "step"]
    assert end["status"] == "diverged" and end["stop_check"] in ("loss", "gradient")
    assert end["stop_step"] == (steps[-1] + 1 if steps else 1) and isinstance(end["stop_loss"], float)
    assert f"step {end['stop_step']}:" in end["reason"]
    assert lines[-1]["summary"][0]["stop_step"] == end["stop_step"]


# -- verdicts from constructed histories: what the evaluations show, never more ----------------------------------
def _watch(chance: float, n_val: int, **kw) -> Watch:
    """A Watch of an accuracy task with ``n_val`` validation examples at chance level ``chance``."""
    from btcore.tasks import Chance
    level = Chance(chance, stall_margin(chance, n_val), math.sqrt(chance * (1 - chance) / n_val))
    return Watch(lr=1e-2, weight_decay=0.0, clipped=True, chance=level, val_size=n_val,
                 data_check="check that each class folder holds clips of its class", **kw)


def _evaluate(w: Watch, accuracies, total: int):
    """Feed one evaluation per accuracy, evenly spread to step ``total``; the verdicts returned."""
    steps = [round(total * (i + 1) / len(accuracies)) for i in range(len(accuracies))]
    return [w.validation(1.0, a, s, total) for a, s in zip(accuracies, steps)]


def test_a_run_that_ran_all_its_steps_is_never_stalled():
    # 2 steps, one evaluation on 32 clips: 28.1 % against chance 16.7 % (6 classes); the margin is 13.2 points
    w = _watch(1 / 6, 32)
    assert _evaluate(w, [9 / 32], total=2) == [None]  # its last evaluation: no stall
    verdict, note = w.ending()
    assert verdict == "too short" and "too few evaluations to judge" in note and "train for more epochs" in note
    assert "learns nothing" not in note and "28.1%" in note and "16.7%" in note and "32 validation" in note


def test_a_validation_set_whose_noise_hides_twice_chance_is_too_small_to_judge():
    w = _watch(0.25, 8)  # one standard error 15.3 points: 2 x 15.3 >= 25
    assert _evaluate(w, [0.25, 0.25, 0.25, 0.25], total=8) == [None] * 4  # never a stall, whatever the steps
    verdict, note = w.ending()
    assert verdict == "too short" and "validation set is too small" in note and "learns nothing" not in note
    assert "more validation examples" in note


def test_above_chance_by_more_than_the_noise_is_too_short_not_a_stall():
    # 25 % on 32 clips against 16.7 %: 8.3 points up, more than one standard error (6.6), less than the margin (13.2)
    w = _watch(1 / 6, 32)
    assert _evaluate(w, [0.2, 0.25, 0.22, 0.25], total=8) == [None] * 4
    verdict, note = w.ending()
    assert verdict == "too short" and "one standard error (6.6%)" in note and "learns nothing" not in note


def test_at_chance_with_enough_evidence_stalls_before_the_end_and_is_named_after_it():
    # 1,000 clips (one standard error 1.4 points): 25.5 % against 25 % twice, at half of the steps: a stall
    w = _watch(0.25, 1000)
    # at steps 4 and 8: the first is a single evaluation, the second the last step: no stall either time
    assert _evaluate(w, [0.25, 0.255], total=8) == [None, None]
    w = _watch(0.25, 1000)
    assert w.validation(1.0, 0.25, 3, 8) is None  # before the fraction
    status, reason = w.validation(1.0, 0.255, 4, 8)
    assert status == "stalled" and "stopped at step 4 of 8" in reason and "stayed at chance" in reason
    assert "learns nothing" in reason and "check that each class folder" in reason
    assert w.judge()[0] == "at chance"
    # the same evidence at the end of a finished run: "at chance" with the cause, status left to the run ("done")
    w = _watch(0.25, 1000)
    _evaluate(w, [0.25, 0.255], total=2)
    verdict, note = w.ending()
    assert verdict == "at chance" and "stayed at chance" in note and "try another learning rate" in note


def test_learning_and_unknown_levels_say_nothing_more():
    w = _watch(1 / 6, 32)
    _evaluate(w, [0.5], total=2)  # one evaluation, but far beyond the margin: learnt
    assert w.judge() == ("learnt", "") and w.ending() == ("learnt", "")
    w = Watch(lr=1e-2, weight_decay=0.0, clipped=True)  # no chance level (the task has none)
    assert w.validation(1.0, 0.1, 5, 5) is None and w.ending() == (None, "")
    w = _watch(0.25, 1000, stall_fraction=None)  # checks off
    _evaluate(w, [0.25, 0.25], total=4)
    assert w.ending() == (None, "")


def test_without_a_standard_error_half_the_margin_is_the_noise():
    from btcore.tasks import Chance
    w = Watch(lr=1e-2, weight_decay=0.0, clipped=True, chance=Chance(10.0, 1.0), metric_label="BLEU-4",
              format_metric="{:.1f}".format)
    _evaluate(w, [10.4, 10.3], total=2)
    assert w.ending()[0] == "at chance"
    w = Watch(lr=1e-2, weight_decay=0.0, clipped=True, chance=Chance(10.0, 1.0), format_metric="{:.1f}".format)
    _evaluate(w, [10.7, 10.6], total=2)
    assert w.ending()[0] == "too short" and "more than the noise" in w.ending()[1]


def test_the_action_tasks_level_carries_the_binomial_standard_error(data):
    from btcore.tasks import make_task
    train_set, val_set = data
    level = make_task("action").chance(train_set, val_set, small_config("bt").model)
    assert level.error == pytest.approx(math.sqrt(0.25 * 0.75 / len(val_set)))
    assert level.margin == pytest.approx(2 * level.error)  # two standard errors (above the 2-point floor here)


def test_a_one_epoch_run_is_done_and_too_short_to_judge(data):
    res = train(small_config("bt", lr=1e-6, epochs=1), *data)
    assert res.status == "done" and res.verdict == "too short"
    assert res.reason.startswith("finished 16 steps; too few evaluations to judge")
    end = res.to_dict()
    assert end["verdict"] == "too short"
    assert train(small_config("bt"), *data).verdict == "learnt"


def test_the_learning_rate_hint_follows_the_optimizer():
    from btcore.tasks import Chance

    def note(lr: float, optimizer: str) -> str:
        w = Watch(lr=lr, weight_decay=0.0, clipped=True, chance=Chance(0.25, stall_margin(0.25, 1000),
                                                                       math.sqrt(0.25 * 0.75 / 1000)),
                  val_size=1000, optimizer=optimizer)
        _evaluate(w, [0.25, 0.255], total=2)
        verdict, text = w.ending()
        assert verdict == "at chance"
        return text

    assert "too high" in note(0.5, "adam") and "Adam: about 1e-3 to 1e-2" in note(0.5, "adam")
    assert "RMSprop: about" in note(0.5, "rmsprop") and "Adam:" not in note(0.5, "rmsprop")
    # plain SGD: 0.5 is not blamed (its usual rates reach higher), and no Adam range is quoted
    assert "too high" not in note(0.5, "sgd") and "Adam" not in note(0.5, "sgd")
    assert "too high" in note(1.0, "sgd") and "about" not in note(1.0, "sgd")
    assert "too low" in note(1e-5, "sgd") and "too low" in note(1e-5, "adam")
