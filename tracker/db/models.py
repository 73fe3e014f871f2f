"""SQLAlchemy models: the whole schema. Alembic migrations in migrations/ must match it.

Times on the two big tables (events, visits) are integers: milliseconds since the Unix epoch,
UTC. Integers compare and bucket identically on SQLite and PostgreSQL, and the stats layer
turns them into days and hours of the site's time zone. None is before EARLIEST_DAY.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The collector refuses events dated earlier (a misread date, not traffic), and period=all
# starts here at the earliest (README, "Ingestion").
EARLIEST_DAY = date(2000, 1, 1)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Part of every login session (tracker/web/auth.py); logging out counts it up, which
    # ends the user's sessions, copies of the cookie included.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Two-factor login (tracker.twofactor). The secret is kept as is: checking a code needs
    # it. It is on once `totp_enabled_at` is set (a code confirmed it); `totp_last_step`
    # is the time step of the last code taken, so a code works once.
    totp_secret: Mapped[str | None] = mapped_column(String(32))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # A server administrator requires two-factor login of this user (`tracker users
    # require-2fa`), whatever the server's rule for administrators says.
    require_2fa: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the user last logged in (the list of users shows it to administrators).
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """Only a SHA-256 of the key is kept; `prefix` lets a person recognise it in lists."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "read" (stats) or "write" (stats, events, costs, goals, notes): tracker.accounts.SCOPES.
    scope: Mapped[str] = mapped_column(String(8), default="write", server_default="write")


