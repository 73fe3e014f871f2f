"""Dimensions: the one table of what a report can be broken down and filtered by.

Names are namespaced (`visit:source`, `event:page`, `time:day`) and used the same way in
URLs, the API, CSV headers and templates. `short` is the URL filter parameter
(`?source=Google`). Visit dimensions read the visits table; event dimensions read events
(joined to their visit) and only the event kinds that carry the value: a page is a
pageview's path, a link target belongs to clicks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dimension:
    name: str
    short: str
    label: str
    column: str
    # Event kinds a row must have for an event dimension; () means any kind.
    kinds: tuple[str, ...] = ()
    # A tag most visits lack (UTM values, referrer, location, an event's properties):
    # breakdowns by it leave those visits out, on the page, in its CSV and in the Stats
    # API alike (filters.tagged_only); totals count them.
    optional: bool = False

    @property
    def scope(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def is_time(self) -> bool:
        return self.scope == "time"

    @property
    def is_event(self) -> bool:
        return self.scope == "event"


_PAGEVIEW = ("pageview",)
_INTERACTIONS = ("click", "event")
PAGE = "event:page"

DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension(PAGE, "page", "Page", "path", _PAGEVIEW),
        Dimension("visit:entry_page", "entry_page", "Entry page", "entry_page"),
        Dimension("visit:exit_page", "exit_page", "Exit page", "exit_page"),
        Dimension("visit:source", "source", "Source", "source"),
        Dimension("visit:referrer", "referrer", "Referrer", "referrer", optional=True),
        Dimension("visit:channel", "channel", "Channel", "channel"),
        Dimension("visit:utm_source", "utm_source", "UTM source", "utm_source", optional=True),
        Dimension("visit:utm_medium", "utm_medium", "UTM medium", "utm_medium", optional=True),
        Dimension(
            "visit:utm_campaign", "utm_campaign", "UTM campaign", "utm_campaign", optional=True
        ),
        Dimension("visit:utm_term", "utm_term", "UTM term", "utm_term", optional=True),
        Dimension("visit:utm_content", "utm_content", "UTM content", "utm_content", optional=True),
        Dimension("visit:country", "country", "Country", "country", optional=True),
        Dimension("visit:region", "region", "Region", "region", optional=True),
        Dimension("visit:city", "city", "City", "city", optional=True),
        Dimension("visit:browser", "browser", "Browser", "browser"),
        Dimension("visit:browser_version", "browser_version", "Browser version", "browser_version"),
        Dimension("visit:os", "os", "Operating system", "os"),
        Dimension("visit:os_version", "os_version", "OS version", "os_version"),
        Dimension("visit:device", "device", "Device", "device"),
        Dimension("event:name", "event", "Event", "name", _INTERACTIONS),
        Dimension("event:target", "target", "Link target", "target", ("click",)),
        # A custom event's properties: the stored JSON object as text, e.g. {"plan": "pro"}.
        Dimension("event:props", "props", "Properties", "props", ("event",), optional=True),
        Dimension("event:hostname", "hostname", "Hostname", "hostname", _PAGEVIEW),
        # A goal (tracker/stats/goals.py): a filter selects the visits that converted on it;
        # a breakdown gives one row per goal. Not a column: goals are read-time definitions.
        Dimension("event:goal", "goal", "Goal", ""),
        # The currency of revenue sent with custom events (revenue sums are split by it).
        Dimension(
            "event:revenue_currency", "revenue_currency", "Currency", "revenue_currency", ("event",)
        ),
        Dimension("time:hour", "hour", "Hour", ""),
        Dimension("time:day", "day", "Day", ""),
        Dimension("time:week", "week", "Week", ""),
        Dimension("time:month", "month", "Month", ""),
    )
}

BY_SHORT: dict[str, Dimension] = {d.short: d for d in DIMENSIONS.values() if not d.is_time}
TIME_DIMENSIONS = tuple(name for name, d in DIMENSIONS.items() if d.is_time)
# Dimension sets kept pre-aggregated per day (see rollups): the unbroken total, each
# dimension alone, and pairs the stats page reads together (clicks of one kind by target).
# Not event:props: its JSON text (up to 30 properties) does not fit a rollup value and is
# answered from raw events.
# Not goals nor revenue currencies: goals are read-time definitions (a goal added today
# counts past data), so conversions are counted from raw events.
NOT_ROLLED_UP = frozenset({"event:props", "event:goal", "event:revenue_currency"})
ROLLUP_KEYS: tuple[tuple[str, ...], ...] = (
    (),
    *((name,) for name, d in DIMENSIONS.items() if not d.is_time and name not in NOT_ROLLED_UP),
    ("event:name", "event:target"),
)


def dimension(name: str) -> Dimension:
    """The dimension for a full name or its short alias; KeyError if unknown."""
    if name in DIMENSIONS:
        return DIMENSIONS[name]
    return BY_SHORT[name]
