"""Issue 16 in Debian's Chromium (Playwright): the disruption impact page draws without
serious or critical axe violations (the CHB page, with its evaluation, is checked for every
role by test_browser.py). The screenshot is kept in test-artefacts/screenshots/."""

from __future__ import annotations

from .test_browser import Visit, browser, server  # noqa: F401 (fixtures)


def test_disruptions_page_is_accessible(server: str, browser: object):  # noqa: F811
    visit = Visit(browser, server, "analyst")
    visit.open("/disruptions", "analyst-disruptions")
    main = visit.page.inner_text("main")
    assert "By 4P: what happened in the ward after" in main and "Diversion referrals" in main
    violations = visit.axe()
    assert not violations, [(v["id"], v["help"]) for v in violations]
    visit.close()
