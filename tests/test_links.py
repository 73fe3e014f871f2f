"""The UTM link builder: building (encoding, the base URL's query and fragment, case),
validation, warnings against the site's visits and ad cost rows, saved links, and the page
(who may build, save and delete; CSRF; escaping)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from tests.helpers import add_user, csrf_token, log_in, store_events
from tracker.db.models import AdCost, UtmLink
from tracker.links import (
    LinkError,
    build_link,
    delete_link,
    link_warnings,
    list_links,
    save_link,
    saved_url,
)
from tracker.members import OWNER, add_member
from tracker.sites import add_site, delete_site, find_site
from tracker.stats import site_ref
from tracker.stats.rollups import refresh_site

SITE = "shop.example"
PAGE = f"/sites/{SITE}/links"
TAGS = {"source": "newsletter", "medium": "email", "campaign": "spring_sale"}


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


# Building


def test_values_are_percent_encoded_and_read_back_exactly() -> None:
    values = {
        "source": "news letter",
        "medium": "e-mail+sms",
        "campaign": "black friday & cyber monday #1",
        "term": "été/ski 50%",
        "content": "日本語",
    }
    link = build_link("https://shop.example/pricing", values)
    assert link.url == (
        "https://shop.example/pricing?utm_source=news%20letter&utm_medium=e-mail%2Bsms"
        "&utm_campaign=black%20friday%20%26%20cyber%20monday%20%231"
        "&utm_term=%C3%A9t%C3%A9%2Fski%2050%25&utm_content=%E6%97%A5%E6%9C%AC%E8%AA%9E"
    )
    # What the collector reads from the landing (parse_qsl) is exactly what was typed.
    assert _query(link.url) == [(f"utm_{k}", v) for k, v in values.items()]
    assert urlsplit(link.url).fragment == ""


def test_the_base_urls_query_and_fragment_are_kept_and_tags_go_before_the_fragment() -> None:
    link = build_link("https://shop.example/p?ref=home&q=a+b&flag#top?x=1", TAGS)
    assert link.url == (
        "https://shop.example/p?ref=home&q=a+b&flag"
        "&utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale#top?x=1"
    )
    assert link.base_url == "https://shop.example/p?ref=home&q=a+b&flag#top?x=1"


def test_existing_utm_parameters_are_replaced() -> None:
    base = "https://shop.example/?utm_source=old&page=2&UTM_Campaign=old&utm_term=x&utm_id=7"
    link = build_link(base, {**TAGS, "content": "footer"})
    assert _query(link.url) == [
        ("page", "2"),
        ("utm_source", "newsletter"),
        ("utm_medium", "email"),
        ("utm_campaign", "spring_sale"),
        ("utm_content", "footer"),
    ]


def test_a_bare_host_gets_a_root_path_and_the_path_is_encoded() -> None:
    assert build_link("https://shop.example", TAGS).url.startswith("https://shop.example/?utm_")
    link = build_link("HTTPS://shop.example:8443/café menu/%C3%A9", TAGS)
    assert link.url.startswith("https://shop.example:8443/caf%C3%A9%20menu/%C3%A9?utm_source=")


def test_values_are_trimmed_and_lower_cased_unless_case_is_kept() -> None:
    values = {"source": "  Facebook ", "medium": "CPC", "campaign": " Spring Sale", "term": " "}
    link = build_link(" https://shop.example/ ", values)
    assert link.base_url == "https://shop.example/"
    assert link.tags == {
        "source": "facebook",
        "medium": "cpc",
        "campaign": "spring sale",
        "term": "",
        "content": "",
    }
    assert "utm_term" not in link.url and "utm_content" not in link.url
    kept = build_link("https://shop.example/", values, keep_case=True)
    assert (kept.tags["source"], kept.tags["medium"], kept.tags["campaign"]) == (
        "Facebook",
        "CPC",
        "Spring Sale",
    )
    assert "utm_source=Facebook&utm_medium=CPC&utm_campaign=Spring%20Sale" in kept.url


@pytest.mark.parametrize(
    ("base_url", "values", "errors"),
    [
        (
            "",
            TAGS,
            {"base_url": "The page address is required (e.g. https://example.com/pricing)."},
        ),
        (
            "shop.example/pricing",
            TAGS,
            {
                "base_url": "The page address must start with http:// or https:// "
                "(e.g. https://shop.example/pricing)."
            },
        ),
        (
            "ftp://shop.example/",
            TAGS,
            {
                "base_url": "The page address must start with http:// or https:// "
                "(e.g. https://example.com/pricing)."
            },
        ),
        (
            "https:///pricing",
            TAGS,
            {"base_url": "The page address must name a host, as in https://example.com/pricing."},
        ),
        ("https://shop.example:99999/", TAGS, {"base_url": "The page address is not a valid URL."}),
        (
            "https://shop.example/\nnext",
            TAGS,
            {
                "base_url": "The page address must not contain control characters "
                "(tabs, line breaks)."
            },
        ),
        (
            "https://shop.example/",
            {"term": "x"},
            {
                "source": "Source is required.",
                "medium": "Medium is required.",
                "campaign": "Campaign is required.",
            },
        ),
        (
            "https://shop.example/",
            {**TAGS, "campaign": "x" * 256},
            {"campaign": "Campaign must be at most 255 characters (got 256)."},
        ),
        (
            "https://shop.example/",
            {**TAGS, "content": "a\tb"},
            {"content": "Content must not contain control characters (tabs, line breaks)."},
        ),
        (
            "https://shop.example/" + "p" * 1990,
            {**TAGS, "source": "  "},
            {
                "base_url": "The page address must be at most 2000 characters (got 2011).",
                "source": "Source is required.",
            },
        ),
    ],
)
def test_bad_input_is_refused_naming_every_field(base_url, values, errors) -> None:
    with pytest.raises(LinkError) as caught:
        build_link(base_url, values)
    assert caught.value.errors == errors
    assert str(caught.value) == " ".join(errors.values())


def test_limits_are_inclusive() -> None:
    link = build_link("https://shop.example/", {**TAGS, "campaign": "x" * 255})
    assert link.tags["campaign"] == "x" * 255


# Warnings: both databases


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


@pytest.fixture
def site(db):
    with db.session() as session:
        add_site(session, SITE)
        site = find_site(session, SITE)
        site.allowed_hostnames = ["checkout.example.net"]
    with db.session() as session:
        return find_site(session, SITE)


def _store_tagged_visits(app, *, old: bool = True) -> None:
    base = f"https://{SITE}/"
    spring = "utm_source=Facebook&utm_medium=cpc&utm_campaign=Spring%20Sale"
    events = [
        {"url": f"{base}?{spring}", "ip": "203.0.113.1", "timestamp": _ago(1)},
        {"url": f"{base}?{spring}", "ip": "203.0.113.2", "timestamp": _ago(2)},
        {
            "url": f"{base}?utm_source=newsletter&utm_medium=email&utm_campaign=springsale",
            "ip": "203.0.113.3",
            "timestamp": _ago(3),
        },
    ]
    if old:  # older than the 90 days looked at
        events.append(
            {
                "url": f"{base}?utm_source=Twitter&utm_medium=social&utm_campaign=Old",
                "ip": "203.0.113.4",
                "timestamp": _ago(100),
            }
        )
    store_events(app, events, site=SITE)


def _warnings(db, site, base_url="https://shop.example/", keep_case=False, **values):
    link = build_link(base_url, {**TAGS, **values}, keep_case=keep_case)
    return [(w.field, w.use, w.message) for w in link_warnings(db, site, link)]


@pytest.mark.parametrize("rollups", [False, True], ids=["raw", "rollups"])
def test_warns_about_spellings_of_recent_visits(app, db, site, rollups) -> None:
    # Rollups are built from the first visit's day on: without the 100-day-old visit, the
    # job builds 4 days, not 101 (half a minute).
    _store_tagged_visits(app, old=not rollups)
    if rollups:  # the days before today are then read from the rollups
        assert refresh_site(db, site_ref(site)) is not None
    warnings = _warnings(db, site, source="facebook", medium="cpc", campaign="Spring  Sale")
    assert warnings == [
        (
            "source",
            "Facebook",
            "Source 'facebook' differs only by letter case or spaces from 'Facebook', used in "
            "2 visits of the last 90 days: reports would show them as two rows.",
        ),
        # "spring  sale" (two spaces), "Spring Sale" and "springsale": most visits first.
        (
            "campaign",
            "Spring Sale",
            "Campaign 'spring  sale' differs only by letter case or spaces from 'Spring Sale', "
            "used in 2 visits of the last 90 days: reports would show them as two rows.",
        ),
        (
            "campaign",
            "springsale",
            "Campaign 'spring  sale' differs only by letter case or spaces from 'springsale', "
            "used in 1 visit of the last 90 days: reports would show them as two rows.",
        ),
    ]
    # The exact spelling already in use adds no row: no warning, even beside other spellings.
    assert _warnings(db, site, source="Facebook", campaign="springsale", keep_case=True) == []
    # Visits older than 90 days (stored in the raw case) are not looked at.
    assert _warnings(db, site, source="twitter", campaign="old") == []


def test_warns_about_spellings_of_ad_cost_rows(app, db, site) -> None:
    with db.session() as session:
        for number, (day, campaign, label) in enumerate(
            [
                (date.today() - timedelta(days=3), "black friday", "Black Friday"),
                (date.today() - timedelta(days=200), "old promo", "Old Promo"),
            ]
        ):
            session.add(
                AdCost(
                    site_id=site.id,
                    row_key=f"row{number}",
                    day=day,
                    source="facebook",
                    medium="paid social",
                    campaign=campaign,
                    campaign_label=label,
                    cost_minor=12_345,
                    currency="EUR",
                )
            )
    warnings = _warnings(
        db, site, source="Facebook", medium="paidsocial", campaign="blackfriday", keep_case=True
    )
    assert warnings == [
        (
            "source",
            "facebook",
            "Source 'Facebook' differs only by letter case or spaces from 'facebook', used in "
            "ad cost rows: reports would show them as two rows.",
        ),
        (
            "medium",
            "paid social",
            "Medium 'paidsocial' differs only by letter case or spaces from 'paid social', "
            "used in ad cost rows: reports would show them as two rows.",
        ),
        # Cost rows are stored case-folded; the campaign is offered as the platform named it.
        (
            "campaign",
            "Black Friday",
            "Campaign 'blackfriday' differs only by letter case or spaces from 'Black Friday', "
            "used in ad cost rows: reports would show them as two rows.",
        ),
    ]
    assert _warnings(db, site, medium="paid social", campaign="Black Friday", keep_case=True) == []
    assert _warnings(db, site, campaign="old promo") == []  # 200 days ago


def test_a_spelling_in_visits_and_cost_rows_says_both(app, db, site) -> None:
    _store_tagged_visits(app)
    with db.session() as session:
        session.add(
            AdCost(
                site_id=site.id, row_key="r", day=date.today(), source="facebook",
                medium="cpc", campaign="spring sale", campaign_label="Spring Sale",
                cost_minor=500, currency="EUR",
            )
        )  # fmt: skip
    # "facebook" is the cost rows' spelling: no warning for the source.
    spring, spring_together = _warnings(
        db, site, source="facebook", campaign="SPRING SALE", keep_case=True
    )
    assert spring[:2] == ("campaign", "Spring Sale")
    assert "from 'Spring Sale', used in 2 visits of the last 90 days and ad cost rows:" in spring[2]
    assert spring_together[:2] == ("campaign", "springsale")


@pytest.mark.parametrize(
    ("base_url", "warned"),
    [
        ("https://shop.example/", False),
        ("https://www.shop.example/a", False),
        ("https://blog.shop.example/a", False),
        ("https://Checkout.Example.NET/pay", False),
        ("https://other.example/", True),
        ("https://evilshop.example/", True),
    ],
)
def test_warns_about_hosts_the_script_does_not_count(db, site, base_url, warned) -> None:
    warnings = _warnings(db, site, base_url=base_url)
    if not warned:
        assert warnings == []
        return
    host = urlsplit(base_url).hostname
    assert warnings == [
        (
            "base_url",
            None,
            f"{host} is not shop.example, one of its subdomains or an allowed hostname: the "
            "tracking script on that page will not count these visits for shop.example. If "
            "your pages are served there, add the host to the site's allowed hostnames.",
        )
    ]


# Saved links


def test_save_list_and_delete(db, site) -> None:
    first = build_link("https://shop.example/a?x=1#f", TAGS)
    second = build_link("https://shop.example/b", {**TAGS, "content": "Footer"}, keep_case=True)
    with db.session() as session:
        older = save_link(session, site, first)
        newer = save_link(session, site, second)
        again = save_link(session, site, first)  # the same link twice is kept once
        older_id, newer_id = older.id, newer.id
        assert again.id == older_id
    with db.session() as session:
        links = list_links(session, site)
        assert [link.id for link in links] == [newer_id, older_id]
        assert [saved_url(link) for link in links] == [second.url, first.url]
        assert (links[0].content, links[1].base_url) == ("Footer", "https://shop.example/a?x=1#f")
        other = add_site(session, "other.example")
        assert not delete_link(session, other, older_id)  # not that site's link
        assert delete_link(session, site, older_id)
        assert not delete_link(session, site, older_id)
    with db.session() as session:
        assert [link.id for link in list_links(session, site)] == [newer_id]
        delete_site(session, find_site(session, SITE))
    with db.session() as session:
        assert session.scalars(select(UtmLink)).all() == []


# The page


def _input_values(html: str) -> dict[str, str]:
    return {
        id_: unescape(value)
        for id_, value in re.findall(
            r'<input readonly id="([^"]+)" class="snippet"[^>]* value="([^"]*)"', html
        )
    }


def _section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"')[1].split("</section>")[0]


@pytest.fixture
def owner_client(client, db, site):
    owner = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_member(session, find_site(session, SITE), owner, OWNER)
    log_in(client, owner)
    return client


def test_owner_builds_saves_and_deletes_a_link(owner_client, db) -> None:
    page = owner_client.get(PAGE).get_data(as_text=True)
    assert "No saved links yet." in page and 'id="built"' not in page
    args = {"base_url": "https://shop.example/?ref=1", **TAGS, "source": " News Letter "}
    response = owner_client.get(PAGE, query_string=args)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    url = (
        "https://shop.example/?ref=1&utm_source=news%20letter&utm_medium=email"
        "&utm_campaign=spring_sale"
    )
    assert _input_values(_section(html, "built")) == {"built-link": url}
    assert 'data-copy="built-link" hidden>Copy</button>' in html
    assert "Save link" in html

    token = csrf_token(owner_client, PAGE)
    saved = owner_client.post(
        PAGE, data={"csrf_token": token, **args, "campaign": "Second", "keep_case": "y"}
    )
    assert saved.status_code == 302 and saved.location.endswith("#saved")
    owner_client.post(PAGE, data={"csrf_token": token, **args})
    html = owner_client.get(PAGE).get_data(as_text=True)
    assert "Link saved." in html
    with db.session() as session:
        ids = [link.id for link in list_links(session, find_site(session, SITE))]
    # Newest first; values kept as they went into the URL (trimmed, lower-cased by default).
    assert _input_values(_section(html, "saved")) == {
        f"saved-{ids[0]}": url,
        f"saved-{ids[1]}": url.replace("news%20letter", "News%20Letter").replace(
            "spring_sale", "Second"
        ),
    }

    deleted = owner_client.post(f"{PAGE}/{ids[0]}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302
    assert "Link deleted." in owner_client.get(deleted.location).get_data(as_text=True)
    with db.session() as session:
        assert [link.id for link in list_links(session, find_site(session, SITE))] == [ids[1]]
    assert (
        owner_client.post(f"{PAGE}/{ids[0]}/delete", data={"csrf_token": token}).status_code == 404
    )


def test_errors_show_under_their_fields_and_nothing_is_saved(owner_client, db) -> None:
    response = owner_client.get(PAGE, query_string={"base_url": "shop.example", "source": "x"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    errors = re.findall(r'<span class="error">([^<]*)</span>', html)
    assert errors == [
        "The page address must start with http:// or https:// (e.g. https://shop.example).",
        "Medium is required.",
        "Campaign is required.",
    ]
    assert 'id="built"' not in html
    token = csrf_token(owner_client, PAGE)
    refused = owner_client.post(PAGE, data={"csrf_token": token, "base_url": "https://x.example/"})
    assert refused.status_code == 400 and "Source is required." in refused.get_data(as_text=True)
    without_token = owner_client.post(PAGE, data={"base_url": "https://shop.example/", **TAGS})
    assert without_token.status_code == 400
    with db.session() as session:
        assert session.scalars(select(UtmLink)).all() == []


def test_warnings_offer_the_existing_spelling(app, owner_client, db) -> None:
    _store_tagged_visits(app)
    args = {"base_url": "https://other.example/", **TAGS, "source": "FaceBook"}
    html = owner_client.get(PAGE, query_string=args).get_data(as_text=True)
    warnings = _section(html, "built").split('class="link-warnings"')[1]
    assert "other.example is not shop.example" in warnings
    assert (
        "Source &#39;facebook&#39; differs only by letter case or spaces from &#39;Facebook&#39;"
        in warnings
    )
    [use] = re.findall(r'<a href="([^"]+)">Use Facebook</a>', warnings)
    # The offer rebuilds the same link with the existing spelling, its case kept.
    offered = owner_client.get(unescape(use)).get_data(as_text=True)
    assert _input_values(_section(offered, "built")) == {
        "built-link": "https://other.example/?utm_source=Facebook&utm_medium=email"
        "&utm_campaign=spring_sale"
    }
    assert "differs only by" not in offered


def test_values_are_escaped(owner_client) -> None:
    evil = '"><script>alert(1)</script>'
    args = {"base_url": f"https://shop.example/?q={evil}", **TAGS, "campaign": evil}
    html = owner_client.get(PAGE, query_string=args | {"keep_case": "y"}).get_data(as_text=True)
    assert "<script>alert(1)" not in html
    [url] = _input_values(_section(html, "built")).values()
    assert _query(url)[-1] == ("utm_campaign", evil)


def test_viewers_build_and_copy_but_cannot_save_or_delete(client, db, site) -> None:
    with db.session() as session:
        find_site(session, SITE).public = True
        saved = save_link(
            session, find_site(session, SITE), build_link("https://shop.example/", TAGS)
        )
        link_id = saved.id
    args = {"base_url": "https://shop.example/", **TAGS, "campaign": "viewer"}
    viewer = add_user(db, "viewer@example.com", admin=False)

    for who in ("anonymous", "another user"):
        if who == "another user":
            log_in(client, viewer)
        html = client.get(PAGE, query_string=args).get_data(as_text=True)
        assert _input_values(_section(html, "built"))["built-link"].endswith("utm_campaign=viewer")
        assert f'id="saved-{link_id}"' in html  # saved links are listed for copying
        assert "Save link" not in html and "Delete" not in html
        # A valid token of this session (the page itself has no form to post).
        token = csrf_token(client, "/login" if who == "anonymous" else PAGE)
        save = client.post(PAGE, data={"csrf_token": token, **args})
        delete = client.post(f"{PAGE}/{link_id}/delete", data={"csrf_token": token})
        # Anonymous: the login page; logged in without rights: 404, as for settings.
        expected = 302 if who == "anonymous" else 404
        assert (save.status_code, delete.status_code) == (expected, expected)
    with db.session() as session:
        assert [link.campaign for link in session.scalars(select(UtmLink))] == ["spring_sale"]


def test_private_sites_links_page_is_hidden_from_others(client, db, site) -> None:
    log_in(client, add_user(db, "stranger@example.com", admin=False))
    assert client.get(PAGE).status_code == 404


def test_the_stats_page_links_to_the_builder(app, owner_client) -> None:
    store_events(app, [{"url": f"https://{SITE}/"}], site=SITE)
    html = owner_client.get(f"/sites/{SITE}").get_data(as_text=True)
    assert f'<a href="{PAGE}">Campaign links</a>' in html