class RecoveryCode(Base):
    """A two-factor recovery code: only its SHA-256 is kept; each works once."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordReset(Base):
    """A password reset link (tracker.password_reset): only its token's SHA-256 is kept."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Page hosts allowed to send events besides the domain and its subdomains.
    allowed_hostnames: Mapped[list[str]] = mapped_column(JSON, default=list)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether share links may download raw events (issue: export).
    shared_export: Mapped[bool] = mapped_column(Boolean, default=False)
    # Visitors whose browser sends Do Not Track or Global Privacy Control are not counted.
    honour_dnt: Mapped[bool] = mapped_column(Boolean, default=False)
    # ISO 4217 code money is reported in (ad spend, CPA, ROAS); "" until set, or until the
    # first ad spend import names one.
    currency: Mapped[str] = mapped_column(String(3), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SiteMember(Base):
    """A user's role on a site: owner, admin or viewer (tracker.members). Server
    administrators (User.is_admin) need no row: they act as owners of every site."""

    __tablename__ = "site_members"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Invitation(Base):
    """An invitation to join a site with a role (tracker.invitations). Only a SHA-256 of
    the link's token is kept, as for API keys. Kept once accepted or revoked, so an old
    link says why it no longer works."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who changed what, when (tracker.audit). The user's email and the site's domain are
    copied in, so the entry still says who and where after either is deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_site_id", "site_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # None and "": the command line (no user).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    user_email: Mapped[str] = mapped_column(String(254), default="")
    # None and "": not about one site (an API key).
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    site_domain: Mapped[str] = mapped_column(String(253), default="")
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(1000), default="")


class SharedLink(Base):
    __tablename__ = "shared_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Goal(Base):
    """A read-time definition over stored events (a goal added today counts past data too):
    `page` (a path pattern with * wildcards), `event` (a custom event name, optionally
    narrowed by one property) or `click` (an outbound link or download whose target matches
    a pattern). Shown and listed by `position`."""

    __tablename__ = "goals"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(8))
    # The path pattern (page goals) or the link target pattern (click goals).
    pattern: Mapped[str] = mapped_column(String(500), default="")
    event_name: Mapped[str] = mapped_column(String(200), default="")
    prop_key: Mapped[str] = mapped_column(String(200), default="")
    prop_value: Mapped[str] = mapped_column(String(500), default="")
    # ISO 4217 code revenue is reported in for this goal ("": no revenue).
    currency: Mapped[str] = mapped_column(String(3), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Whether `goal_hits` holds this goal's matches for every day the rollups cover; until
    # the rollup job has backfilled them, reports match the goal on raw events.
    hits_built: Mapped[bool] = mapped_column(Boolean, default=False)


class Funnel(Base):
    """2 to 8 goals completed in this order within one visit. `steps` lists goal ids; a
    step whose goal was deleted makes the funnel broken until it is edited."""

    __tablename__ = "funnels"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    steps: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdCost(Base):
    """What one ad (campaign, or its ad group / ad) cost on one day, imported from an ad
    platform's report. The UTM fields are kept trimmed and case-folded, as they are matched
    to visits; `campaign_label` keeps the spelling of the last import for display.
    `row_key` hashes day and the five fields: importing the same row again replaces it."""

    __tablename__ = "ad_costs"
    __table_args__ = (
        UniqueConstraint("site_id", "row_key"),
        Index("ix_ad_costs_site_day", "site_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    row_key: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(255), default="")
    medium: Mapped[str] = mapped_column(String(255), default="")
    campaign: Mapped[str] = mapped_column(String(255), default="")
    term: Mapped[str] = mapped_column(String(255), default="")
    content: Mapped[str] = mapped_column(String(255), default="")
    campaign_label: Mapped[str] = mapped_column(String(255), default="")
    cost_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    impressions: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    clicks: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Budget(Base):
    """A monthly budget for one campaign or one source (`scope`), every month until
    deleted; `key` is the trimmed, case-folded name it matches cost rows by."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("site_id", "scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(8))  # "campaign" or "source"
    key: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UtmLink(Base):
    """A tagged link saved from the UTM link builder (values as they go into the URL)."""

    __tablename__ = "utm_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    base_url: Mapped[str] = mapped_column(String(2000))
    source: Mapped[str] = mapped_column(String(255))
    medium: Mapped[str] = mapped_column(String(255))
    campaign: Mapped[str] = mapped_column(String(255))
    term: Mapped[str] = mapped_column(String(255), default="")
    content: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Annotation(Base):
    """A dated note drawn on the site's chart ("Black Friday launch")."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_site_day", "site_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DailySalt(Base):
    """The secret mixed into visitor ids for one UTC day; deleted after two days."""

    __tablename__ = "daily_salts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary(32))


class DropCount(Base):
    """Events answered 202 but not stored (bots, spam...), counted per site, day and reason."""

    __tablename__ = "drop_counts"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class SpoolOffset(Base):
    """How many bytes of an ingest spool segment are stored (tracker/storage/spool.py),
    written in the same transaction as its events, so no line is stored twice."""

    __tablename__ = "spool_offsets"

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ApiRateLimit(Base):
    """A Stats API key's token bucket (tracker/api/ratelimit.py), shared by all workers."""

    __tablename__ = "api_rate_limits"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class Visit(Base):
    """One visit (session): maintained incrementally by the sessions module as events arrive."""

    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int] = mapped_column(BigInteger)
    last_ms: Mapped[int] = mapped_column(BigInteger)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    entry_page: Mapped[str] = mapped_column(String(2000), default="")
    exit_page: Mapped[str] = mapped_column(String(2000), default="")
    pageviews: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    interactions: Mapped[int] = mapped_column(Integer, default=0)
    is_bounce: Mapped[bool] = mapped_column(Boolean, default=True)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[str] = mapped_column(String(255), default="Direct / None")
    referrer: Mapped[str] = mapped_column(String(2000), default="")
    channel: Mapped[str] = mapped_column(String(64), default="Direct")
    utm_source: Mapped[str] = mapped_column(String(255), default="")
    utm_medium: Mapped[str] = mapped_column(String(255), default="")
    utm_campaign: Mapped[str] = mapped_column(String(255), default="")
    utm_term: Mapped[str] = mapped_column(String(255), default="")
    utm_content: Mapped[str] = mapped_column(String(255), default="")
    click_id: Mapped[str] = mapped_column(String(255), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    region: Mapped[str] = mapped_column(String(128), default="")
    city: Mapped[str] = mapped_column(String(128), default="")
    browser: Mapped[str] = mapped_column(String(64), default="")
    browser_version: Mapped[str] = mapped_column(String(32), default="")
    os: Mapped[str] = mapped_column(String(64), default="")
    os_version: Mapped[str] = mapped_column(String(32), default="")
    device: Mapped[str] = mapped_column(String(16), default="")
    screen: Mapped[str] = mapped_column(String(16), default="")

    __table_args__ = (
        Index("ix_visits_site_started", "site_id", "started_ms"),
        # Visit assignment looks up a visitor's latest visit on a site.
        Index("ix_visits_site_visitor_last", "site_id", "visitor_id", "last_ms"),
    )


class VisitChange(Base):
    """A visit of a past UTC day that the writer changed: a late event, an engagement
    beacon, a visit going on past midnight. The columnar store's provisional parts hold
    yesterday as it was when written; readers take these visits' visitors from the database
    instead (tracker.columnar.engine). `changed_ms` is the writer's clock at the change."""

    __tablename__ = "visit_changes"

    visit_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int] = mapped_column(BigInteger)
    changed_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_visit_changes_site_changed", "site_id", "changed_ms"),)


