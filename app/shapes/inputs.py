"""The Shapes page's inputs: fields, range checks, mode suggestions, and the data behind its charts.

Everything here is plain Python on values (no widgets), so it is unit-tested directly; the page
reads widgets, calls these, and draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import btcore
from app.frame import Field, LinkCheck
from app.widgets import link_warning
from app.config import LIMITS, PRESETS, LabConfig
from btcore.shapes import MAX_ORDER, format_ints, parse_ints, parse_rank, rank_text

__all__ = ["K", "FIELDS", "link_check", "RANGES", "ModeOrigin", "check_number", "config_from_inputs", "defaults_for",
           "preset_name", "suggest_modes", "heatmap_grid", "sweep_ranks",
           "uniform_marks"]

#: Widget and session key prefix of the Shapes page.
K = "shapes_"
#: Allowed ranges of the numeric inputs: (label, lowest, highest).
RANGES = {**LIMITS, "d": ("Order d", 1, MAX_ORDER)}

#: The inputs. The modes, ranks, blocks and batch are the shared configuration's: their first values
#: come from :func:`app.config.get_config`, which reads and checks the link (``linked=False``), so a
#: bad link value never reaches a field; I, J and d are checked against those modes (:func:`link_check`).
FIELDS = (
    Field("preset", "Custom", "choice", choices=lambda: ("Custom", *PRESETS)),
    Field("I", 57600, "int", *RANGES["I"][1:], widget="in_size"),
    Field("J", 1024, "int", *RANGES["J"][1:], widget="out_size"),
    Field("d", 4, "int", *RANGES["d"][1:]),
    Field("in", "8x20x20x18", widget="in_modes", linked=False),
    Field("out", "16x4x4x4", widget="out_modes", linked=False),
    Field("R", "4", widget="bt_rank", linked=False),
    Field("N", 2, "int", *RANGES["N"][1:], widget="blocks", linked=False),
    Field("tt", "4", widget="tt_ranks", linked=False),
    Field("batch", 16, "int", *RANGES["batch"][1:], linked=False),
    Field("tr", "4", widget="tr_ranks", linked=False),
)


def link_check(cfg: LabConfig) -> LinkCheck:
    """The check of a link's I, J, d and preset against the configuration ``cfg`` the link gave.

    I, J and d follow from the modes; a link value that disagrees is not used (one warning naming it),
    so the fields never show a size the results are not for. A preset that is not ``cfg`` is named
    the same way; the preset shown is the one ``cfg`` is (else Custom).
    """
    derived = {"I": cfg.in_size, "J": cfg.out_size, "d": cfg.d}
    said = {"I": f"the input modes {format_ints(cfg.in_modes)} give I = {cfg.in_size:,}",
            "J": f"the output modes {format_ints(cfg.out_modes)} give J = {cfg.out_size:,}",
            "d": f"the modes {format_ints(cfg.in_modes)} and {format_ints(cfg.out_modes)} have order d = {cfg.d}"}

    def check(values: dict, given: set) -> tuple[dict, list]:
        values, warnings = dict(values), []
        for name, value in derived.items():
            if name in given and values[name] != value:
                warnings.append(link_warning(name, values[name], said[name], str(value)))
            values[name] = value
        preset = values["preset"]
        values["preset"] = preset if preset == "Custom" else preset_name(cfg, preset)
        if "preset" in given and values["preset"] != preset:
            warnings.append(link_warning("preset", preset, "the link's modes and ranks are not that preset",
                                         values["preset"]))
        return values, warnings

    return check


def check_number(name: str, value) -> int:
    """``value`` of numeric field ``name`` as an int in its range, or a ``ValueError`` naming the range."""
    label, lo, hi = RANGES[name]
    if value is None:
        raise ValueError(f"{label}: enter a whole number from {lo:,} to {hi:,}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{label}: {value:g} is not a whole number; enter one from {lo:,} to {hi:,}")
    if not lo <= value <= hi:
        raise ValueError(f"{label} must be from {lo:,} to {hi:,}, got {value:,}")
    return int(value)


def preset_name(cfg: LabConfig, last: str | None = None) -> str:
    """The preset last chosen if the configuration still is it, else the first that matches, else Custom."""
    if last in PRESETS and PRESETS[last] == cfg:
        return last
    return next((n for n, c in PRESETS.items() if c == cfg), "Custom")


def defaults_for(cfg: LabConfig, preset: str = "Custom") -> dict:
    """The field values that show ``cfg``."""
    return {"preset": preset, "I": cfg.in_size, "J": cfg.out_size, "d": cfg.d, "in": format_ints(cfg.in_modes),
            "out": format_ints(cfg.out_modes), "R": rank_text(cfg.bt_rank), "N": cfg.blocks,
            "tt": rank_text(cfg.tt_ranks), "batch": cfg.batch, "tr": rank_text(cfg.tr_ranks)}


def config_from_inputs(values: dict) -> LabConfig:
    """The configuration the inputs describe; ``ValueError`` naming the first bad field."""
    sizes = {name: check_number(name, values[name]) for name in ("I", "J", "d", "N", "batch")}
    in_modes = parse_ints(values["in"], "input modes")
    out_modes = parse_ints(values["out"], "output modes")
    btcore.check_modes(in_modes, "input modes", sizes["I"])
    btcore.check_modes(out_modes, "output modes", sizes["J"])
    for side, modes in (("input", in_modes), ("output", out_modes)):
        # before the formats see the modes: the results must be for the d shown, and the message names
        # the fields (the formats would speak of in_modes and out_modes)
        if len(modes) != sizes["d"]:
            raise ValueError(f"Order d is {sizes['d']} but the {side} modes {format_ints(modes)} are {len(modes)}: "
                             f"type {sizes['d']} {side} modes, use the suggested ones, or set d back to {len(modes)}")
    cfg = LabConfig(in_modes, out_modes, parse_rank(values["R"], "BT rank"), sizes["N"],
                    parse_rank(values["tt"], "TT ranks"), sizes["batch"], parse_rank(values["tr"], "TR ranks"))
    cfg.specs()  # every format must accept it
    return cfg


@dataclass
class ModeOrigin:
    """Where each side's mode list came from, so a size change never overwrites what the user typed.

    ``auto[side]`` is True while the modes were set by the app (a preset or a suggestion);
    ``remembered[side]`` is the last mode list set by a preset or typed validly, offered again when
    its size comes back (57,600 -> 57,601 -> 57,600 returns to 8x20x20x18, not a fresh factorization).
    """

    auto: dict = field(default_factory=lambda: {"in": True, "out": True})
    remembered: dict = field(default_factory=dict)


def suggest_modes(n: int, d: int, remembered: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Modes for size ``n`` and order ``d``: the remembered list when it still fits, else balanced."""
    if remembered and len(remembered) == d and btcore.shapes.prod(remembered) == n:
        return tuple(remembered)
    return btcore.factorize(n, d)


