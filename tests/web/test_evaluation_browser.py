"""Issue 16 in Debian's Chromium (Playwright): the CHB page with its evaluation and the
disruption impact page draw without serious or critical axe violations. Screenshots are kept
in test-artefacts/screenshots/ to be looked at."""

from __future__ import annotations

from .test_browser import Visit, browser, server  # noqa: F401 (fixtures)


def test_evaluation_pages_are_accessible(server: str, browser: object):  # noqa: F811
    visit = Visit(browser, server, "analyst")
    for path, shot, heading in (
        ("/chb/DEMO-CHB1", "analyst-chb-evaluation", "Against a control area and a buffer"),
        ("/disruptions", "analyst-disruptions", "By 4P: what happened in the ward after"),
    ):
        visit.open(path, shot)
        assert heading in visit.page.inner_text("main")
        violations = visit.axe()
        assert not violations, (path, [(v["id"], v["help"]) for v in violations])
    visit.close()
