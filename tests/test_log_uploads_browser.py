"""The settings page's Import section in a real browser: upload a log, watch the progress
follow the jobs process until the summary shows, at phone and desktop widths."""

from pathlib import Path

import pytest

from tests.browser import logged_in_context, wait_for
from tests.helpers import add_user
from tests.test_accesslog_load import LINES
from tracker.jobs import find_job
from tracker.sites import add_site

# What a browser runs does not depend on the database: SQLite only, to keep the suite quick.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

PASSWORD = "correct horse"
SITE = "example.com"


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1440, 900)])
def test_upload_progress_and_summary(app, db, browser, live_server, tmp_path: Path, width, height):
    owner = add_user(db, "owner@example.com", PASSWORD)
    with db.session() as session:
        add_site(session, SITE, owner=owner)
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(LINES))
    context = logged_in_context(
        browser, live_server, "owner@example.com", viewport={"width": width, "height": height}
    )
    page = context.new_page()
    # The page's clock is the test's to move on: its poll of status.json comes once the
    # import is done, not up to 2 s later.
    page.clock.install()
    page.goto(f"{live_server.url}/sites/{SITE}/settings#import")
    assert page.locator("#import .empty").inner_text() == "No access log imported yet."
    page.set_input_files("#import-logs input[type=file]", str(log))
    page.click("#import-logs button")
    page.wait_for_url("**/settings#import")
    assert page.locator("#import tr[data-state=waiting] [data-label]").inner_text() == "waiting"
    # The jobs process imports it; the page, polling, reloads to show the summary.
    find_job("import_uploaded_logs").func(db, app.extensions["tracker.settings"])
    page.clock.run_for(2000)
    summary = wait_for(lambda: page.locator("#import pre.summary").count(), timeout=20)
    assert summary == 1
    # The summary is there once the reloaded page is parsed, its stylesheet maybe not yet:
    # measured before, the unwrapped summary ran 912 px wide on a phone (CI, once).
    page.wait_for_load_state("load")
    text = page.locator("#import pre.summary").inner_text()
    assert text.startswith("access.log (combined): 13 lines read, 7 pages, 5 visits")
    # Nothing of the section wider than the screen: the summary wraps, the form fits.
    widest = page.evaluate(
        "Math.max(...[...document.querySelectorAll('#import, #import *')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= width
    context.close()
