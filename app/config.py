"""The one configuration (modes, ranks, blocks) that every page shares.

The Shapes page edits it; the other pages start from it. It lives in the session
(:data:`app.state.SESSION`) under a key no widget uses, so it survives page switches (Streamlit drops
the state of widgets that are not on the current page).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

import btcore
from btcore.shapes import format_ints, parse_ints, parse_rank, rank_text
from app.state import SESSION
from app.widgets import escape_markdown, link_warning
from btcore.rnn import (GATES, UCF11_BLOCKS, UCF11_HIDDEN_MODES, UCF11_IN_MODES, UCF11_RANK, UCF11_TT_RANKS,
                        folded_out_modes)

__all__ = ["LabConfig", "PRESETS", "UCF11_LSTM_PRESET", "get_config", "set_config", "CONFIG_KEY", "config_query",
           "config_from_query", "pop_config_warnings", "config_chosen", "LIMITS", "check_limit"]

CONFIG_KEY = "btlab_config"
CONFIG_WARNINGS_KEY = "btlab_config_warnings"
#: The default preset's name: the paper's UCF11 LSTM input map.
UCF11_LSTM_PRESET = "UCF11 LSTM (paper: BT-LSTM and TT-LSTM)"


@dataclass(frozen=True)
class LabConfig:
    """Shapes and ranks chosen in the app. Ranks: an int for all modes/bonds, or a tuple."""

    in_modes: tuple[int, ...] = UCF11_IN_MODES
    out_modes: tuple[int, ...] = folded_out_modes(UCF11_HIDDEN_MODES, GATES["lstm"])
    bt_rank: int | tuple[int, ...] = UCF11_RANK
    blocks: int = UCF11_BLOCKS
    tt_ranks: int | tuple[int, ...] = UCF11_TT_RANKS
    batch: int = 16
    tr_ranks: int | tuple[int, ...] = btcore.formats.RANK_CONTROLS["tr_ranks"]

    @property
    def d(self) -> int:
        return len(self.in_modes)

    @property
    def in_size(self) -> int:
        return btcore.shapes.prod(self.in_modes)

    @property
    def out_size(self) -> int:
        return btcore.shapes.prod(self.out_modes)

    def dense_spec(self) -> btcore.DenseSpec:
        return btcore.DenseSpec(self.in_modes, self.out_modes)

    def bt_spec(self) -> btcore.BTSpec:
        return btcore.BTSpec(self.in_modes, self.out_modes, self.bt_rank, self.blocks)

    def tucker_spec(self) -> btcore.BTSpec:
        return btcore.tucker_spec(self.in_modes, self.out_modes, self.bt_rank)

    def tt_spec(self) -> btcore.TTSpec:
        return btcore.TTSpec(self.in_modes, self.out_modes, self.tt_ranks)

    def tr_spec(self) -> btcore.TRSpec:
        return btcore.TRSpec(self.in_modes, self.out_modes, self.tr_ranks)

    def controls(self) -> dict:
        """The rank controls of :data:`btcore.formats.RANK_CONTROLS` this configuration sets."""
        return {"rank": self.bt_rank, "blocks": self.blocks, "tt_ranks": self.tt_ranks, "tr_ranks": self.tr_ranks}

    def spec(self, key: str):
        """The spec of registry format ``key`` (:data:`btcore.formats.FORMATS`) for this configuration."""
        return btcore.formats.spec_for(key, self.in_modes, self.out_modes, **self.controls())

    def cp_rank(self) -> int:
        """The CP rank whose parameter count is closest to the BT format's (at least 1)."""
        per_rank = btcore.cp_params(self.in_modes, self.out_modes, 1)
        return max(1, round(self.bt_spec().params / per_rank))

    def cp_spec(self) -> btcore.BTSpec:
        return btcore.cp_spec(self.in_modes, self.out_modes, self.cp_rank())

    def specs(self) -> list:
        """Every registered format's spec (:data:`btcore.formats.FORMATS` order), then Tucker and CP, BT's
        special cases (raises ValueError when one is invalid)."""
        return [self.spec(key) for key in btcore.formats.FORMATS] + [self.tucker_spec(), self.cp_spec()]


#: Named configurations. The UCF11 ones are the paper's (docs/reference.md, "The paper's UCF11
#: setting"): 57,600 inputs as 8x20x20x18, the four LSTM gates (three GRU gates) folded into the first
#: output mode. One configuration holds the BT (R=4, N=2) and the TT (ranks 4) choice at once, so the
#: paper's BT-LSTM and TT-LSTM are the same preset.
PRESETS: dict[str, LabConfig] = {
    UCF11_LSTM_PRESET: LabConfig(),
    "UCF11 GRU (paper shapes: BT-GRU and TT-GRU)": LabConfig(out_modes=folded_out_modes(UCF11_HIDDEN_MODES,
                                                                                       GATES["gru"])),
    "Small square 1024 x 1024": LabConfig((4, 8, 8, 4), (4, 8, 8, 4), 3, 2, 4, tr_ranks=4),
    "Teaching example 16 x 16": LabConfig((4, 4), (4, 4), 2, 2, 2, tr_ranks=2),
}


#: Limits of the configuration's numbers: (label, lowest, highest). A link's values are checked
#: against them as the Shapes page checks what is typed (beyond them the tables would not fit int64).
LIMITS = {
    "I": ("Input size I", 1, 10**9),
    "J": ("Output size J", 1, 10**9),
    "N": ("BT blocks N", 1, 64),
    "batch": ("Batch size", 1, 65536),
}


