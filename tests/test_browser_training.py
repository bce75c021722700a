"""The Training page in Debian chromium: Train, live loss chart, Stop, and two sessions kept apart."""

from __future__ import annotations

import pytest

from conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser

LIVE_CHART = ".st-key-train_loss_chart:not([data-stale=true])"  # fragment reruns can leave stale copies briefly
LOSS_POINTS = LIVE_CHART + " .scatterlayer .trace path.js-line"
TABLE = "[data-testid=stDataFrame]"


def _small(pg, epochs=200):
    """Few clips, so points come quickly, and many epochs, so the run is still going when we stop it."""
    for key, value in (("train_train_size", "64"), ("train_val_size", "32"), ("train_epochs", str(epochs))):
        box = pg.locator(f".st-key-{key} input")
        box.fill(value)
        box.press("Enter")
        wait_idle(pg)
    return pg


def _loss_points(pg) -> int:
    """Points drawn on the live loss chart (sum of the path vertices of every trace)."""
    return pg.evaluate(
        """sel => Array.from(document.querySelectorAll(sel))
              .map(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length)
              .reduce((a, b) => a + b, 0)""", LOSS_POINTS)


def _wait_points(pg, n, timeout_ms=120_000):
    pg.wait_for_function(
        """([sel, n]) => Array.from(document.querySelectorAll(sel))
              .map(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length)
              .reduce((a, b) => a + b, 0) >= n""", arg=[LOSS_POINTS, n], timeout=timeout_ms)


def test_train_live_chart_and_stop(app_page):
    pg = _small(app_page("training"))
    assert pg.locator(".st-key-train_start button").is_enabled()
    pg.locator(".st-key-train_start button").click()
    _wait_points(pg, 3)
    first = _loss_points(pg)
    _wait_points(pg, first + 3)  # the chart keeps growing while training runs: it is live
    pg.wait_for_function("sel => document.querySelectorAll(sel).length >= 3", arg=TABLE, timeout=30_000)
    screenshot(pg, "training_live")
    pg.locator(".st-key-train_stop button").click()
    pg.wait_for_function("() => document.body.innerText.includes('stopped')", timeout=30_000)
    wait_idle(pg)
    pg.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=30_000)
    screenshot(pg, "training_stopped")
    assert "Traceback" not in pg.inner_text("body")


def test_two_sessions_keep_their_own_runs(app_page):
    """A run in one browser session never shows up in another (each session has its own job registry)."""
    a = _small(app_page("training"))
    b = _small(app_page("training"))
    a.locator(".st-key-train_start button").click()
    _wait_points(a, 2)
    wait_idle(b)
    body = b.inner_text("body")
    assert "Choose the models and press" in body  # B has no job of its own ...
    assert b.locator(".st-key-train_loss_chart").count() == 0  # ... and does not see A's curves
    assert b.locator(".st-key-train_stop button").is_disabled()
    a.locator(".st-key-train_stop button").click()
    a.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=30_000)
    assert b.locator(".st-key-train_loss_chart").count() == 0
