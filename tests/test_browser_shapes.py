"""Browser test: the app in Debian chromium; title, a metric, and a screenshot per page; TR on Shapes."""

import pytest
from playwright.sync_api import expect

import btcore
from conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser


def test_home_and_shapes_pages(app_page):
    pg = app_page("")
    assert pg.title() == "BT Lab"
    assert pg.get_by_text("Shapes & parameters").first.is_visible()
    screenshot(pg, "home")
    pg = app_page("shapes")
    pg.get_by_text("BT (R=4, N=2) parameters").wait_for(timeout=60_000)
    metric = pg.locator("[data-testid=stMetric]", has_text="BT (R=4, N=2) parameters")
    assert "3,392" in metric.inner_text()
    pg.locator("[data-testid=stPlotlyChart]").first.wait_for(timeout=60_000)
    screenshot(pg, "shapes")


def test_shapes_lists_tr_and_takes_its_ranks(app_page):
    pg = app_page("shapes")
    tr = pg.locator("[data-testid=stMetric]", has_text="TR (ring ranks 4-4-4-4) parameters")
    tr.wait_for(timeout=90_000)
    assert f"{btcore.tr_params((8, 20, 20, 18), (16, 4, 4, 4), 4):,}" in tr.inner_text()  # 5,760
    box = pg.locator(".st-key-shapes_tr_ranks input")
    box.fill("4,3,2,3")
    box.press("Enter")
    wait_idle(pg, 90_000)
    metric = pg.locator("[data-testid=stMetric]", has_text="TR (ring ranks 4-3-2-3) parameters")
    expect(metric).to_contain_text(f"{btcore.tr_params((8, 20, 20, 18), (16, 4, 4, 4), (4, 3, 2, 3)):,}",
                                   timeout=90_000)  # 3,408
    assert "tr=4%2C3%2C2%2C3" in pg.url or "tr=4,3,2,3" in pg.url
    screenshot(pg, "shapes_tr")
