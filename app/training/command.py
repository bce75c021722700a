"""The command line that trains the Training page's race: ``python -m btcore.train --task ...`` (pure).

For the action task it is :func:`app.snippets.training_command` with the task and the TR ranks
added; for another task the shared model controls, the task's data options (one ``--flag`` per
option, as the CLI names them: underscores as dashes) and the optimiser.
"""

from __future__ import annotations

from app.snippets import training_command
from btcore.shapes import rank_text

__all__ = ["race_command"]

_SEP = " \\\n    "


def _ranks(value) -> str:
    return rank_text(value).replace("x", ",")


def _kind_flags(runs) -> list[str]:
    """The rank flags of the formats in ``runs`` (the first run of each kind)."""
    first = {}
    for r in runs:
        first.setdefault(r.model.kind, r.model)
    parts = []
    if "bt" in first:
        parts += [f"--rank {_ranks(first['bt'].rank)}", f"--blocks {first['bt'].blocks}"]
    if "tt" in first:
        parts.append(f"--tt-ranks {_ranks(first['tt'].tt_ranks)}")
    if "tr" in first:
        parts.append(f"--tr-ranks {_ranks(first['tr'].tr_ranks)}")
    return parts


def race_command(runs, spec, *, sweep: tuple | None = None) -> str:
    """The ``python -m btcore.train`` command of the page's ``runs`` on ``spec`` (a DataSpec), task included."""
    kinds = list(dict.fromkeys(r.model.kind for r in runs))
    if spec.task == "action":
        cmd = training_command(runs, spec, sweep=sweep)
        head, rest = cmd.split(_SEP, 1)
        tr = [p for p in _kind_flags(runs) if p.startswith("--tr-ranks")]
        return _SEP.join([head, "--task action", *tr, rest.rstrip("\n")]) + "\n"
    first = runs[0]
    m = first.model
    parts = ["python -m btcore.train", f"--task {spec.task}", f"--model {','.join(kinds)}"]
    for flag, attr in (("--cell", "cell"), ("--hidden", "hidden_size"), ("--dropout", "dropout")):
        if isinstance(getattr(m, attr, None), (int, float, str)):
            value = getattr(m, attr)
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    parts += _kind_flags(runs)
    parts += [f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
              for k, v in spec.options]
    parts += [f"--optimizer {first.optimizer}", f"--lr {first.lr:g}", f"--batch {first.batch_size}",
              f"--epochs {first.epochs}", f"--clip {first.grad_clip or 0:g}", f"--seed {first.seed}"]
    if sweep is not None:
        parts += [f"--sweep-ranks {','.join(map(str, sweep[0]))}", f"--sweep-blocks {','.join(map(str, sweep[1]))}"]
    return _SEP.join(parts) + "\n"
