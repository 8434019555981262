"""/alerts, the overview's alerts panel and /prominence in Chromium (issue 16): they draw,
say their alerts and risers in words, and axe finds no serious or critical violation."""

from __future__ import annotations

from .test_browser import Visit, browser, server  # noqa: F401  (fixtures)


def test_alerts_and_prominence_pages_in_a_browser(server: str, browser: object):  # noqa: F811
    leader = Visit(browser, server, "leader")
    leader.open("/overview", "leader-overview-alerts-panel")
    panel = leader.page.locator("section.alerts-panel")
    assert panel.count() == 1 and "Drug supply offences in" in panel.inner_text()
    assert not leader.axe()
    leader.open("/alerts", "leader-alerts")
    assert "against" in leader.page.locator("#alerts-list-h + ul").inner_text()
    assert not leader.axe()
    leader.close()
    analyst = Visit(browser, server, "analyst")
    analyst.open("/prominence", "analyst-prominence")
    assert analyst.page.locator("article.riser").count() >= 3
    assert "rising" in analyst.page.locator("article.riser").first.inner_text()
    assert not analyst.axe()
    analyst.close()
