"""The memory estimates of a training step (btcore.tasks.base.step_memory through each task's step_bytes, and
btcore.train.estimate_memory) against the bytes a real step holds, counted from the sizes of its tensors."""

from __future__ import annotations

import pytest
import torch

from btcore.tasks import make_task
from btcore.train import estimate_memory


def held_bytes(task, cfg, batch: int, frames: int | None = None) -> int:
    """Bytes one Adam step holds: weights, gradients, the optimiser's state, the batch and every tensor autograd
    kept for the backward pass (each storage once, the weights' own not again), from the tensors' sizes."""
    model = task.build_model(cfg, init=torch.Generator().manual_seed(0))
    task.seed_dropout(model, torch.Generator().manual_seed(1))
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in weights:
            kept[st.data_ptr()] = st.nbytes()
        return t

    opt = torch.optim.Adam(model.parameters())
    data = task.example_batch(cfg, batch, frames)
    for t in data:
        pack(t)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = task.loss(model, data)
    loss.backward()
    opt.step()
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    state = sum(size(v) for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0)
    return sum(2 * size(p) for p in model.parameters()) + state + sum(kept.values())


@pytest.mark.parametrize("name", ["generation", "captioning"])
@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_the_estimate_of_a_step_brackets_what_it_holds(name, kind):
    torch.manual_seed(0)
    task = make_task(name)
    cfg = task.model_config(kind)
    for batch in (8, 64, 256):
        est = task.step_bytes(cfg, batch, "adam")
        held = held_bytes(task, cfg, batch)
        assert est["low"] <= held <= est["training"], (batch, est, held)
        assert est["training"] <= 4 * est["low"]  # a range, not a shrug: at most a factor 4 wide
        assert est["params"] == 4 * sum(p.numel() for p in task.build_model(
            cfg, init=torch.Generator().manual_seed(0)).parameters())


@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_the_classifiers_estimate_brackets_what_its_step_holds(kind):
    for shape, hidden in (((3, 16, 16), 16), ((3, 32, 32), 64), ((3, 64, 64), 256)):
        task = make_task("action", frame_shape=shape, frames=8)
        cfg = task.model_config(kind, hidden=hidden, classes=8)
        for batch in (8, 64):
            est = estimate_memory(cfg, batch, 8)
            held = held_bytes(task, cfg, batch, 8)
            assert est["low"] <= held <= est["training"], (shape, batch, est, held)
