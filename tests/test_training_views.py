"""app.training.views: the explanations drawn beside the measurements follow them."""

from __future__ import annotations

import pytest

from app.training.views import speed_line


def _race(**speeds):
    rows = [{"run": name, "examples/s": v} for name, (_, v) in speeds.items()]
    events = [{"event": "start", "run": name, "kind": kind} for name, (kind, _) in speeds.items()]
    return rows, events


@pytest.mark.parametrize("speeds, says, never", [
    ({"Dense": ("dense", 900.0), "BT": ("bt", 300.0), "TT": ("tt", 500.0)}, "BT was slower than dense", "faster"),
    ({"Dense": ("dense", 300.0), "BT": ("bt", 900.0)}, "BT was faster than dense", "small steps cost more"),
    ({"Dense": ("dense", 500.0), "BT": ("bt", 400.0), "BT 2": ("bt", 600.0)}, "fastest: BT 2", "dense matrix product"),
    ({"Dense": ("dense", 500.0), "TT": ("tt", 400.0)}, "fastest: Dense", "BT"),
])
def test_the_speed_explanation_follows_the_measured_order(speeds, says, never):
    line = speed_line(*_race(**speeds))
    assert says in line and never not in line
    fastest = max(speeds, key=lambda k: speeds[k][1])
    assert f"fastest: {fastest}." in line


def test_one_measured_run_gets_no_line():
    assert speed_line(*_race(BT=("bt", 100.0))) == ""
