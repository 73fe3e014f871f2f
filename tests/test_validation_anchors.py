"""Validated values match whole: a trailing newline is not part of a valid value.

With `re.match` and `$`, "example.com\\n" passed the domain check (`$` also matches before a
final newline) and became a site that no URL could open or delete.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.helpers import add_user, csrf_token, log_in
from tracker.db.models import Site
from tracker.sites import SiteError, normalize_domain, normalize_hostnames


@pytest.mark.parametrize(
    "domain", ["example.com\n/", "https://example.com\n/", "example.com:8080\n/"]
)
def test_a_domain_ending_in_a_newline_is_refused(domain):
    with pytest.raises(SiteError, match="not a valid domain"):
        normalize_domain(domain)


def test_valid_domains_still_pass():
    assert normalize_domain(" https://WWW.Shop.Example.org/ ") == "shop.example.org"
    assert normalize_domain("example.com:8080") == "example.com:8080"
    assert normalize_hostnames("a.example.com, b.example.com") == ["a.example.com", "b.example.com"]


def test_the_sites_page_refuses_it_and_stores_nothing(client, db):
    log_in(client, add_user(db))
    response = client.post(
        "/sites",
        data={
            "csrf_token": csrf_token(client, "/sites"),
            "domain": "evil.example\n/",
            "timezone": "UTC",
        },
    )
    assert response.status_code == 400
    assert "not a valid domain" in response.get_data(as_text=True)
    with db.session() as session:
        assert session.scalars(select(Site.domain)).all() == []
