"""Reclassify stored visits: source and channel recomputed with the current rules.

Attribution is written once, when a visit lands. When the rules or the source lists change,
`tracker reclassify` recomputes each visit's source and channel from what the visit kept of
its landing: the referrer (without query string), the five UTM fields and the click id,
through the same `classify` that ingestion uses, and rebuilds the rollups of the days it
changed. Running it twice changes nothing the second time.

A `ref=`/`source=` tag (Plausible's shorthands for utm_source) is not kept in a column of
its own: it is recognised as a stored source that neither the referrer nor the click id
explains. Bot verdicts cannot be redone: user agents are not stored, by design.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, func, select, update

from tracker.columnar.invalidate import invalidate
from tracker.db import Database
from tracker.db.models import Visit
from tracker.enrich.source import CLICK_IDS, DIRECT, classify, referrer_host, source_table
from tracker.stats.periods import local_date
from tracker.stats.query import SiteRef
from tracker.stats.rollups import refresh_site

visits = cast(Table, Visit.__table__)
BATCH = 5000
COLUMNS = (
    visits.c.id,
    visits.c.started_ms,
    visits.c.source,
    visits.c.channel,
    visits.c.referrer,
    visits.c.utm_source,
    visits.c.utm_medium,
    visits.c.utm_campaign,
    visits.c.click_id,
)


# Sets one visit's source and channel: run with the rows of `changes_in`.
UPDATE_ATTRIBUTION = (
    update(visits)
    .where(visits.c.id == bindparam("visit_id"))
    .values(source=bindparam("new_source"), channel=bindparam("new_channel"))
)


@dataclass
class Reclassified:
    visits: int = 0
    changed: int = 0
    first_changed_ms: int | None = None


def attribution_of(visit: Row[Any]) -> tuple[str, str]:
    """(source, channel) of a stored visit under the current rules."""
    host = referrer_host(visit.referrer) if visit.referrer else ""
    click_param = visit.click_id.partition(":")[0] if visit.click_id else ""
    if click_param not in CLICK_IDS:
        click_param = ""
    return classify(
        tagged=_tag_of(visit, host, click_param),
        medium=visit.utm_medium,
        campaign=visit.utm_campaign,
        host=host,
        click_param=click_param,
    )


def changes_in(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The UPDATE_ATTRIBUTION parameters of the stored visits whose source or channel the
    current rules change (rows with id, source, channel and the landing columns)."""
    changes = []
    for row in rows:
        source, channel = attribution_of(row)
        if (source, channel) != (row.source, row.channel):
            changes.append({"visit_id": row.id, "new_source": source, "new_channel": channel})
    return changes


def _tag_of(visit: Row[Any], host: str, click_param: str) -> str:
    if visit.utm_source:
        return str(visit.utm_source)
    stored = str(visit.source)
    if stored == DIRECT:
        return ""
    if host:
        known = source_table().for_host(host)
        if stored.casefold() == host or (known and stored == known.name):
            return ""
    elif click_param and stored in CLICK_IDS[click_param].issuers:
        return ""
    return stored


def count_visits(db: Database, site: SiteRef, start_ms: int, end_ms: int) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(*_in_range(site, start_ms, end_ms))) or 0)


def _in_range(site: SiteRef, start_ms: int, end_ms: int) -> tuple[Any, ...]:
    return (
        visits.c.site_id == site.id,
        visits.c.started_ms >= start_ms,
        visits.c.started_ms < end_ms,
    )


def _batches(db: Database, site: SiteRef, start_ms: int, end_ms: int) -> Iterator[Sequence[Any]]:
    """Visits in id order, a batch at a time (keyset paging: no long-lived cursor)."""
    after = None
    while True:
        where = _in_range(site, start_ms, end_ms)
        if after is not None:
            where = (*where, visits.c.id > after)
        with db.engine.connect() as conn:
            rows = conn.execute(
                select(*COLUMNS).where(*where).order_by(visits.c.id).limit(BATCH)
            ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def reclassify(
    db: Database,
    site: SiteRef,
    start_ms: int,
    end_ms: int,
    progress: Callable[[int], None] = lambda done: None,
) -> Reclassified:
    """Recompute source and channel of the site's visits that started in [start_ms, end_ms),
    then rebuild the rollups from the first day that changed."""
    result = Reclassified()
    for rows in _batches(db, site, start_ms, end_ms):
        changes = changes_in(rows)
        if changes:
            changed = {c["visit_id"] for c in changes}
            starts = [row.started_ms for row in rows if row.id in changed]
            if result.first_changed_ms is not None:
                starts.append(result.first_changed_ms)
            result.first_changed_ms = min(starts)
            with db.engine.begin() as conn:
                conn.execute(UPDATE_ATTRIBUTION, changes)
            # Batch by batch, as each is committed: readers never take changed visits
            # from columnar parts written before.
            invalidate(db.columnar_root, site.id, result.first_changed_ms)
        result.visits += len(rows)
        result.changed += len(changes)
        progress(len(rows))
    if result.first_changed_ms is not None:
        refresh_site(db, site, rebuild_from=first_changed_day(result, site))
    return result


def first_changed_day(result: Reclassified, site: SiteRef) -> date | None:
    if result.first_changed_ms is None:
        return None
    return local_date(result.first_changed_ms, site.tz)
