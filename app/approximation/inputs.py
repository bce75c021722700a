"""The Approximation page's inputs as :class:`~app.frame.Field` s (session store and URL query).

Every widget of the page has a field here; the URL names differ from the shared configuration's
(``in``, ``out``, ``R``, ``N``, ``tt``, ``tr``, ``batch``) and from the other pages' fields, so one link holds
the configuration and this page's state side by side. The upload itself is not a field (a file
cannot travel in a link).
"""

from __future__ import annotations

from app.frame import Field, ListField, OptionField
from app.approximation.plan import PAGE_FORMATS
from app.state import SessionState
from btcore.images import PHOTOS
from btcore.shapes import format_ints, parse_rank, rank_text

from .plan import EFFORT, MAX_CP_RANK, TARGETS

__all__ = ["K", "STATE", "FIELDS", "NOISES", "LENGTH_SCALES", "defaults", "SHAPES", "SHAPES_PAGE",
           "CUSTOM", "DEFAULT_SHAPE", "MODES", "RankField"]

#: Widget and session key prefix of the Approximation page (its modules share it).
K = "approx_"
NOISES = (0.0, 0.001, 0.01, 0.05, 0.1, 0.3)
LENGTH_SCALES = (0.02, 0.05, 0.1, 0.2, 0.5)
MODES = ("parameter budget", "explicit ranks")
SHAPES = {
    "256 x 256 (4x4x4x4 -> 4x4x4x4)": ((4, 4, 4, 4), (4, 4, 4, 4)),
    "1,024 x 1,024 (4x8x8x4 -> 4x8x8x4)": ((4, 8, 8, 4), (4, 8, 8, 4)),
    "4,096 x 256, tall (8x8x8x8 -> 4x4x4x4)": ((8, 8, 8, 8), (4, 4, 4, 4)),
    "576 x 64, tall (4x12x12 -> 4x4x4)": ((4, 12, 12), (4, 4, 4)),
}
DEFAULT_SHAPE = next(iter(SHAPES))
SHAPES_PAGE = "Shapes page's modes"
CUSTOM = "Custom"


#: The Approximation page's state beyond its inputs (jobs, the results on screen, caches, notes), kept in
#: the session under the page's prefix. The page's modules read and write it only here.
STATE = SessionState(K)


class RankField(Field):
    """A rank list typed as text (one int, or one per mode or bond); a link value that is no rank list
    falls back to the default with a warning (a rank that does not fit the modes is the page's error)."""

    def parse(self, text: str):
        return rank_text(parse_rank(str(text)[:500], "ranks"))


FIELDS = (
    Field("target", "bt", "choice", choices=tuple(TARGETS)),
    OptionField("noise", 0.01, choices=NOISES),
    OptionField("ls", 0.1, choices=LENGTH_SCALES, widget="length_scale"),
    Field("image", ""),
    Field("photo", next(iter(PHOTOS)), "choice", choices=tuple(PHOTOS)),
    Field("trained", ""),
    Field("seed", 0, "int", 0, 2**31 - 1),
    Field("shape", DEFAULT_SHAPE, "choice", choices=tuple(SHAPES) + (SHAPES_PAGE, CUSTOM)),
    Field("a_in", "4x4x4x4", widget="in_modes"),
    Field("a_out", "4x4x4x4", widget="out_modes"),
    ListField("formats", list(PAGE_FORMATS), choices=PAGE_FORMATS),
    Field("size_by", MODES[0], "choice", choices=MODES, widget="mode"),
    Field("params", 1000, "int", 8, 10**9, widget="budget"),
    Field("bt_R", "3", widget="bt_rank"),
    Field("bt_N", 2, "int", 1, 64, widget="blocks"),
    Field("tt_r", "4", widget="tt_ranks"),
    RankField("tr_r", "3", widget="tr_ranks"),
    Field("tucker_R", "3", widget="tucker_rank"),
    Field("cp_R", 8, "int", 1, MAX_CP_RANK, widget="cp_rank"),
    Field("sweep", 5, "int", 0, 7),
    Field("effort", "quick", "choice", choices=tuple(EFFORT)),
    Field("bt_cands", 2, "int", 1, 4, widget="bt_choices"),
)


def defaults(cfg, small_cfg) -> dict:
    """First-visit values: the Shapes page's modes when small enough (``small_cfg``), else the default
    shape; ranks from the shared configuration ``cfg``."""
    if small_cfg is not None:
        shape, (im, om) = SHAPES_PAGE, (small_cfg.in_modes, small_cfg.out_modes)
    else:
        shape, (im, om) = DEFAULT_SHAPE, SHAPES[DEFAULT_SHAPE]
    return {"shape": shape, "a_in": format_ints(im), "a_out": format_ints(om), "bt_R": rank_text(cfg.bt_rank),
            "bt_N": int(cfg.blocks), "tt_r": rank_text(cfg.tt_ranks), "tucker_R": rank_text(cfg.bt_rank),
            "tr_r": rank_text(cfg.tr_ranks)}
