"""The Shapes page's session state: its widget callbacks, where each side's modes came from, the
suggestion on offer, and the last valid configuration.

Inputs are read and written through the page's store (:func:`app.frame.stored_inputs`), the rest
through :data:`STATE`. A callback runs before the page's script, so it first takes what the widgets
report (:meth:`~app.frame.PageInputs.sync`); a value it sets shows in its widget on that run.
"""

from __future__ import annotations

from app.config import LabConfig, PRESETS, get_config, set_config
from app.frame import PageInputs, stored_inputs
from app.state import SessionState
from btcore.shapes import format_ints, parse_ints

from .inputs import K, RANGES, ModeOrigin, check_number, config_from_inputs, defaults_for, preset_name, suggest_modes

__all__ = ["PAGE", "STATE", "first_defaults", "origin", "on_preset", "mark_custom", "on_size", "on_modes",
           "take_suggestion", "suggest_error", "offers", "shown_config"]

#: The page's name (its input store in the session).
PAGE = "shapes"
#: The page's session values beyond its inputs: ``mode_origin`` (a :class:`~.inputs.ModeOrigin`),
#: ``suggestion`` (side -> modes offered for a size the typed modes do not fit), ``suggest_error``
#: (why no modes could be suggested) and ``last_valid`` (the configuration the results show).
STATE = SessionState(K)
SIZE = {"in": "I", "out": "J"}
SIDES = ("in", "out")


def _store() -> PageInputs:
    """The page's inputs with what the widgets report now."""
    store = stored_inputs(PAGE)
    store.sync()
    return store


def first_defaults(start: LabConfig) -> dict:
    """The inputs a first visit shows: the configuration ``start``, named by the preset it is."""
    store = stored_inputs(PAGE)
    return defaults_for(start, preset_name(start, store["preset"] if store is not None else None))


def origin() -> ModeOrigin:
    """Where each side's modes came from; the first call remembers the modes the page opened with."""
    def opened_with() -> ModeOrigin:
        made, store = ModeOrigin(), stored_inputs(PAGE)
        for side in SIDES:
            try:
                made.remembered[side] = parse_ints(store[side] if store is not None else "", side)
            except ValueError:
                pass
        return made

    return STATE.instance("mode_origin", ModeOrigin, opened_with)


def _load(cfg: LabConfig, preset: str) -> None:
    store = _store()
    for name, value in defaults_for(cfg, preset).items():
        store.set(name, value)
    mode_origin = origin()
    mode_origin.auto = {"in": True, "out": True}
    mode_origin.remembered = {"in": cfg.in_modes, "out": cfg.out_modes}
    STATE.pop("suggestion")


def on_preset() -> None:
    """Preset callback: show the chosen preset's configuration (``Custom`` keeps the inputs)."""
    name = _store()["preset"]
    if name in PRESETS:
        _load(PRESETS[name], name)


def mark_custom() -> None:
    """Callback of an input a preset sets: the inputs are no preset any more."""
    _store().set("preset", "Custom")


def on_size(sides: tuple[str, ...]) -> None:
    """Callback of a size or of d: refill the modes the app set; offer a suggestion for modes the user typed."""
    store = _store()
    store.set("preset", "Custom")
    mode_origin, offered = origin(), {}
    STATE.pop("suggest_error")
    try:
        d = check_number("d", store["d"])
    except ValueError:
        STATE.pop("suggestion")
        return  # the configuration's error names the order d; said once, not again as a warning
    for side in sides:
        try:
            n = check_number(SIZE[side], store[SIZE[side]])
        except ValueError:
            continue  # named by the configuration's error
        try:
            modes = suggest_modes(n, d, mode_origin.remembered.get(side))
        except ValueError as exc:
            STATE.set("suggest_error", f"{RANGES[SIZE[side]][0]} in order d = {d}: {exc}")
            continue
        if mode_origin.auto[side]:
            store.set(side, format_ints(modes))
        elif format_ints(modes) != store[side]:
            offered[side] = modes
    STATE.set("suggestion", offered)


def on_modes(side: str) -> None:
    """Callback of a mode list: the user's own modes are kept; typed on both sides with one count, d follows."""
    store = _store()
    store.set("preset", "Custom")
    mode_origin = origin()
    mode_origin.auto[side] = False
    try:
        mode_origin.remembered[side] = parse_ints(store[side], side)
    except ValueError:
        pass
    STATE.get("suggestion", {}).pop(side, None)
    try:
        counts = {len(parse_ints(store[s], s)) for s in SIDES}
    except ValueError:
        return
    if len(counts) == 1:
        store.set("d", counts.pop())


def take_suggestion() -> None:
    """Button callback: use the suggested modes (set by the app again, so a size change refills them)."""
    store = _store()
    for side, modes in STATE.pop("suggestion", {}).items():
        store.set(side, format_ints(modes))
        origin().auto[side] = True


def suggest_error() -> str | None:
    """Why the last size or d change could not suggest modes (None when it could)."""
    return STATE.get("suggest_error")


def offers() -> dict:
    """The modes on offer, side -> modes, for sizes the typed modes do not fit."""
    return STATE.get("suggestion") or {}


def shown_config(values: dict) -> tuple[LabConfig, ValueError | None]:
    """The configuration the results are for, and the inputs' error (None when they are valid).

    Valid inputs become the session's configuration; invalid ones leave the last valid configuration
    (else the session's) in place, so the page shows results for it, and says so.
    """
    try:
        cfg = config_from_inputs(values)
    except ValueError as exc:
        return STATE.get("last_valid") or get_config(), exc
    STATE.set("last_valid", cfg)
    set_config(cfg)
    return cfg, None
