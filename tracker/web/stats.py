"""The stats page of a site, its full report lists and CSV downloads (thin views over stats).

Every route answers at /sites/<domain>/... (any member, or anyone for a public site) and at
/share/<token>/... (a share link, read-only), so links built with `access.url_args` keep a
share-link visitor inside the link. Bad parameters answer 400 with the QueryError sentence.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    render_template,
    request,
    stream_with_context,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from tracker.members import VIEWER
from tracker.sites import has_events
from tracker.stats import (
    QueryError,
    current_visitors,
    funnel,
    funnel_names,
    realtime,
    run,
    series_notes,
)
from tracker.stats.pacing import month_pacing
from tracker.web import dashboard as dash
from tracker.web.access import SiteAccess, shared_site, site_access
from tracker.web.budgets import pacing_table
from tracker.web.campaign_view import campaign_csv, campaign_tab
from tracker.web.context import get_db, get_settings
from tracker.web.local_pages import recent_local_page
from tracker.web.report_csv import funnel_csv, report_csv, timeseries_csv
from tracker.web.reports import PANELS, REPORTS
from tracker.web.sites import script_base_url

bp = Blueprint("stats", __name__)


@bp.errorhandler(NotFound)
def _not_found(error: NotFound) -> ResponseReturnValue:
    """A page naming the site that is not there (or not the visitor's to see: the answer
    is the same, so it tells nothing about other people's sites), with a way back."""
    return render_template("not_found.html", domain=(request.view_args or {}).get("domain")), 404


def _access(domain: str | None, token: str | None) -> SiteAccess:
    return shared_site(token) if token is not None else site_access(domain or "", VIEWER)


def _local_page(access: SiteAccess) -> str | None:
    """The local page that loaded the script lately, for those who manage the site (the tag
    to test locally is theirs): the note is the whole server's, not for a share link."""
    return recent_local_page(get_settings().data_dir) if access.can_manage else None


def _head(state: dash.PageState) -> dict[str, object]:
    """What _stats_head.html needs: live count, periods, comparison, filters, custom range."""
    return {
        "state": state,
        "access": state.access,
        "site": state.access.site,
        "periods": dash.period_links(state),
        "compare": dash.compare_links(state),
        "filters": dash.filter_links(state),
        "hidden": dash.hidden_fields(state, "period", "from", "to", "date"),
        "live": current_visitors(get_db(), state.access.site),
        "period_text": dash.period_text,
        "pages": dash.page_links(state),
    }


def _bad_query(access: SiteAccess, error: QueryError) -> ResponseReturnValue:
    html = render_template("query_error.html", access=access, site=access.site, error=error)
    return html, 400


@bp.get("/sites/<domain>")
@bp.get("/share/<token>")
def dashboard(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    access = _access(domain, token)
    db = get_db()
    with db.session() as session:
        started = has_events(session, access.site)
    if not started:
        return render_template(
            "empty.html",
            access=access,
            site=access.site,
            base_url=script_base_url(),
            local_page=_local_page(access),
        )
    try:
        state = dash.page_query(db, access, request.args)
        return render_template(
            "stats.html",
            **_head(state),
            kpis=dash.kpis(db, state),
            chart=dash.chart(db, state),
            chart_csv_url=dash.chart_csv_url(state),
            cards=dash.cards(db, state),
            funnel_url=dash.deferred_url(state, "funnels")
            if funnel_names(db, access.site)
            else None,
        )
    except QueryError as error:
        return _bad_query(access, error)


@bp.get("/sites/<domain>/reports/<key>")
@bp.get("/share/<token>/reports/<key>")
def report(key: str, domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """A report's full list, 100 rows a page (`?p=2`)."""
    access = _access(domain, token)
    if key not in REPORTS:
        abort(404)
    page = request.args.get("p", "1")
    number = int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1
    db = get_db()
    try:
        state = dash.page_query(db, access, request.args)
        listing = dash.full_list(db, state, REPORTS[key], number)
    except QueryError as error:
        return _bad_query(access, error)
    return render_template("report.html", **_head(state), listing=listing)


@bp.get("/sites/<domain>/reports/<key>.csv", endpoint="report_csv")
@bp.get("/share/<token>/reports/<key>.csv", endpoint="report_csv")
def report_csv_download(
    key: str, domain: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """The report's rows as CSV: the same Query as the page, every row, streamed a page
    of rows at a time (it was cut at 10,000 rows without a word)."""
    access = _access(domain, token)
    if key not in REPORTS:
        abort(404)
    db = get_db()
    try:
        state = dash.page_query(db, access, request.args)
        pages = dash.report_pages(db, state, REPORTS[key])
    except QueryError as error:
        return Response(f"{error}\n", status=400, mimetype="text/plain")
    name = dash.csv_name(state, key)
    # In the request's context while it streams: its statement timeout holds for every page.
    chunks = stream_with_context(
        report_csv(REPORTS[key], state.report_metrics(REPORTS[key]), pages)
    )
    return Response(
        chunks,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/sites/<domain>/chart.csv", endpoint="chart_csv")
@bp.get("/share/<token>/chart.csv", endpoint="chart_csv")
def chart_csv_download(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """The chart's buckets with every headline number and the bucket's annotations."""
    access = _access(domain, token)
    db = get_db()
    try:
        state = dash.page_query(db, access, request.args)
        result = run(db, dash.series_query(state))
    except QueryError as error:
        return Response(f"{error}\n", status=400, mimetype="text/plain")
    dim = result.query.dimensions[0]
    notes = series_notes(db, result.query, [row[dim] for row in result.rows])
    return Response(
        timeseries_csv(result, notes),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{dash.csv_name(state, "chart")}"'},
    )


@bp.get("/sites/<domain>/campaigns", endpoint="campaigns")
@bp.get("/share/<token>/campaigns", endpoint="campaigns")
def campaigns_view(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """The Campaigns tab: cost beside visits, conversions and revenue per campaign tag."""
    access = _access(domain, token)
    db = get_db()
    try:
        state = dash.page_query(db, access, request.args, "stats.campaigns")
        tab = campaign_tab(db, state)
    except QueryError as error:
        return _bad_query(access, error)
    pacing = pacing_table(month_pacing(db, access.site, month=state.query.period.end))
    return render_template("campaigns.html", **_head(state), tab=tab, pacing=pacing)


@bp.get("/sites/<domain>/campaigns.csv", endpoint="campaigns_csv")
@bp.get("/share/<token>/campaigns.csv", endpoint="campaigns_csv")
def campaigns_csv_download(
    domain: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """The Campaigns tab's rows and totals as CSV (the same report as the page)."""
    access = _access(domain, token)
    db = get_db()
    try:
        state = dash.page_query(db, access, request.args, "stats.campaigns")
        tab = campaign_tab(db, state)
    except QueryError as error:
        return Response(f"{error}\n", status=400, mimetype="text/plain")
    name = dash.csv_name(state, f"campaigns-by-{tab.report.level}")
    return Response(
        campaign_csv(tab),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/sites/<domain>/cards/<key>", endpoint="card")
@bp.get("/share/<token>/cards/<key>", endpoint="card")
def card_fragment(
    key: str, domain: str | None = None, token: str | None = None
) -> ResponseReturnValue:
    """One card's HTML, for the cards the page loads after it is shown (goals, funnels)."""
    access = _access(domain, token)
    panels = {panel.key: panel for panel in PANELS}
    if key not in panels and key != "funnels":
        abort(404)
    db = get_db()
    try:
        state = dash.page_query(db, access, request.args)
        if key == "funnels":
            found = dash.funnel_card(db, state)
            if found is None:
                abort(404)
            return render_template("_funnel.html", funnel=found)
        return render_template("_card.html", card=dash.card(db, state, panels[key]))
    except QueryError as error:
        return Response(f"{error}\n", status=400, mimetype="text/plain")


@bp.get("/sites/<domain>/funnel.csv", endpoint="funnel_csv")
@bp.get("/share/<token>/funnel.csv", endpoint="funnel_csv")
def funnel_csv_download(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """A funnel's steps as CSV (`?funnel=Name`), over the page's period and filters."""
    access = _access(domain, token)
    db = get_db()
    name = request.args.get("funnel", "")
    try:
        state = dash.page_query(db, access, request.args)
        result = funnel(db, state.query, name)
    except QueryError as error:
        return Response(f"{error}\n", status=400, mimetype="text/plain")
    return Response(
        funnel_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{dash.csv_name(state, "funnel")}"'},
    )


@bp.get("/sites/<domain>/status.json")
@bp.get("/share/<token>/status.json")
def status(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """Polled by the empty state: turns true once the first event is stored; until then
    names a local page that loaded the script (which sends nothing from there)."""
    access = _access(domain, token)
    with get_db().session() as session:
        started = has_events(session, access.site)
    if started or not access.can_manage:
        return jsonify(has_events=started)
    return jsonify(has_events=False, local_page=_local_page(access))


@bp.get("/sites/<domain>/live.json")
@bp.get("/share/<token>/live.json")
def live(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """Current visitors (an event in the last 5 minutes), polled by the page."""
    access = _access(domain, token)
    return jsonify(current_visitors=current_visitors(get_db(), access.site))


@bp.get("/sites/<domain>/realtime", endpoint="realtime")
@bp.get("/share/<token>/realtime", endpoint="realtime")
def realtime_view(domain: str | None = None, token: str | None = None) -> ResponseReturnValue:
    """The last 30 minutes by minute and the pages being viewed now; refreshes itself."""
    access = _access(domain, token)
    now = realtime(get_db(), access.site)
    most = max((pageviews for _ago, pageviews, _v in now.minutes), default=0)
    return render_template("realtime.html", access=access, site=access.site, now=now, most=most)
