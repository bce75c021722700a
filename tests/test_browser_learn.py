"""Browser test of the Learn page: it loads in chromium and the diagrams are drawn (screenshots saved)."""

import pytest

from conftest import ARTIFACTS, screenshot, wait_idle

pytestmark = pytest.mark.browser


def test_learn_page_diagrams_screenshot(app_page):
    pg = app_page("learn")
    assert pg.locator("[data-testid=stException]").count() == 0
    diagrams = pg.locator(".st-key-learn_diagrams")
    diagrams.wait_for(timeout=30_000)
    # dense, TT and BT diagrams are plotly charts that finished drawing
    pg.wait_for_function(
        "document.querySelectorAll('.st-key-learn_diagrams .js-plotly-plot .main-svg').length >= 3",
        timeout=30_000)
    pg.wait_for_timeout(500)
    assert "Block-Term" in diagrams.inner_text() or diagrams.locator("text").count() > 0
    out = screenshot(pg, "learn_page")
    assert out.exists() and out.stat().st_size > 10_000
    shot = out.parent / "learn_diagrams.png"
    diagrams.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_learn_page_walkthrough_slider(app_page):
    pg = app_page("learn")
    slider = pg.locator(".st-key-learn_step_BT input[type=range]")
    slider.wait_for(timeout=30_000)
    slider.focus()
    slider.press("ArrowRight")
    wait_idle(pg)
    assert "Step 2 of" in pg.locator("[data-testid=stMainBlockContainer]").inner_text()
    walk = pg.locator("[data-testid=stTabs]").first
    walk.screenshot(path=str(ARTIFACTS / "screenshots" / "learn_walkthrough.png"))
