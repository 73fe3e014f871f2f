"""Referrer spam: referrers from a list of known spam hosts (tracker/data/spam_hosts.txt)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from tracker.enrich.source import referrer_host


@lru_cache(maxsize=1)
def spam_hosts() -> frozenset[str]:
    text = resources.files("tracker").joinpath("data/spam_hosts.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


@lru_cache(maxsize=16384)
def is_spam_referrer(referrer: str) -> bool:
    """The referrer's host or any parent domain is on the list (subdomains included)."""
    host = referrer_host(referrer)
    if not host:
        return False
    hosts = spam_hosts()
    labels = host.split(".")
    return any(".".join(labels[i:]) in hosts for i in range(len(labels) - 1))
