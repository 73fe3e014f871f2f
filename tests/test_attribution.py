"""Attribution a marketer can trust: sources, channels, case folding, reclassification.

The tables are ours, written from public facts: GA4's published default channel group
rules (support.google.com/analytics/answer/9756891) and the hosts that search engines,
webmail, social networks and ad servers refer from (tests/data/referrers.tsv).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session

from tests.helpers import store_events
from tracker.cli import cli
from tracker.db import Database
from tracker.db.migrate import upgrade
from tracker.db.models import Site, Visit
from tracker.enrich.source import DIRECT, attribute, canonical_source, source_table
from tracker.stats import parse_query, run
from tracker.stats.query import site_ref
from tracker.stats.rollups import refresh_site

# Yesterday (UTC): rollups are built from a site's first day to today.
DAY = datetime.now(UTC).date() - timedelta(days=1)
REFERRERS = [
    line.split("\t")
    for line in (Path(__file__).parent / "data" / "referrers.tsv").read_text().splitlines()
    if line and not line.startswith("#")
]


@pytest.mark.parametrize(("referrer", "source", "channel"), REFERRERS, ids=lambda v: v[:40])
def test_referrer_source_and_channel(referrer: str, source: str, channel: str) -> None:
    result = attribute("", referrer, is_same_site=False)
    assert (result.source, result.channel) == (source, channel)


def test_referrer_table_is_broad() -> None:
    channels = {channel for _, _, channel in REFERRERS}
    assert len(REFERRERS) >= 150
    assert {"Organic Search", "Organic Social", "Email", "Paid Search", "Display"} <= channels


@pytest.mark.parametrize(
    ("query", "referrer", "channel"),
    [
        # Direct: no source, no medium, no campaign.
        ("", "", "Direct"),
        ("utm_campaign=spring", "", "Direct"),
        # Cross-network: the campaign name says so, whatever else.
        ("utm_source=google&utm_medium=cpc&utm_campaign=Cross-Network-Q1", "", "Cross-network"),
        # Shopping: a shopping source, or a campaign name with shop/shopping.
        ("utm_campaign=shopping&utm_medium=paid", "", "Paid Shopping"),
        ("utm_medium=paid", "https://www.shopify.com/", "Paid Shopping"),
        ("utm_source=walmart", "", "Organic Shopping"),
        ("utm_campaign=summer-shop", "", "Organic Shopping"),
        ("utm_campaign=workshop", "", "Direct"),  # "workshop" is not a shop
        # Paid search, social, video from a paid medium or a paid marker in the source.
        ("utm_medium=paid", "https://duckduckgo.com/", "Paid Search"),
        ("utm_source=google_ads", "", "Paid Search"),
        ("utm_source=Google-Ads", "", "Paid Search"),
        ("utm_source=adwords", "https://www.google.com/", "Paid Search"),
        ("utm_source=bingads", "", "Paid Search"),
        ("utm_source=fb-ads", "https://l.facebook.com/", "Paid Social"),
        ("utm_source=fbad", "", "Paid Social"),
        ("utm_source=facebook_ads&utm_medium=social", "", "Paid Social"),
        ("utm_source=Reddit-ads", "", "Paid Social"),
        ("utm_source=twitter-ads", "", "Paid Social"),
        ("utm_source=tiktok&utm_medium=paid", "", "Paid Social"),
        ("utm_source=yt-ads", "", "Paid Video"),
        ("utm_source=youtube&utm_medium=paid", "", "Paid Video"),
        ("utm_source=partner-ads", "", "Paid Other"),
        ("utm_medium=cpc", "", "Paid Other"),
        ("utm_source=ipad", "", "Referral"),  # no paid marker without a known source
        # Click ids are paid only with the platform that issues them.
        ("gclid=x1", "", "Paid Search"),
        ("gclid=x1", "https://www.google.com/", "Paid Search"),
        ("gclid=x1", "https://www.youtube.com/", "Paid Video"),
        ("gclid=x1", "https://duckduckgo.com/", "Organic Search"),
        ("msclkid=x1", "https://www.bing.com/", "Paid Search"),
        ("msclkid=x1", "https://duckduckgo.com/", "Organic Search"),
        ("gclid=x1&utm_medium=display", "https://www.google.com/", "Display"),
        ("fbclid=x1", "https://l.facebook.com/", "Organic Social"),
        # Display mediums.
        ("utm_medium=banner", "", "Display"),
        ("utm_source=partner&utm_medium=interstitial", "", "Display"),
        # Organic by source category or medium.
        ("", "https://www.reddit.com/", "Organic Social"),
        ("utm_source=ig", "", "Organic Social"),
        ("utm_source=twitter", "https://t.co/x", "Organic Social"),
        ("utm_medium=social-media", "", "Organic Social"),
        ("utm_source=yt", "", "Organic Video"),
        ("utm_medium=video", "", "Organic Video"),
        ("utm_source=duckduckgo", "", "Organic Search"),
        # AI assistants: ours.
        ("utm_source=chatgpt.com", "", "AI Assistants"),
        ("utm_source=perplexity", "", "AI Assistants"),
        # Referral: a medium that says so, a referrer, or a tagged source nothing else fits.
        ("utm_medium=referral", "", "Referral"),
        ("utm_source=linktree", "https://linktr.ee/x", "Referral"),
        ("utm_source=partner", "", "Referral"),
        ("utm_source=newsletter&utm_medium=referral", "", "Referral"),
        # Email: email or newsletter in source or medium, webmail referrers.
        ("utm_source=email", "", "Email"),
        ("utm_medium=e-mail", "", "Email"),
        ("utm_source=Newsletter-UK", "", "Email"),
        ("utm_source=weekly&utm_medium=newsletter", "", "Email"),
        ("", "https://deref-gmx.net/mail/client/x", "Email"),
        # The rest of GA4's list.
        ("utm_medium=affiliate", "", "Affiliates"),
        ("utm_medium=audio", "", "Audio"),
        ("utm_source=sms", "", "SMS"),
        ("utm_medium=sms", "", "SMS"),
        ("utm_medium=app-push", "", "Mobile Push Notifications"),
        ("utm_medium=example-mobile", "", "Mobile Push Notifications"),
        ("utm_source=firebase", "", "Mobile Push Notifications"),
    ],
)
def test_channel_rules(query: str, referrer: str, channel: str) -> None:
    assert attribute(query, referrer, is_same_site=False).channel == channel


@pytest.mark.parametrize(
    ("tag", "source"),
    [
        ("google", "Google"),
        ("GOOGLE", "Google"),
        ("adwords", "Google"),
        ("google_ads", "Google"),
        ("fb", "Facebook"),
        ("FB", "Facebook"),
        ("fb-ads", "Facebook"),
        ("ig", "Instagram"),
        ("yt", "YouTube"),
        ("twitter", "X (Twitter)"),
        ("chatgpt.com", "ChatGPT"),
        ("www.reddit.com", "Reddit"),
        ("Newsletter-UK", "newsletter-uk"),
        ("  Partner ", "partner"),
        ("STRASSE", "strasse"),
        (DIRECT, DIRECT),
    ],
)
def test_canonical_source(tag: str, source: str) -> None:
    assert canonical_source(tag) == source
    assert attribute(f"utm_source={tag.strip()}", "", False).source == source or tag == DIRECT


def test_every_list_entry_has_a_known_category_and_ours_come_first() -> None:
    table = source_table()
    assert len(table.hosts) > 700  # ours and Matomo's lists
    assert table.for_host("mail.google.com").name == "Gmail"  # type: ignore[union-attr]
    assert table.for_host("url.google.com").name == "Google"  # type: ignore[union-attr]
    assert table.for_host("google.example.com") is None


def _events(site: str) -> list[dict[str, Any]]:
    """Nine visitors (one visit each) tagged and referred with every spelling of two sources."""
    url = f"https://{site}/"
    landings = [
        ("?utm_source=Newsletter-UK", ""),
        ("?utm_source=Newsletter-UK", ""),
        ("?utm_source=newsletter-uk", ""),
        ("?utm_source=fb", ""),
        ("?utm_source=FB", ""),
        ("?utm_source=facebook", ""),
        ("", "https://l.facebook.com/"),
        ("?utm_source=fb-ads", ""),
        ("", "https://www.google.com/"),
    ]
    return [
        {
            "url": url + query,
            "referrer": referrer,
            "ip": f"198.51.100.{i}",
            "timestamp": f"{DAY}T12:00:00Z",
        }
        for i, (query, referrer) in enumerate(landings)
    ]


def _site(db: Database, domain: str = "example.com") -> Site:
    with db.session() as session:
        return session.scalars(select(Site).where(Site.domain == domain)).one()


def _breakdown(
    db: Database, site: Site, dimension: str, *, rollups: bool, **args: str
) -> dict[str, int]:
    query = parse_query(
        site,
        {"period": "custom", "from": str(DAY), "to": str(DAY), "metrics": "visits",
         "dimension": dimension, **args},
    )  # fmt: skip
    return {row[dimension]: row["visits"] for row in run(db, query, rollups=rollups).rows}


def _by_source(db: Database, site: Site, *, rollups: bool, **args: str) -> dict[str, int]:
    return _breakdown(db, site, "visit:source", rollups=rollups, **args)


def _by_channel(db: Database, site: Site, *, rollups: bool) -> dict[str, int]:
    return _breakdown(db, site, "visit:channel", rollups=rollups)


def test_one_source_per_name_whatever_the_spelling(app: Flask, db: Database) -> None:
    store_events(app, _events("example.com"), site="example.com")
    site = _site(db)
    refresh_site(db, site_ref(site))
    expected = {"Facebook": 5, "Newsletter-UK": 3, "Google": 1}
    for rollups in (True, False):
        assert _by_source(db, site, rollups=rollups) == expected
        # The shown spelling, the stored one and any other case all filter the same visits.
        for value in ("Newsletter-UK", "newsletter-uk", "NEWSLETTER-UK"):
            assert _by_source(db, site, rollups=rollups, source=value) == {"Newsletter-UK": 3}
        assert _by_source(db, site, rollups=rollups, source="fb") == {"Facebook": 5}
        assert _by_source(db, site, rollups=rollups, source="news*") == {"Newsletter-UK": 3}
        assert _by_source(db, site, rollups=rollups, source="!facebook") == {
            "Newsletter-UK": 3,
            "Google": 1,
        }
    assert _by_channel(db, site, rollups=True) == {
        "Organic Social": 4,
        "Email": 3,
        "Paid Social": 1,
        "Organic Search": 1,
    }


def test_api_breakdown_shows_the_most_frequent_spelling(app: Flask, db: Database) -> None:
    from tests.helpers import add_user
    from tracker.accounts import create_api_key
    from tracker.db.models import User

    store_events(app, _events("example.com"), site="example.com")
    user = add_user(db)
    with db.session() as session:
        _, key = create_api_key(session, session.get(User, user.id))
    response = app.test_client().get(
        "/api/v1/stats/breakdown",
        query_string={"site_id": "example.com", "period": "custom",
                      "date": f"{DAY},{DAY}", "property": "visit:source",
                      "metrics": "visits"},
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert response.status_code == 200, response.get_json()
    rows = {r["source"]: r["visits"] for r in response.get_json()["results"]}
    assert rows == {"Facebook": 5, "Newsletter-UK": 3, "Google": 1}


def _cli(db_url: str, tmp_path: Path, *args: str) -> str:
    env = {"TRACKER_DATABASE_URL": db_url, "TRACKER_DATA_DIR": str(tmp_path / "cli")}
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="tracker")
    assert result.exit_code == 0, result.output
    return result.output


def _unclassify(db: Database) -> None:
    """What the rules before issue 12 stored: tagged values as written, GA4's Unassigned."""
    with db.engine.begin() as conn:
        conn.execute(
            update(Visit)
            .where(Visit.utm_source != "")
            .values(source=Visit.utm_source, channel="Unassigned")
        )


