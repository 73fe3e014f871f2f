"""Which referrers are pages on the tester's own computer (tracker.web.local_pages)."""

import pytest

from tracker.web.local_pages import local_origin


@pytest.mark.parametrize(
    ("referrer", "origin"),
    [
        ("http://127.0.0.1:5500/index.html", "http://127.0.0.1:5500"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://[::1]:8080/a", "http://[::1]:8080"),
        ("https://example.com/", None),
        ("http://127.example.com/", None),
        ("", None),
        (None, None),
        ("http://[bad/", None),
    ],
)
def test_local_origin(referrer, origin):
    assert local_origin(referrer) == origin
