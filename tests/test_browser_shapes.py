"""Browser test: the app in Debian chromium; title, a metric, and a screenshot per page."""

import pytest

from conftest import screenshot

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