class Event(Base):
    """One stored event. Pageview rows also carry their resolved time on page.

    `engaged_ms`/`scroll` on a pageview row are the maxima its engagement beacons reported;
    `time_on_page_ms` is that engaged time, else the time until the visit's next pageview,
    else NULL (unknown, excluded from averages).
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    hostname: Mapped[str] = mapped_column(String(255), default="")
    path: Mapped[str] = mapped_column(String(2000), default="")
    query: Mapped[str] = mapped_column(String(2000), default="")
    title: Mapped[str] = mapped_column(String(500), default="")
    referrer: Mapped[str] = mapped_column(String(2000), default="")
    target: Mapped[str] = mapped_column(String(2000), default="")
    props: Mapped[dict[str, str] | None] = mapped_column(JSON)
    engaged_ms: Mapped[int | None] = mapped_column(BigInteger)
    scroll: Mapped[int | None] = mapped_column(SmallInteger)
    time_on_page_ms: Mapped[int | None] = mapped_column(BigInteger)
    pageview_id: Mapped[str] = mapped_column(String(64), default="")
    # Money sent with the event: an integer count of the currency's minor units (cents;
    # never a float) and its ISO 4217 code; NULL and "" when none was sent.
    revenue_minor: Mapped[int | None] = mapped_column(BigInteger)
    revenue_currency: Mapped[str] = mapped_column(String(3), default="", server_default="")

    __table_args__ = (
        Index("ix_events_site_time", "site_id", "timestamp_ms"),
        Index("ix_events_visit", "visit_id"),
    )


class StatsRollup(Base):
    """Pre-aggregated report rows: the stats layer's additive parts per site, local day,
    dimension ("" for the total) and value. Maintained by tracker.stats.rollups."""

    __tablename__ = "stats_rollups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    # Local day of the visits' start, in the site's time zone: days since 1970-01-01.
    day: Mapped[int] = mapped_column(Integer)
    # Dimension names joined by "," ("" for the total); one value each, in that order.
    dimension: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(2000))
    value2: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    visitors: Mapped[int] = mapped_column(BigInteger)
    visits: Mapped[int] = mapped_column(BigInteger)
    bounces: Mapped[int] = mapped_column(BigInteger)
    pageviews: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    time_on_page_ms: Mapped[int] = mapped_column(BigInteger)
    time_on_page_known: Mapped[int] = mapped_column(BigInteger)
    # Scroll depth: the pageviews' deepest scroll (percent) summed, and how many reported one.
    scroll_sum: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    scroll_known: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    # Reports read a dimension's days; the refresh replaces a day's values range by range.
    __table_args__ = (Index("ix_stats_rollups_key", "site_id", "dimension", "day", "value"),)


class GoalHit(Base):
    """One stored event a goal matches, with what reports read about it and its visit, so
    goal reports and funnels need not scan every event. Maintained beside the rollups, per
    local day of the visit's start (tracker.stats.hits)."""

    __tablename__ = "goal_hits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    visit_id: Mapped[int] = mapped_column(BigInteger)
    visitor_id: Mapped[int] = mapped_column(BigInteger)
    # The visit's start (a visit belongs to the period it started in) and its local day.
    started_ms: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[int] = mapped_column(Integer)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    revenue_minor: Mapped[int | None] = mapped_column(BigInteger)
    revenue_currency: Mapped[str] = mapped_column(String(3), default="", server_default="")

    __table_args__ = (
        Index("ix_goal_hits_goal_started", "goal_id", "started_ms"),
        Index("ix_goal_hits_goal_visit", "goal_id", "visit_id", "timestamp_ms"),
        Index("ix_goal_hits_site_day", "site_id", "day"),
    )


