"""Visits: which visit an event belongs to, and each visit's metrics (definitions in
docs/ARCHITECTURE.md, "Metric definitions").

Pure logic over in-memory state; tracker.storage.store loads the state a batch needs,
runs `VisitAssigner.add` on each event in timestamp order, and writes the result back.

- A visitor's events on a site with no gap over the timeout form one visit; a pageview
  that lands with another campaign (`utm_campaign`, `utm_source`) or a new click id starts
  a new one. A plain external referrer mid-visit (a payment page coming back) does not.
- Bounce: fewer than two pageviews and no interaction (click or custom event).
- Time on page: the largest `engaged_ms` its engagement beacons reported; without any, the
  time until the visit's next pageview; else unknown (NULL).
- Duration: the sum of the known times on page. Engagement updates it but is no interaction.
- Engagement beacons are folded into their pageview row (by `pageview_id`), not stored as
  rows of their own; one that names no known pageview is dropped (`DropReason.NO_PAGEVIEW`).
- A pageview whose `pageview_id` the same visitor sent on the site within the visit
  timeout is the same beacon delivered twice (the script draws a new id for every
  pageview): dropped (`DropReason.DUPLICATE`). Clicks and custom events carry no id of
  their own, so a repeated one cannot be told from a second click and is stored again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from tracker.enrich.device import DeviceInfo
from tracker.enrich.geo import Place
from tracker.enrich.source import Attribution
from tracker.ingest.drops import DropReason
from tracker.ingest.parse import Payload

INTERACTIONS = frozenset({"click", "event"})


def landing_columns(
    a: Attribution, place: Place, device: DeviceInfo, screen: str
) -> dict[str, Any]:
    """A visit's columns fixed by its landing: attribution, geography, device, screen."""
    return {
        "source": a.source,
        "referrer": a.referrer,
        "channel": a.channel,
        "utm_source": a.utm_source,
        "utm_medium": a.utm_medium,
        "utm_campaign": a.utm_campaign,
        "utm_term": a.utm_term,
        "utm_content": a.utm_content,
        "click_id": a.click_id,
        "country": place.country,
        "region": place.region,
        "city": place.city,
        "browser": device.browser,
        "browser_version": device.browser_version,
        "os": device.os,
        "os_version": device.os_version,
        "device": device.device,
        "screen": screen,
    }


# Not frozen: a frozen dataclass costs ~10x more to build, and one is built per event.
# Treat it as read-only all the same.
@dataclass(slots=True)
class Hit:
    """An enriched, accepted event on its way to a visit (no IP or user agent left)."""

    site_id: int
    # Today's id first; then the id under yesterday's salt, so visits continue past midnight.
    visitor_ids: tuple[int, ...]
    timestamp_ms: int
    payload: Payload  # the parsed event's own, not copied
    attribution: Attribution
    device: DeviceInfo
    place: Place
    screen: str = ""
    referrer: str = ""  # "" when the referrer is the site itself


PAYLOAD_FIELDS = tuple(f.name for f in fields(Payload))
_payload_values = attrgetter(*PAYLOAD_FIELDS)
# An events row's columns: the payload's fields, then those `event_row` adds.
_EVENT_ROW_KEYS = (
    *PAYLOAD_FIELDS,
    "site_id",
    "visitor_id",
    "timestamp_ms",
    "referrer",
    "engaged_ms",
    "scroll",
    "time_on_page_ms",
)


# Visit columns that visit assignment changes after creation.
VISIT_MUTABLE = (
    "started_ms",
    "last_ms",
    "entry_page",
    "exit_page",
    "pageviews",
    "events",
    "interactions",
    "is_bounce",
    "duration_ms",
)


@dataclass(eq=False, slots=True)  # one or two per event: slots are cheaper
class VisitState:
    """A visit row being updated: `row` holds its columns; `id` is None until inserted."""

    row: dict[str, Any]
    id: int | None = None
    dirty: bool = False
    pageviews: list[PageviewState] = field(default_factory=list)
    last_pageview_ms: int = -1


