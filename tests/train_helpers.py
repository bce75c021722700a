"""Shared data and configurations of the btcore.train tests (a helper module, not a test module)."""

from __future__ import annotations

import pytest
import torch

from btcore.data import SyntheticActions
from btcore.tasks.action import model_config
from btcore.contract import set_rates
from btcore.train import TrainConfig, pin_contraction_rates

FRAME = (3, 16, 16)
# A task small enough for a few seconds per model: 4 translation classes (chance 25%).
TASK = SyntheticActions(frame_shape=FRAME, frames=6, classes=4, train_size=512, val_size=128, noise=0.05, clutter=2)
CLI_SMALL = ["--frame", "3x16x16", "--frames", "4", "--classes", "4", "--train-size", "64", "--val-size", "32",
             "--hidden", "16", "--batch", "16", "--epochs", "2", "--threads", "1",
             "--stall-fraction", "0"]  # runs this short may not leave chance: they test the CLI, not learning


@pytest.fixture(scope="module")
def data():
    """The task's splits; the contraction planner's rates pinned meanwhile (its schemes then follow the shapes
    only, so bitwise comparisons hold on a loaded machine), forgotten afterwards."""
    torch.set_num_threads(1)
    pin_contraction_rates()
    train_set, val_set = TASK.splits()
    train_set.get([0]), val_set.get([0])  # fill the caches once
    yield train_set, val_set
    set_rates("cpu", torch.float32, None)


def small_config(kind, **kw):
    model = model_config(kind, frame_shape=FRAME, classes=4, hidden=16, d=4)
    opts = dict(epochs=6, lr=1e-2 if kind != "dense" else 3e-3, batch_size=32, seed=0)
    opts.update(kw)
    return TrainConfig(model, **opts)
