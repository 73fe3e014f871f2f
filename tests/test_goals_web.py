"""Goals and funnels on the site settings page: add, rename, reorder, delete (CSRF on every
form, nothing saved on bad input), broken funnels shown and fixed, and suggestions from the
site's own recent events."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import add_user, csrf_token, log_in, post_form, store_events
from tracker.db.models import Funnel
from tracker.goals import add_funnel, add_goal, list_goals
from tracker.sites import add_site, find_site

SITE = "shop.example"
SETTINGS = f"/sites/{SITE}/settings"


@pytest.fixture
def owner_client(client, db):
    owner = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=owner)
    log_in(client, owner)
    return client


def _names(db) -> list[str]:
    with db.session() as session:
        return [g.name for g in list_goals(session, find_site(session, SITE))]


def _ids(db) -> dict[str, int]:
    with db.session() as session:
        return {g.name: g.id for g in list_goals(session, find_site(session, SITE))}


def _section(page: str, anchor: str) -> str:
    return page.split(f'id="{anchor}"')[1].split("</section>")[0]


def _errors(html: str) -> list[str]:
    return re.findall(r'<p class="error">([^<]*)', html)


def _post(client, path: str, **data: str):
    return post_form(client, SETTINGS + path, **data)


def test_add_goals_of_each_kind(owner_client, db) -> None:
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert "No goals yet." in _section(page, "goals")
    added = _post(owner_client, "/goals", name="Thanks", kind="page", pattern="/thank-you")
    assert added.status_code == 302 and added.location.endswith("#goals")
    flashed = owner_client.get(added.location).get_data(as_text=True)
    assert "Goal &#39;Thanks&#39; added: Visit /thank-you. It counts past data too." in flashed
    _post(
        owner_client, "/goals", name="Pro", kind="event", event_name="Signup", prop_key="plan",
        prop_value="pro", currency="eur",
    )  # fmt: skip
    _post(owner_client, "/goals", name="Calendly", kind="click", pattern="https://calendly.com/*")
    assert _names(db) == ["Thanks", "Pro", "Calendly"]
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    goals = _section(page, "goals")
    assert "Visit /thank-you" in goals
    assert "Event Signup where plan = pro · revenue in EUR" in goals
    assert "Click https://calendly.com/*" in goals


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "kind": "page", "pattern": "/x"}, "The goal name is required."),
        ({"name": "G", "kind": "page", "pattern": ""}, "The page pattern is required."),
        ({"name": "G", "kind": "page", "pattern": "thanks"}, "must start with /"),
        ({"name": "G", "kind": "page", "pattern": "/" + "x" * 500}, "at most 500 characters"),
        ({"name": "G", "kind": "page", "pattern": "/a\tb"}, "control characters"),
        ({"name": "G", "kind": "click", "pattern": ""}, "link target pattern is required"),
        ({"name": "G", "kind": "click", "pattern": "*\x01"}, "control characters"),
        ({"name": "G", "kind": "event", "event_name": ""}, "The event name is required."),
        ({"name": "G", "kind": "event", "event_name": "S", "prop_value": "pro"}, "both a key"),
        ({"name": "G", "kind": "page", "pattern": "/x", "currency": "EU"}, "ISO 4217"),
        ({"name": "G", "kind": "teleport", "pattern": "/x"}, "Not a valid choice"),
        ({"name": "Existing", "kind": "page", "pattern": "/y"}, "already used on this site"),
    ],
)
def test_bad_goals_show_a_form_error_and_nothing_is_saved(owner_client, db, data, message):
    with db.session() as session:
        add_goal(session, find_site(session, SITE), name="Existing", kind="page", pattern="/e")
    response = _post(owner_client, "/goals", **data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert any(message in error for error in _errors(html)), _errors(html)
    assert _names(db) == ["Existing"]
    if data.get("pattern"):  # the form keeps what was typed, escaped
        assert 'name="pattern"' in html


def test_names_are_escaped(owner_client, db) -> None:
    _post(owner_client, "/goals", name="<b>Buy</b>", kind="click", pattern="<i>*")
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert "&lt;b&gt;Buy&lt;/b&gt;" in page and "<b>Buy</b>" not in page
    assert "Click &lt;i&gt;*" in page and "<i>*" not in page


def test_rename_move_and_delete(owner_client, db) -> None:
    for name in ("A", "B", "C"):
        _post(owner_client, "/goals", name=name, kind="page", pattern=f"/{name}")
    ids = _ids(db)
    renamed = _post(owner_client, f"/goals/{ids['B']}/rename", name=" Bee ")
    assert renamed.status_code == 302 and _names(db) == ["A", "Bee", "C"]
    clash = _post(owner_client, f"/goals/{ids['B']}/rename", name="a")
    assert clash.status_code == 400
    assert "The goal name &#39;a&#39; is already used on this site." in _errors(
        clash.get_data(as_text=True)
    )
    empty = _post(owner_client, f"/goals/{ids['B']}/rename", name="")
    assert empty.status_code == 400 and _names(db) == ["A", "Bee", "C"]

    assert _post(owner_client, f"/goals/{ids['C']}/move/up").status_code == 302
    assert _names(db) == ["A", "C", "Bee"]
    _post(owner_client, f"/goals/{ids['C']}/move/up")
    _post(owner_client, f"/goals/{ids['C']}/move/up")  # already first: nothing happens
    assert _names(db) == ["C", "A", "Bee"]
    _post(owner_client, f"/goals/{ids['A']}/move/down")
    assert _names(db) == ["C", "Bee", "A"]
    assert _post(owner_client, f"/goals/{ids['A']}/move/sideways").status_code == 404
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    goals = _section(page, "goals")
    assert goals.index("<strong>C</strong>") < goals.index("<strong>Bee</strong>")

    deleted = _post(owner_client, f"/goals/{ids['A']}/delete")
    assert deleted.status_code == 302 and _names(db) == ["C", "Bee"]
    assert "Goal &#39;A&#39; deleted" in owner_client.get(deleted.location).get_data(as_text=True)
    assert _post(owner_client, f"/goals/{ids['A']}/delete").status_code == 404


def test_every_goal_form_needs_csrf(owner_client, db) -> None:
    with db.session() as session:
        site = find_site(session, SITE)
        a = add_goal(session, site, name="A", kind="page", pattern="/a")
        b = add_goal(session, site, name="B", kind="page", pattern="/b")
        funnel = add_funnel(session, site, name="F", steps=[a.id, b.id])
    posts = {
        "/goals": {"name": "X", "kind": "page", "pattern": "/x"},
        f"/goals/{a.id}/rename": {"name": "Y"},
        f"/goals/{b.id}/move/up": {},
        f"/goals/{a.id}/delete": {},
        "/funnels": {"name": "G", "step_1": str(a.id), "step_2": str(b.id)},
        f"/funnels/{funnel.id}": {f"f{funnel.id}-name": "H", f"f{funnel.id}-step_1": str(b.id)},
        f"/funnels/{funnel.id}/delete": {},
    }
    for path, data in posts.items():
        assert owner_client.post(SETTINGS + path, data=data).status_code == 400, path
    assert _names(db) == ["A", "B"]
    with db.session() as session:
        funnels = list(session.scalars(select(Funnel)))
        assert [(f.name, f.steps) for f in funnels] == [("F", [a.id, b.id])]


def test_another_users_site_is_not_found(client, db) -> None:
    stranger = add_user(db, "stranger@example.com", admin=False)
    owner = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        site = add_site(session, SITE, owner=owner)
        goal = add_goal(session, site, name="A", kind="page", pattern="/a")
    log_in(client, stranger)
    token = csrf_token(client, "/sites")
    for path in ("/goals", f"/goals/{goal.id}/delete", "/funnels"):
        response = client.post(SETTINGS + path, data={"csrf_token": token, "name": "X"})
        assert response.status_code == 404, path
    assert _names(db) == ["A"]


def test_funnels_add_break_fix_and_delete(owner_client, db) -> None:
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    assert "add at least two goals first" in _section(page, "funnels")
    for name in ("Pricing", "Signup", "Paid"):
        _post(owner_client, "/goals", name=name, kind="page", pattern=f"/{name.lower()}")
    ids = _ids(db)
    # Steps are taken in order; empty selects are skipped.
    added = _post(
        owner_client, "/funnels", name="Checkout", step_1=str(ids["Pricing"]),
        step_3=str(ids["Signup"]), step_5=str(ids["Paid"]),
    )  # fmt: skip
    assert added.status_code == 302 and added.location.endswith("#funnels")
    with db.session() as session:
        assert session.scalar(select(Funnel.steps)) == [ids["Pricing"], ids["Signup"], ids["Paid"]]
    funnels = _section(owner_client.get(SETTINGS).get_data(as_text=True), "funnels")
    assert "Pricing → Signup → Paid" in funnels and "Broken" not in funnels

    # Deleting a goal a funnel uses: allowed, the funnel is shown broken with a fix link.
    deleted = _post(owner_client, f"/goals/{ids['Signup']}/delete")
    assert deleted.location.endswith("#funnels")
    page = owner_client.get(deleted.location)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Funnel &#39;Checkout&#39; used it and is now broken" in html
    funnels = _section(html, "funnels")
    assert 'Pricing → <span class="bad">(deleted goal)</span> → Paid' in funnels
    with db.session() as session:
        funnel_id = session.scalar(select(Funnel.id))
    assert "Broken: Step 2: its goal was deleted." in funnels
    assert f'<a href="#funnel-edit-{funnel_id}">Fix it</a>' in funnels
    assert f'<details id="funnel-edit-{funnel_id}" open>' in funnels

    # Fixing it: the edit form, which refuses a single step and saves two.
    prefix = f"f{funnel_id}-"
    token = csrf_token(owner_client, SETTINGS)
    edit = f"/funnels/{funnel_id}"
    one = owner_client.post(
        SETTINGS + edit,
        data={f"{prefix}csrf_token": token, f"{prefix}name": "Checkout",
              f"{prefix}step_1": str(ids["Pricing"])},
    )  # fmt: skip
    assert one.status_code == 400
    assert "A funnel has 2 to 8 steps (got 1)." in _errors(one.get_data(as_text=True))
    fixed = owner_client.post(
        SETTINGS + edit,
        data={f"{prefix}csrf_token": token, f"{prefix}name": "Checkout",
              f"{prefix}step_1": str(ids["Pricing"]), f"{prefix}step_2": str(ids["Paid"])},
    )  # fmt: skip
    assert fixed.status_code == 302
    funnels = _section(owner_client.get(SETTINGS).get_data(as_text=True), "funnels")
    assert "Pricing → Paid" in funnels and "Broken" not in funnels

    assert _post(owner_client, f"/funnels/{funnel_id}/delete").status_code == 302
    assert "No funnels yet." in _section(
        owner_client.get(SETTINGS).get_data(as_text=True), "funnels"
    )


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (["Pricing"], "A funnel has 2 to 8 steps (got 1)."),
        (["Pricing", "Pricing"], "Steps 1 and 2 are the same goal: remove one."),
        (["Pricing", "999999"], "Step 2 is not one of this site's goals."),
        (["Pricing", "abc"], "Step 2 is not one of this site's goals."),
    ],
)
def test_bad_funnels_show_a_form_error_and_nothing_is_saved(owner_client, db, steps, message):
    for name in ("Pricing", "Paid"):
        _post(owner_client, "/goals", name=name, kind="page", pattern=f"/{name.lower()}")
    ids = _ids(db)
    data = {f"step_{n}": str(ids.get(step, step)) for n, step in enumerate(steps, 1)}
    response = _post(owner_client, "/funnels", name="F", **data)
    assert response.status_code == 400
    assert message.replace("'", "&#39;") in _errors(response.get_data(as_text=True))
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Funnel)) == 0


def test_suggestions_from_stored_events(app, owner_client, db) -> None:
    now = datetime.now(UTC)
    base = f"https://{SITE}"

    def at(minutes: int) -> str:
        return (now - timedelta(minutes=minutes)).isoformat()

    events = [
        *({"type": "event", "name": "Signup", "props": {"plan": "pro"}, "timestamp": at(m),
           "ip": f"203.0.113.{m}"} for m in range(1, 4)),
        {"type": "event", "name": "Newsletter", "timestamp": at(5)},
        *({"type": "click", "name": "Outbound Link", "target": "https://x.example/",
           "timestamp": at(m)} for m in range(10, 15)),
        *({"url": f"{base}/pricing", "timestamp": at(m), "ip": f"203.0.113.{m}"}
          for m in range(20, 24)),
        {"url": f"{base}/", "timestamp": at(30)},
        {"url": f"{base}/thank-you/42", "timestamp": at(31)},
        {"type": "event", "name": "Old", "timestamp": (now - timedelta(days=40)).isoformat()},
    ]  # fmt: skip
    store_events(app, events, site=SITE)
    with db.session() as session:
        add_goal(session, find_site(session, SITE), name="Thanks", kind="page",
                 pattern="/thank-you/*")  # fmt: skip
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    goals = _section(page, "goals")
    assert "Suggested from your data" in goals
    suggested = goals.split("Suggested from your data")[1].split("Add a goal")[0]
    items = re.findall(r"<span>(.*?)</span>", suggested)
    assert items == [
        "Event <strong>Signup</strong> · 3 events",
        "Event <strong>Newsletter</strong> · 1 event",
        "Page <strong>/pricing</strong> · 4 pageviews",
    ]  # no clicks, no home page, no page a goal covers, nothing older than 30 days

    # One click adds it (the button posts the suggestion's hidden fields).
    form = suggested.split("Signup</strong>")[1].split("</form>")[0]
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form))
    assert fields["kind"] == "event" and fields["event_name"] == "Signup"
    assert owner_client.post(SETTINGS + "/goals", data=fields).status_code == 302
    fields = dict(
        re.findall(
            r'name="([a-z_]+)" value="([^"]*)"',
            suggested.split("/pricing</strong>")[1].split("</form>")[0],
        )
    )
    assert owner_client.post(SETTINGS + "/goals", data=fields).status_code == 302
    with db.session() as session:
        goals_now = list_goals(session, find_site(session, SITE))
        assert [(g.name, g.kind, g.event_name, g.pattern) for g in goals_now] == [
            ("Thanks", "page", "", "/thank-you/*"),
            ("Signup", "event", "Signup", ""),
            ("Visit /pricing", "page", "", "/pricing"),
        ]
    page = owner_client.get(SETTINGS).get_data(as_text=True)
    suggested = _section(page, "goals").split("Suggested from your data")[1].split("Add a goal")[0]
    assert "Signup" not in suggested and "/pricing" not in suggested
    assert "Newsletter" in suggested
