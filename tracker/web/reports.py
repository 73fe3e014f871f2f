"""The reports of the stats page, as one table: which dimension, which columns, which card.

A report is a breakdown by one dimension with a few metrics; a panel is a card on the page
holding reports as tabs. The page, the "more" list and the CSV download of a report all
read this table and run the same Query, so they always show the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracker.stats import Filter
from tracker.stats.filters import tagged_only

# Click names the beacon sends (static/src/tracker.js) for links and downloads.
OUTBOUND_LINK = "Outbound Link"
FILE_DOWNLOAD = "File Download"


@dataclass(frozen=True)
class Report:
    key: str  # in URLs: /sites/<domain>/reports/<key>
    tab: str  # the tab's label
    dimension: str
    metrics: tuple[str, ...]
    # Filters the report always adds (not shown as the page's filters): e.g. only
    # downloads. Visits without an optional tag (a campaign, a country) are left out by
    # the stats layer's own rule (tagged_only), as in the Stats API.
    fixed: tuple[Filter, ...] = ()
    # Label for an empty dimension value.
    empty_label: str = "(none)"
    # A second dimension broken down within the first (an event's properties).
    detail: str | None = None
    # Columns left out on a phone, where the report's columns would not fit its width (its
    # CSV keeps them).
    wide_only: tuple[str, ...] = ()

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (self.dimension, self.detail) if self.detail else (self.dimension,)

    @property
    def query_filters(self) -> tuple[Filter, ...]:
        return (*self.fixed, *tagged_only(self.dimensions))


@dataclass(frozen=True)
class Panel:
    key: str  # its tab parameter is `<key>_tab`
    title: str
    reports: tuple[Report, ...]

    @property
    def tab_param(self) -> str:
        return f"{self.key}_tab"

    @property
    def sort_param(self) -> str:
        """`sources_sort=conversion_rate` (descending) or `conversion_rate:asc`."""
        return f"{self.key}_sort"

    def report(self, key: str | None) -> Report:
        """The tab named `key`, else the first."""
        return next((r for r in self.reports if r.key == key), self.reports[0])


VISIT_METRICS = ("visitors", "visits", "bounce_rate")
# Custom events only: not the beacon's link and download clicks.
CUSTOM = (Filter("event:name", "is_not", (OUTBOUND_LINK, FILE_DOWNLOAD)),)


def _utm(key: str, tab: str, name: str) -> Report:
    return Report(key, tab, f"visit:{name}", VISIT_METRICS)


def _clicks(key: str, tab: str, name: str) -> Report:
    return Report(
        key, tab, "event:target", ("visitors", "events"), (Filter("event:name", "is", (name,)),)
    )


# Conversion mode (a goal filter on the page): every report shows these instead, so each
# row says how many of its visits converted and at what rate.
CONVERSION_METRICS = ("visitors", "conversions", "conversion_rate", "total_revenue")

PANELS: tuple[Panel, ...] = (
    Panel(
        "goals",
        "Goals",
        (
            Report(
                "goals",
                "Goals",
                "event:goal",
                ("visitors", "conversions", "events", "conversion_rate", "total_revenue"),
            ),
        ),
    ),
    Panel(
        "sources",
        "Top sources",
        (
            Report("sources", "Sources", "visit:source", VISIT_METRICS),
            Report("channels", "Channels", "visit:channel", VISIT_METRICS),
            Report("referrers", "Referrers", "visit:referrer", VISIT_METRICS),
            _utm("campaigns", "Campaigns", "utm_campaign"),
            _utm("utm_sources", "UTM sources", "utm_source"),
            _utm("utm_mediums", "Mediums", "utm_medium"),
            _utm("utm_terms", "Terms", "utm_term"),
            _utm("utm_contents", "Contents", "utm_content"),
        ),
    ),
    Panel(
        "pages",
        "Top pages",
        (
            Report(
                "pages",
                "Pages",
                "event:page",
                ("visitors", "pageviews", "time_on_page", "scroll_depth", "bounce_rate"),
                # Five columns beside a path overflow a 390 px phone; visitors say as much.
                wide_only=("pageviews",),
            ),
            Report(
                "entry_pages",
                "Entry pages",
                "visit:entry_page",
                ("visits", "bounce_rate", "visit_duration"),
            ),
            Report(
                "exit_pages",
                "Exit pages",
                "visit:exit_page",
                ("visits", "exit_rate", "time_on_page", "bounce_rate"),
            ),
        ),
    ),
    Panel(
        "locations",
        "Locations",
        (
            Report("countries", "Countries", "visit:country", VISIT_METRICS),
            Report("regions", "Regions", "visit:region", VISIT_METRICS),
            Report("cities", "Cities", "visit:city", VISIT_METRICS),
        ),
    ),
    Panel(
        "devices",
        "Devices",
        (
            Report("browsers", "Browsers", "visit:browser", VISIT_METRICS, empty_label="Unknown"),
            Report("os", "Operating systems", "visit:os", VISIT_METRICS, empty_label="Unknown"),
            Report("devices", "Devices", "visit:device", VISIT_METRICS, empty_label="Unknown"),
        ),
    ),
    Panel(
        "clicks",
        "Clicks",
        (
            # All clicked links first: one dimension, so it reads pre-aggregated rollups.
            Report("links", "All links", "event:target", ("visitors", "events")),
            _clicks("outbound_links", "Outbound links", OUTBOUND_LINK),
            _clicks("downloads", "Downloads", FILE_DOWNLOAD),
        ),
    ),
    Panel(
        "events",
        "Custom events",
        (
            Report("events", "Events", "event:name", ("visitors", "events"), CUSTOM),
            Report(
                "event_props",
                "Properties",
                "event:name",
                ("visitors", "events"),
                CUSTOM,
                detail="event:props",
            ),
        ),
    ),
)

REPORTS: dict[str, Report] = {r.key: r for panel in PANELS for r in panel.reports}


def panel_of(report: Report) -> Panel:
    return next(panel for panel in PANELS if report in panel.reports)