@dataclass(eq=False, slots=True)  # one or two per event: slots are cheaper
class PageviewState:
    """A pageview row whose engagement and time on page may still change."""

    visit: VisitState
    row: dict[str, Any]  # the event row (new) or its mutable columns (loaded, with "id")
    is_new: bool
    dirty: bool = False


class VisitAssigner:
    def __init__(
        self, timeout_ms: int, visits: list[VisitState], pageviews: list[PageviewState]
    ) -> None:
        self.timeout_ms = timeout_ms
        self.by_visitor: dict[tuple[int, int], list[VisitState]] = {}
        self.by_pageview_id: dict[tuple[int, str], PageviewState] = {}
        self.new_visits: list[VisitState] = []
        self.new_events: list[tuple[VisitState, dict[str, Any]]] = []
        self.loaded_pageviews = pageviews
        for visit in visits:
            self._index_visit(visit)
        for pageview in pageviews:
            pageview.visit.pageviews.append(pageview)
            ts = pageview.row["timestamp_ms"]
            pageview.visit.last_pageview_ms = max(pageview.visit.last_pageview_ms, ts)
            self._index_pageview(pageview)

    def _index_visit(self, visit: VisitState) -> None:
        key = (visit.row["site_id"], visit.row["visitor_id"])
        self.by_visitor.setdefault(key, []).append(visit)

    def _index_pageview(self, pageview: PageviewState) -> None:
        pageview_id = pageview.row.get("pageview_id")
        if pageview_id:
            self.by_pageview_id[(pageview.visit.row["site_id"], pageview_id)] = pageview

    def add(self, hit: Hit) -> DropReason | None:
        """Apply one event; returns a drop reason when it cannot be stored."""
        kind = hit.payload.kind
        if kind == "engagement":
            return self._engage(hit)
        if kind == "pageview" and hit.payload.pageview_id and self._seen(hit):
            return DropReason.DUPLICATE
        visit = self._current_visit(hit) or self._new_visit(hit)
        self._record(visit, hit)
        return None

    def _seen(self, hit: Hit) -> bool:
        """Whether this visitor sent a pageview with the hit's id within the visit timeout
        (stored, or earlier in this batch).

        The same visitor, and moments apart: ids that trusted senders choose may repeat
        across visitors, or for one visitor on another day."""
        pageview_id = hit.payload.pageview_id
        if not pageview_id:
            return False
        pageview = self.by_pageview_id.get((hit.site_id, pageview_id))
        return (
            pageview is not None
            and pageview.visit.row["visitor_id"] in hit.visitor_ids
            and abs(hit.timestamp_ms - pageview.row["timestamp_ms"]) <= self.timeout_ms
        )

    def _current_visit(self, hit: Hit) -> VisitState | None:
        # Most visitors have no visit yet, or one: no list built, no max() (this runs per
        # event, 100,000 times a second in an access-log import).
        candidates: list[VisitState] = []
        for visitor_id in hit.visitor_ids:
            group = self.by_visitor.get((hit.site_id, visitor_id))
            if group:
                candidates = group if not candidates else candidates + group
        if not candidates:
            return None
        visit = candidates[0] if len(candidates) == 1 else max(candidates, key=_last_ms)
        row = visit.row
        ts = hit.timestamp_ms
        if ts - row["last_ms"] > self.timeout_ms or row["started_ms"] - ts > self.timeout_ms:
            return None
        if hit.payload.kind == "pageview" and campaign_changed(row, hit.attribution):
            return None
        return visit

    def _new_visit(self, hit: Hit) -> VisitState:
        visit = VisitState(
            row={
                "site_id": hit.site_id,
                "visitor_id": hit.visitor_ids[0],
                "started_ms": hit.timestamp_ms,
                "last_ms": hit.timestamp_ms,
                "hostname": hit.payload.hostname,
                "entry_page": "",
                "exit_page": "",
                "pageviews": 0,
                "events": 0,
                "interactions": 0,
                "is_bounce": True,
                "duration_ms": 0,
                **landing_columns(hit.attribution, hit.place, hit.device, hit.screen),
            }
        )
        self.new_visits.append(visit)
        self._index_visit(visit)
        return visit

    def _record(self, visit: VisitState, hit: Hit) -> None:
        row = visit.row
        ts = hit.timestamp_ms
        if ts > row["last_ms"]:
            row["last_ms"] = ts
        if ts < row["started_ms"]:
            row["started_ms"] = ts
        row["events"] += 1
        event = event_row(hit, row["visitor_id"])
        if hit.payload.kind == "pageview":
            self._add_pageview(visit, event)
        else:
            row["interactions"] += 1
        row["is_bounce"] = row["pageviews"] < 2 and row["interactions"] == 0
        visit.dirty = True
        self.new_events.append((visit, event))

    def _add_pageview(self, visit: VisitState, event: dict[str, Any]) -> None:
        row = visit.row
        ts = event["timestamp_ms"]
        previous = (
            max(
                (p for p in visit.pageviews if p.row["timestamp_ms"] <= ts),
                key=lambda p: p.row["timestamp_ms"],
                default=None,
            )
            if visit.pageviews
            else None
        )
        if previous is not None and previous.row["time_on_page_ms"] is None:
            # No engagement beacon for the previous page: its time is the gap to this one.
            gap = ts - previous.row["timestamp_ms"]
            _set_time_on_page(previous, gap)
        if row["pageviews"] == 0:
            row["entry_page"] = event["path"]
        if ts >= visit.last_pageview_ms:
            row["exit_page"] = event["path"]
            visit.last_pageview_ms = ts
        row["pageviews"] += 1
        pageview = PageviewState(visit=visit, row=event, is_new=True)
        visit.pageviews.append(pageview)
        self._index_pageview(pageview)

    def _engage(self, hit: Hit) -> DropReason | None:
        engaged_ms, scroll = hit.payload.engaged_ms, hit.payload.scroll
        pageview = self.by_pageview_id.get((hit.site_id, hit.payload.pageview_id))
        if pageview is None:
            return DropReason.NO_PAGEVIEW
        row = pageview.row
        if engaged_ms is not None and (row["engaged_ms"] is None or engaged_ms > row["engaged_ms"]):
            row["engaged_ms"] = engaged_ms
            _set_time_on_page(pageview, engaged_ms)
        if scroll is not None and (row["scroll"] is None or scroll > row["scroll"]):
            row["scroll"] = scroll
            pageview.dirty = True
        visit = pageview.visit
        if 0 <= hit.timestamp_ms - visit.row["last_ms"] <= self.timeout_ms:
            # Reading keeps the visit alive, but engagement is no interaction: no un-bounce.
            visit.row["last_ms"] = hit.timestamp_ms
            visit.dirty = True
        return None

    def changed_pageviews(self) -> list[PageviewState]:
        return [p for p in self.loaded_pageviews if p.dirty]

    def changed_visits(self) -> list[VisitState]:
        seen = {id(v) for v in self.new_visits}
        return [
            v for group in self.by_visitor.values() for v in group if v.dirty and id(v) not in seen
        ]