def check_limit(name: str, value: int) -> int:
    """``value`` if it is within :data:`LIMITS` ``[name]``, else a ``ValueError`` naming the range."""
    label, lo, hi = LIMITS[name]
    if not lo <= value <= hi:
        raise ValueError(f"{label} must be from {lo:,} to {hi:,}, got {value:,}")
    return value


#: URL query names of the configuration's fields.
CONFIG_PARAMS = {"in_modes": "in", "out_modes": "out", "bt_rank": "R", "blocks": "N", "tt_ranks": "tt",
                 "batch": "batch", "tr_ranks": "tr"}


def config_query(cfg: LabConfig) -> dict[str, str]:
    """The configuration as URL query values (``in=8x20x20x18&out=16x4x4x4&R=4&N=2&tt=4&batch=16&tr=4``)."""
    return {"in": format_ints(cfg.in_modes), "out": format_ints(cfg.out_modes), "R": rank_text(cfg.bt_rank),
            "N": str(cfg.blocks), "tt": rank_text(cfg.tt_ranks), "batch": str(cfg.batch), "tr": rank_text(cfg.tr_ranks)}


def _one_int(text: str, name: str) -> int:
    values = parse_ints(text, name)
    if len(values) != 1:
        raise ValueError(f"{name}: expected one whole number, got {text!r}")
    return int(values[0])


def _sized(modes: tuple[int, ...], name: str) -> tuple[int, ...]:
    check_limit(name, btcore.shapes.prod(modes))
    return modes


def config_from_query(params) -> tuple[LabConfig, list[str]]:
    """The configuration a URL query describes, and warnings for what could not be used.

    Missing fields keep the default; an invalid value (or a configuration no format accepts) falls
    back to the default, with a warning that names the query field.
    """
    default = LabConfig()
    if not any(name in params for name in CONFIG_PARAMS.values()):
        return default, []
    parsers = {"in": lambda t, f: _sized(parse_ints(t, f), "I"), "out": lambda t, f: _sized(parse_ints(t, f), "J"),
               "R": parse_rank, "tt": parse_rank, "tr": parse_rank,
               "N": lambda t, f: check_limit("N", _one_int(t, f)), "batch": lambda t, f: check_limit("batch", _one_int(t, f))}
    changes, warnings = {}, []
    for attr, name in CONFIG_PARAMS.items():
        if name in params:
            try:
                changes[attr] = parsers[name](params[name], name)
            except ValueError as exc:
                warnings.append(link_warning(name, params[name], exc, config_query(default)[name]))
    if "tr_ranks" not in changes and "in_modes" in changes and "out_modes" in changes:
        # A link without TR ranks (written before TR was listed) keeps working on small modes: the
        # default rank, capped at the largest uniform rank those modes allow.
        try:
            cap = btcore.max_uniform_rank(changes["in_modes"], changes["out_modes"], "tr")
            changes["tr_ranks"] = max(1, min(default.tr_ranks, cap))
        except ValueError:
            pass  # the modes themselves are refused below, with their own message
    cfg = replace(default, **changes)
    try:
        _check(cfg)
    except ValueError as exc:
        kept = _without_one(cfg, changes)
        if kept is not None:
            name, fallback = kept
            return fallback, warnings + [link_warning(name, params[name], exc, config_query(fallback)[name])]
        names = ", ".join(f"`{n}`" for n in CONFIG_PARAMS.values() if n in params)
        return default, warnings + [f"The link's configuration ({names}) was not used ({escape_markdown(exc)}); "
                                    "using the default configuration."]
    return cfg, warnings


def _check(cfg: LabConfig) -> None:
    """Raise ``ValueError`` (naming the link's fields) unless every format accepts ``cfg``."""
    if len(cfg.in_modes) != len(cfg.out_modes):
        raise ValueError(f"in has {len(cfg.in_modes)} modes but out has {len(cfg.out_modes)}; both need the same "
                         "order d")
    cfg.specs()


def _without_one(cfg: LabConfig, changes: dict) -> tuple[str, LabConfig] | None:
    """The link's configuration with one field (a rank, the blocks, or one side's modes) back at its
    default, if that alone makes it valid."""
    default = LabConfig()
    for attr in ("tr_ranks", "tt_ranks", "bt_rank", "blocks", "in_modes", "out_modes"):
        if attr not in changes:
            continue
        value = getattr(default, attr)
        if attr == "tr_ranks":
            try:
                value = max(1, min(value, btcore.max_uniform_rank(cfg.in_modes, cfg.out_modes, "tr")))
            except ValueError:
                continue
        trial = replace(cfg, **{attr: value})
        try:
            _check(trial)
        except ValueError:
            continue
        return CONFIG_PARAMS[attr], trial
    return None


def get_config() -> LabConfig:
    """The session's configuration: the URL's on a session's first page, else the UCF11 LSTM preset."""
    cfg = SESSION.get(CONFIG_KEY)
    if isinstance(cfg, LabConfig):
        return cfg
    cfg, warnings = config_from_query(st.query_params)
    SESSION.set(CONFIG_KEY, cfg)
    SESSION.set(CONFIG_WARNINGS_KEY, warnings)
    return cfg


def config_chosen() -> bool:
    """Whether the session has a configuration yet (a page read the URL's, or the Shapes page set one)."""
    return CONFIG_KEY in SESSION


def pop_config_warnings() -> list[str]:
    """Warnings about the URL's configuration, once (the page that first read it shows them)."""
    return SESSION.pop(CONFIG_WARNINGS_KEY, None) or []


def set_config(cfg: LabConfig, **changes) -> LabConfig:
    cfg = replace(cfg, **changes) if changes else cfg
    SESSION.set(CONFIG_KEY, cfg)
    return cfg