def test_reclassify_rewrites_stored_visits_and_rollups(
    app: Flask, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_events(app, _events("example.com"), site="example.com")
    store_events(app, _events("other.example"), site="other.example")
    site = _site(db)
    _unclassify(db)
    refresh_site(db, site_ref(site))
    stale = _by_channel(db, site, rollups=True)
    assert stale == {"Unassigned": 7, "Organic Social": 1, "Organic Search": 1}

    out = _cli(database_url, tmp_path, "reclassify", "--site", "example.com")
    assert f"example.com: 7 of 9 visits changed; rollups rebuilt from {DAY}." in out
    expected = {"Facebook": 5, "Newsletter-UK": 3, "Google": 1}
    assert _by_source(db, site, rollups=True) == expected
    assert _by_source(db, site, rollups=False) == expected
    other = _site(db, "other.example")
    assert _by_channel(db, other, rollups=False)["Unassigned"] == 7  # not asked

    again = _cli(database_url, tmp_path, "reclassify", "--site", "example.com")
    assert "example.com: 0 of 9 visits changed." in again
    everything = _cli(database_url, tmp_path, "reclassify", "--from", str(DAY))
    assert "other.example: 7 of 9 visits changed" in everything


def test_reclassify_keeps_ref_tags_and_names_bad_dates(
    app: Flask, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_events(
        app,
        [{"url": "https://example.com/?ref=ProductHunt", "timestamp": f"{DAY}T12:00:00Z"}],
        site="example.com",
    )
    _cli(database_url, tmp_path, "reclassify")
    assert _by_source(db, _site(db), rollups=False) == {"Product Hunt": 1}
    env = {"TRACKER_DATABASE_URL": database_url, "TRACKER_DATA_DIR": str(tmp_path / "cli")}
    bad = CliRunner().invoke(cli, ["reclassify", "--from", "March"], env=env)
    assert bad.exit_code == 1 and "--from/--to" in bad.output
    missing = CliRunner().invoke(cli, ["reclassify", "--site", "nope.example"], env=env)
    assert missing.exit_code == 1 and "no site 'nope.example'" in missing.output


def test_migration_reclassifies_stored_visits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0008")
    engine = create_engine(url)
    old_style = [
        ("fb", "fb", ""),
        ("Newsletter-UK", "Newsletter-UK", ""),
        ("deref-gmx.net", "", "https://deref-gmx.net/mail/client/x"),
        ("ProductHunt", "", ""),
    ]
    with Session(engine) as session, session.begin():
        # The sites table as revision 0008 has it (today's model has more columns).
        site_id = session.execute(
            text(
                "INSERT INTO sites (domain, timezone, allowed_hostnames, public, shared_export, "
                "honour_dnt, created_at) VALUES ('example.com', 'UTC', '[]', 0, 0, 0, "
                "'2026-01-01 00:00:00') RETURNING id"
            )
        ).scalar_one()
        for i, (source, utm, referrer) in enumerate(old_style):
            session.add(
                Visit(
                    id=i + 1, site_id=site_id, visitor_id=i, started_ms=0, last_ms=0,
                    source=source, channel="Unassigned", utm_source=utm, referrer=referrer,
                )
            )  # fmt: skip
    upgrade(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT source, channel FROM visits ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("Facebook", "Organic Social"),
        ("newsletter-uk", "Email"),
        ("GMX", "Email"),
        ("Product Hunt", "Organic Social"),
    ]