def sweep_ranks(cfg: LabConfig) -> list[int]:
    """The uniform ranks the parameters-vs-rank chart sweeps (up to 32, within the largest of the
    registered formats' caps; :func:`btcore.param_sweep` skips a rank above one format's cap)."""
    top = max(btcore.max_uniform_rank(cfg.in_modes, cfg.out_modes, key)
              for key, fmt in btcore.formats.FORMATS.items() if fmt.factorized)
    return list(range(1, min(32, top) + 1))


def uniform_marks(specs) -> dict[str, tuple[int, int]]:
    """``{label: (rank, params)}`` of the specs of registered factorized formats whose ranks are one value
    (TT: its inner bonds), the points the parameters-vs-rank chart marks as "your" choice."""
    labels = {fmt.label for fmt in btcore.formats.FORMATS.values() if fmt.factorized}
    marks = {}
    for spec in specs:
        if spec.kind not in labels:
            continue
        ranks = set(spec.inner_ranks if isinstance(spec, btcore.TTSpec) else spec.ranks)
        if len(ranks) == 1:
            marks[spec.kind] = (ranks.pop(), spec.params)
    return marks


def heatmap_grid(cfg: LabConfig) -> tuple[list[int], list[int], list[list[float]]]:
    """Ranks (up to 8), blocks 1..8 and the compression vs dense of BT at each (R, N).

    The configuration's own uniform R and its N are always on the axes (a rank or block count
    beyond the usual grid adds a column or row), so the chart can mark it.
    """
    cap = btcore.max_uniform_rank(cfg.in_modes, cfg.out_modes, "bt")
    ranks = [r for r in sweep_ranks(cfg) if r <= cap][:8]
    own = set(btcore.formats.normalize_ranks(cfg.bt_rank, cfg.d))
    if len(own) == 1 and min(own) <= cap:
        ranks = sorted(set(ranks) | own)
    blocks = sorted(set(range(1, 9)) | {cfg.blocks})
    dense = btcore.dense_params(cfg.in_modes, cfg.out_modes)
    values = [[dense / btcore.bt_params(cfg.in_modes, cfg.out_modes, r, n) for r in ranks] for n in blocks]
    return ranks, blocks, values