class GoalDay(Base):
    """A goal's counts over one local day's visits, summed from its hits: what the Goals
    card and a funnel's first step read when no filter narrows the visits."""

    __tablename__ = "goal_days"

    goal_id: Mapped[int] = mapped_column(
        ForeignKey("goals.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    # Distinct visitors and visits (conversions) with a matching event, and those events.
    visitors: Mapped[int] = mapped_column(BigInteger)
    conversions: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_goal_days_site_day", "site_id", "day"),)


class GoalTagDay(Base):
    """A goal's conversions over one local day's tagged visits, per combination of their
    UTM tags (as the visits wrote them), summed from its hits: what the campaign report
    reads. Rows with `currency` "" count every converting visit; a row per currency adds
    the revenue paid in it and the conversions that paid it."""

    __tablename__ = "goal_tag_days"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    day: Mapped[int] = mapped_column(Integer)
    utm_source: Mapped[str] = mapped_column(String(255), default="")
    utm_medium: Mapped[str] = mapped_column(String(255), default="")
    utm_campaign: Mapped[str] = mapped_column(String(255), default="")
    utm_term: Mapped[str] = mapped_column(String(255), default="")
    utm_content: Mapped[str] = mapped_column(String(255), default="")
    currency: Mapped[str] = mapped_column(String(3), default="")
    conversions: Mapped[int] = mapped_column(BigInteger)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("ix_goal_tag_days_goal_day", "goal_id", "day"),
        Index("ix_goal_tag_days_site_day", "site_id", "day"),
    )


class StatsRollupState(Base):
    """Up to which local day a site's rollups are built, and up to which event id."""

    __tablename__ = "stats_rollup_state"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    last_day: Mapped[int] = mapped_column(Integer)
    # The zone the days were cut in: a site whose zone changed is rebuilt.
    timezone: Mapped[str] = mapped_column(String(64))
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    built_ms: Mapped[int] = mapped_column(BigInteger)


class OutboxMail(Base):
    """A mail waiting to be sent, sent, or given up (tracker.mail). Kept after sending for a
    while, so the settings page can say what went out and what failed."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The site the mail is about (a report, an alert); None for mail to a user (invitation).
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(String)
    html_body: Mapped[str] = mapped_column(String, default="")
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the retries are used up: the mail stays, with its last error, never sent.
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReportRecipient(Base):
    """An address that receives a site's mail (tracker.subscribers): the weekly and/or
    monthly report, and alerts. A member's address or any other."""

    __tablename__ = "report_recipients"
    __table_args__ = (UniqueConstraint("site_id", "email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    weekly: Mapped[bool] = mapped_column(Boolean, default=True)
    monthly: Mapped[bool] = mapped_column(Boolean, default=False)
    alerts: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReportRun(Base):
    """A site's report for one period, claimed by the process that queued its mails (in the
    same transaction): the primary key lets one process only, ever, send it."""

    __tablename__ = "report_runs"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "weekly" or "monthly"
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    recipients: Mapped[int] = mapped_column(Integer, default=0)


class AlertRule(Base):
    """What to watch on a site (tracker.alerts): `kind` with its `threshold` (spike: current
    visitors; drop: percent of the usual; goal_drop: hours without a conversion; pacing:
    unused), at most one mail per `cooldown_minutes`, optionally also to a webhook."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int] = mapped_column(Integer, default=0)
    goal_id: Mapped[int | None] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"))
    cooldown_minutes: Mapped[int] = mapped_column(Integer, default=360)
    webhook_url: Mapped[str] = mapped_column(String(2000), default="")
    # Signs webhook bodies (X-Tracker-Signature: sha256=HMAC of the body), shown once made.
    webhook_secret: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertEvent(Base):
    """An alert that fired, and when its condition ended (cleared_at; None: still on).
    `notified`: whether mails and the webhook went out (not within the cool-down)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_rule_id", "rule_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message: Mapped[str] = mapped_column(String(500))
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_error: Mapped[str] = mapped_column(String(500), default="")


class LogFile(Base):
    """An access log imported into a site (tracker/accesslog/load.py): how many bytes of it
    are stored, so importing it again, grown or rotated, stores each line once. A file is
    recognised by a hash of its first bytes (`head_bytes`, at most 4 KB); `content_hash`
    is of its first `bytes` bytes. Hashes of that much text cannot be traced back to an
    address; no line is kept."""

    __tablename__ = "log_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    head_bytes: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(32))
    lines: Mapped[int] = mapped_column(BigInteger)
    pages: Mapped[int] = mapped_column(BigInteger)
    first_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_ms: Mapped[int | None] = mapped_column(BigInteger)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LogUpload(Base):
    """An access log uploaded on the settings page, waiting for the jobs process to import
    it (tracker.accesslog.uploads): `status` waiting, running, done or failed, and what the
    import said (`summary`). The file itself waits in the data directory."""

    __tablename__ = "log_uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    log_format: Mapped[str] = mapped_column(String(16), default="auto")
    nginx_format: Mapped[str] = mapped_column(String(1000), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    summary: Mapped[str] = mapped_column(String(4000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


__all__ = [
    "AlertEvent",
    "AlertRule",
    "ApiKey",
    "AuditEntry",
    "Base",
    "DailySalt",
    "DropCount",
    "Event",
    "Invitation",
    "LogFile",
    "LogUpload",
    "OutboxMail",
    "ReportRecipient",
    "ReportRun",
    "SharedLink",
    "Site",
    "SiteMember",
    "StatsRollup",
    "StatsRollupState",
    "User",
    "Visit",
    "utcnow",
]