def event_row(hit: Hit, visitor_id: int) -> dict[str, Any]:
    """The events row of a new hit (without its visit id): its payload's fields and what
    enrichment found. Engagement and time on page are not the hit's own: its engagement
    beacons and the visit's next pageview set them later."""
    # One dict from one tuple: a third cheaper than building it and updating it.
    values = (
        *_payload_values(hit.payload),
        hit.site_id,
        visitor_id,
        hit.timestamp_ms,
        hit.referrer,
        None,
        None,
        None,
    )
    return dict(zip(_EVENT_ROW_KEYS, values, strict=True))


def _last_ms(visit: VisitState) -> int:
    return int(visit.row["last_ms"])


def _set_time_on_page(pageview: PageviewState, ms: int) -> None:
    old = pageview.row["time_on_page_ms"] or 0
    pageview.row["time_on_page_ms"] = ms
    pageview.visit.row["duration_ms"] += ms - old
    pageview.visit.dirty = True
    pageview.dirty = True


def campaign_changed(visit_row: dict[str, Any], attribution: Attribution) -> bool:
    """A landing with another campaign or a new click id is a new visit (as in Matomo)."""
    return any(
        value and value != visit_row[name]
        for name, value in (
            ("utm_campaign", attribution.utm_campaign),
            ("utm_source", attribution.utm_source),
            ("click_id", attribution.click_id),
        )
    )
