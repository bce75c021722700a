"""The few lines of ``btcore`` that reproduce what a page shows, for the user to copy.

Each function returns runnable Python source for the page's current inputs; the tests execute
every snippet, so what the app offers to copy always runs.
"""

from __future__ import annotations

__all__ = ["shapes_snippet", "learn_snippet", "approximation_snippet", "training_command"]


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
        f"tr = btcore.TRSpec({i}, {o}, ranks={_rank(cfg.tr_ranks)})  # tensor ring: the last bond closes it\n"
        f"dense = btcore.DenseSpec({i}, {o})\n"
        "for spec in (dense, tt, bt, tr):\n"
        "    # multiply-adds: the FLOP-optimal path; planner: the scheme btcore.matmul runs, and its modelled time\n"
        f"    choice = btcore.planner_choice(spec, {cfg.batch})\n"
        f"    print(spec, spec.params, f\"{{spec.compression:,.1f}}x\", spec.macs(batch={cfg.batch}),\n"
        "          choice.scheme, f\"{choice.modelled_s * 1e3:.3f} ms\")\n"
    )


def learn_snippet(cfg) -> str:
    """A BT and a TR layer for ``cfg`` and ``y = x W`` along each one's FLOP-optimal path, step by step."""
    i, o = _modes(cfg.in_modes), _modes(cfg.out_modes)
    return (
        "import torch\nimport btcore\n\n"
        f"bt = btcore.BTLinear({i}, {o}, rank={_rank(cfg.bt_rank)}, blocks={cfg.blocks})\n"
        f"tr = btcore.TRLinear({i}, {o}, ranks={_rank(cfg.tr_ranks)})  # tensor ring: the last bond closes it\n"
        f"x = torch.randn({cfg.batch}, {cfg.in_size})\n"
        "for layer in (bt, tr):\n"
        "    y = layer(x)  # never forms the dense W\n"
        f"    print(layer.spec, \"planner:\", btcore.planner_choice(layer.spec, {cfg.batch}).scheme)\n"
        f"    for step in layer.spec.plan({cfg.batch}).steps:  # the FLOP-optimal path\n"
        "        print(step.left, \"x\", step.right, \"->\", step.result_shape, f\"{step.macs:,} multiply-adds\")\n"
    )


def approximation_snippet(spec, *, budget: int, uploaded: bool = False) -> str:
    """The target, the page's main fits at their ranks and the advisor at ``budget`` for a RunSpec.

    ``uploaded``: the matrix came from a file or a trained model; the snippet loads ``matrix.npy``
    (the user saves theirs there) instead of building a target.
    """
    i, o = _modes(spec.in_modes), _modes(spec.out_modes)
    kwargs = "".join(f", {k}={v!r}" for k, v in sorted(spec.target_kwargs.items()))
    lines = ["import btcore"]
    if uploaded:
        lines += ["import numpy as np", "", "W = np.load(\"matrix.npy\")  # your matrix, saved with np.save"]
    else:
        lines += ["from btcore.target_matrices import make_target", "", f"W = make_target({spec.target!r}, {i}, {o}, {spec.seed}{kwargs})"]
    calls = {"TT": "btcore.fit_tt(W, {i}, {o}, ranks={r})", "Tucker": "btcore.fit_tucker(W, {i}, {o}, rank={r}, seed={s})",
             "CP": "btcore.fit_cp(W, {i}, {o}, rank={n}, seed={s})",
             "TR": "btcore.fit_tr(W, {i}, {o}, ranks={r}, seed={s}, **tr_options(EFFORTS[{e!r}]))",
             "BT": "btcore.fit_bt(W, {i}, {o}, rank={r}, blocks={n}, seed={s})"}
    if any(t.task.format == "TR" for t in spec.main):  # the page's work budget for the ring's starts
        lines.insert(1, "from btcore.decompose.settings import EFFORTS, tr_options")
    for t in spec.main:
        task = t.task
        r = _rank(task.ranks[0] if len(set(task.ranks)) == 1 else tuple(task.ranks))
        if task.format == "TT":
            r = _modes(tuple(task.ranks))
        call = calls[task.format].format(i=i, o=o, r=r, n=task.blocks, s=spec.seed, e=spec.effort)
        lines += [f"M, info = {call}", f"print({task.format!r}, info.params, info.relative_error)"]
    fmts = tuple(dict.fromkeys(t.task.format.lower() for t in spec.main))
    lines += ["", f"df = btcore.suggest_formats(W, budget={budget}, formats={fmts!r}, seed={spec.seed},",
              f"                            tensorizations=[({i}, {o})])",
              "print(df[df.pareto])  # the Pareto front of every candidate",
              "print(btcore.recommended(df))  # the suggestion"]
    return "\n".join(lines) + "\n"


def _list(value) -> str:
    return str(value) if isinstance(value, int) else ",".join(map(str, value))


def training_command(runs, spec, *, sweep: tuple | None = None) -> str:
    """The ``python -m btcore.train`` command that trains the page's comparison ``runs`` on ``spec`` (a DataSpec).

    ``runs`` are :class:`btcore.train.TrainConfig` s sharing one optimiser setup (as the page makes
    them); ``sweep`` is ``(ranks, blocks)`` for a sensitivity study.
    """
    first = runs[0]
    m = first.model
    kinds = ",".join(dict.fromkeys(r.model.kind for r in runs))
    bt = next((r.model for r in runs if r.model.kind == "bt"), m)
    tt = next((r.model for r in runs if r.model.kind == "tt"), m)
    parts = ["python -m btcore.train", f"--model {kinds}", f"--cell {m.cell}", f"--hidden {m.hidden_size}",
             f"--d {len(m.in_modes)}", f"--in-modes {'x'.join(map(str, m.in_modes))}",
             f"--hidden-modes {'x'.join(map(str, m.hidden_modes))}",
             f"--rank {_list(bt.rank)}", f"--blocks {bt.blocks}", f"--tt-ranks {_list(tt.tt_ranks)}",
             f"--dropout {m.dropout:g}", f"--frame {'x'.join(map(str, spec.frame_shape))}", f"--frames {spec.frames}"]
    if spec.folder is None:
        parts += [f"--classes {spec.classes}", f"--train-size {spec.train_size}", f"--val-size {spec.val_size}",
                  f"--noise {spec.noise:g}"]
    else:
        parts += [f"--data {spec.folder}"]
    parts += [f"--optimizer {first.optimizer}", f"--lr {first.lr:g}", f"--batch {first.batch_size}",
              f"--epochs {first.epochs}", f"--clip {first.grad_clip or 0:g}", f"--seed {first.seed}"]
    if sweep is not None:
        parts += [f"--sweep-ranks {_list(list(sweep[0]))}", f"--sweep-blocks {_list(list(sweep[1]))}"]
    return " \\\n    ".join(parts) + "\n"
