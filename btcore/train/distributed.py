"""The processes of a run: rank, world size and sums over processes under torch.distributed (one process without)."""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .config import pick_device

__all__ = ["Processes", "run_device"]


class Processes:
    """Rank and world size of the current process group, read once (rank 0 of 1 when not initialised)."""

    def __init__(self):
        self.on = tdist.is_available() and tdist.is_initialized()
        self.rank = tdist.get_rank() if self.on else 0
        self.world = tdist.get_world_size() if self.on else 1

    def sum(self, values: Sequence[float], device) -> list[float]:
        """``values`` summed over the processes (float64; the values themselves in one process)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        if self.on:
            tdist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool, device) -> bool:
        """Whether ``flag`` is true on any process."""
        return self.sum([1.0 if flag else 0.0], device)[0] > 0

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel when there are processes, else ``model`` itself."""
        if not self.on:
            return model
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def run_device(device: str | torch.device, processes: Processes) -> torch.device:
    """The device of a run: ``device`` checked, and under torchrun on CUDA this process's GPU (``LOCAL_RANK``)."""
    dev = pick_device(device)
    if dev.type == "cuda" and processes.on and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev
