"""The few lines of ``btcore`` that reproduce what a page shows, for the user to copy.

Each function returns runnable Python source for the page's current inputs; the tests execute
every snippet, so what the app offers to copy always runs.
"""

from __future__ import annotations

__all__ = ["shapes_snippet", "learn_snippet"]


def _modes(modes) -> str:
    return "(" + ", ".join(map(str, modes)) + ("," if len(modes) == 1 else "") + ")"


def _rank(rank) -> str:
    return str(rank) if isinstance(rank, int) else _modes(rank)


def shapes_snippet(cfg) -> str:
    """Parameter counts, compression and multiply-adds of the configuration ``cfg`` (a LabConfig)."""
    i, o = _modes(cfg.in_modes), _modes(cfg.out_modes)
    return (
        "import btcore\n\n"
        f"bt = btcore.BTSpec({i}, {o}, rank={_rank(cfg.bt_rank)}, blocks={cfg.blocks})\n"
        f"tt = btcore.TTSpec({i}, {o}, ranks={_rank(cfg.tt_ranks)})\n"
        f"dense = btcore.DenseSpec({i}, {o})\n"
        "for spec in (dense, tt, bt):\n"
        f"    print(spec, spec.params, f\"{{spec.compression:,.1f}}x\", spec.macs(batch={cfg.batch}))\n"
    )


def learn_snippet(cfg) -> str:
    """A BT layer for ``cfg`` and ``y = x W`` along the planned contraction, step by step."""
    i, o = _modes(cfg.in_modes), _modes(cfg.out_modes)
    return (
        "import torch\nimport btcore\n\n"
        f"layer = btcore.BTLinear({i}, {o}, rank={_rank(cfg.bt_rank)}, blocks={cfg.blocks})\n"
        f"x = torch.randn({cfg.batch}, {cfg.in_size})\n"
        "y = layer(x)  # never forms the dense W\n"
        f"for step in btcore.plan_matmul(layer.spec, {cfg.batch}).steps:\n"
        "    print(step.left, \"x\", step.right, \"->\", step.result_shape, f\"{step.macs:,} multiply-adds\")\n"
    )
