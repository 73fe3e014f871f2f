"""Monthly budgets and pacing: validation (nothing saved on bad input), set / change /
delete, pacing numbers counted by hand (even pace, projection, status; month lengths, the
site's time zone deciding today, other currencies kept apart), the `tracker budgets`
command and the settings page's Budgets section, on both databases."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.helpers import add_user, csrf_token, log_in, post_form
from tracker.budgets import (
    BudgetError,
    campaign_suggestions,
    delete_budget,
    find_budget,
    list_budgets,
    set_budget,
)
from tracker.cli import cli
from tracker.db import Database
from tracker.db.models import AdCost, Budget, Site
from tracker.sites import add_site, delete_site, find_site, site_today
from tracker.stats.pacing import Pacing, month_pacing
from tracker.web.budgets import pacing_table

SITE = "shop.example"


@pytest.fixture
def site(db: Database) -> Site:
    with db.session() as session:
        site = add_site(session, SITE)
        site.currency = "EUR"
        return site


def _set(db: Database, **fields: Any) -> Budget:
    fields.setdefault("scope", "campaign")
    with db.session() as session:
        return set_budget(session, find_site(session, SITE), **fields).budget


def _budgets(db: Database) -> list[tuple[str, str, str, int, str]]:
    with db.session() as session:
        return [
            (b.scope, b.key, b.label, b.amount_minor, b.currency)
            for b in list_budgets(session, find_site(session, SITE))
        ]


def _cost(
    db: Database,
    day: str,
    cost_minor: int,
    *,
    campaign: str = "spring sale",
    source: str = "google",
    currency: str = "EUR",
    label: str = "",
    site: str = SITE,
) -> None:
    """One ad cost row, stored as the import stores it (tags trimmed and case-folded)."""
    with db.session() as session:
        site_id = find_site(session, site).id
        session.add(
            AdCost(
                site_id=site_id,
                row_key=uuid.uuid4().hex,
                day=date.fromisoformat(day),
                source=source,
                medium="cpc",
                campaign=campaign,
                campaign_label=label or campaign,
                cost_minor=cost_minor,
                currency=currency,
            )
        )


def _pacing(db: Database, today: str, month: str | None = None) -> list[Pacing]:
    with db.session() as session:
        site = find_site(session, SITE)
    return month_pacing(
        db,
        site,
        today=date.fromisoformat(today),
        month=date.fromisoformat(month) if month else None,
    )


def _one(db: Database, today: str, month: str | None = None) -> Pacing:
    (result,) = _pacing(db, today, month)
    return result


def _numbers(result: Pacing) -> tuple[Any, ...]:
    """spent, expected, projected, pace, status."""
    return (
        result.spent_minor,
        result.expected_minor,
        result.projected_minor,
        result.pace,
        result.status,
    )


# Validation, set / list / delete


BAD = [
    ({"scope": "medium"}, "scope", "A budget is for a campaign or a source (got 'medium')."),
    ({"name": "  "}, "name", "The campaign or source name is required."),
    ({"name": "x" * 256}, "name", "The name must be at most 255 characters."),
    ({"name": "ß" * 200}, "name", "at most 255 characters"),  # "ss" * 200 once case-folded
    ({"name": "Spring\tSale"}, "name", "must not contain control characters"),
    ({"name": "Spring\nSale"}, "name", "must not contain control characters"),
    ({"amount": ""}, "amount", "Amount '': must be digits with an optional decimal point"),
    ({"amount": "-5"}, "amount", "Amount '-5': must not be negative."),
    ({"amount": "0"}, "amount", "The amount must be above zero."),
    ({"amount": "0.00"}, "amount", "The amount must be above zero."),
    ({"amount": "1,500"}, "amount", "must be digits with an optional decimal point"),
    ({"amount": "1e3"}, "amount", "must be digits with an optional decimal point"),
    ({"amount": "NaN"}, "amount", "must be digits with an optional decimal point"),
    ({"amount": "15.005"}, "amount", "more decimals than EUR has (2); round it first"),
    ({"amount": "100.5", "currency": "JPY"}, "amount", "more decimals than JPY has (0)"),
    ({"amount": "1000000000000.01"}, "amount", "must not be over 1,000,000,000,000"),
    ({"amount": "1" * 41}, "amount", "longer than 40 characters"),
    ({"currency": "EURO"}, "currency", "Currency 'EURO' is not an ISO 4217 code"),
    ({"currency": "XXX"}, "currency", "Currency 'XXX' is not an ISO 4217 code"),
]


@pytest.mark.parametrize(("fields", "field", "message"), BAD)
def test_bad_budgets_are_refused_naming_the_field(db, site, fields, field, message) -> None:
    values = {"scope": "campaign", "name": "Spring Sale", "amount": "1500", **fields}
    with pytest.raises(BudgetError) as raised:
        _set(db, **values)
    assert raised.value.field == field
    assert message in str(raised.value)
    assert _budgets(db) == []


def test_amounts_are_exact_minor_units_of_the_currency(db, site) -> None:
    _set(db, name="A", amount="1500")
    _set(db, name="B", amount=" 1500.5 ")
    _set(db, name="C", amount="250000", currency="jpy")
    _set(db, name="D", amount="1.234", currency="KWD")
    _set(db, name="E", amount="1000000000000")  # the most there is
    assert [(b[2], b[3], b[4]) for b in _budgets(db)] == [
        ("A", 150000, "EUR"),
        ("B", 150050, "EUR"),
        ("C", 250000, "JPY"),
        ("D", 1234, "KWD"),
        ("E", 100000000000000, "EUR"),
    ]


def test_the_currency_defaults_to_the_sites_and_is_required_without_one(db, site) -> None:
    _set(db, name="Spring Sale", amount="10")
    assert _budgets(db)[0][4] == "EUR"
    with db.session() as session:
        find_site(session, SITE).currency = ""
    with pytest.raises(BudgetError, match="The currency is required") as raised:
        _set(db, name="Other", amount="10")
    assert raised.value.field == "currency"
    _set(db, name="Other", amount="10", currency="usd")
    assert [(b[2], b[4]) for b in _budgets(db)] == [("Other", "USD"), ("Spring Sale", "EUR")]


def test_set_creates_then_changes_one_budget_per_campaign_or_source(db, site) -> None:
    with db.session() as session:
        first = set_budget(
            session, find_site(session, SITE), scope="campaign", name=" Spring Sale ",
            amount="1500", currency="USD",
        )  # fmt: skip
        assert first.created is True
    # Same campaign, another spelling: the same budget changes; an empty currency keeps USD.
    with db.session() as session:
        again = set_budget(
            session, find_site(session, SITE), scope="Campaign", name="SPRING sale", amount="2000"
        )
        assert again.created is False and again.budget.id == first.budget.id
    assert _budgets(db) == [("campaign", "spring sale", "SPRING sale", 200000, "USD")]
    # A source of the same name is another budget.
    _set(db, scope="source", name="Spring Sale", amount="5")
    _set(db, scope="campaign", name="Black Friday", amount="700")
    assert _budgets(db) == [
        ("campaign", "black friday", "Black Friday", 70000, "EUR"),
        ("campaign", "spring sale", "SPRING sale", 200000, "USD"),
        ("source", "spring sale", "Spring Sale", 500, "EUR"),
    ]


def test_find_and_delete(db, site) -> None:
    _set(db, name="Spring Sale", amount="10")
    _set(db, scope="source", name="Google", amount="20")
    with db.session() as session:
        shop = find_site(session, SITE)
        assert find_budget(session, shop, "campaign", "Google") is None
        budget = find_budget(session, shop, "source", " GOOGLE ")
        assert budget is not None and budget.label == "Google"
        delete_budget(session, budget)
    assert [b[1] for b in _budgets(db)] == ["spring sale"]


def test_budgets_belong_to_their_site(db, site) -> None:
    with db.session() as session:
        add_site(session, "other.example")
    _set(db, name="Spring Sale", amount="10")
    with db.session() as session:
        other = find_site(session, "other.example")
        assert list_budgets(session, other) == []
        assert find_budget(session, other, "campaign", "Spring Sale") is None


def test_deleting_a_site_deletes_its_budgets(db, site) -> None:
    with db.session() as session:
        add_site(session, "other.example")
    _set(db, name="Spring Sale", amount="10")
    with db.session() as session:
        other = find_site(session, "other.example")
        set_budget(session, other, scope="source", name="Google", amount="5", currency="EUR")
        delete_site(session, find_site(session, SITE))
    with db.session() as session:
        assert [(b.site_id, b.key) for b in session.scalars(select(Budget))] == [
            (other.id, "google")
        ]


def test_campaign_suggestions_are_the_cost_rows_campaigns_latest_spelling_first(db, site) -> None:
    _cost(db, "2026-03-01", 100, campaign="spring sale", label="spring sale")
    _cost(db, "2026-03-05", 100, campaign="spring sale", label="Spring Sale")
    _cost(db, "2026-03-03", 100, campaign="brand", label="Brand")
    _cost(db, "2026-03-04", 100, campaign="", label="")  # no campaign: nothing to offer
    with db.session() as session:
        add_site(session, "other.example")
    _cost(db, "2026-03-09", 100, campaign="theirs", site="other.example")
    with db.session() as session:
        assert campaign_suggestions(session, find_site(session, SITE)) == ["Spring Sale", "Brand"]


# Pacing: March 2026 has 31 days; a 3100.00 EUR budget's even pace is 100.00 EUR a day.


@pytest.fixture
def march(db, site) -> None:
    _set(db, name="Spring Sale", amount="3100")
    _cost(db, "2026-02-28", 99999)  # last month
    _cost(db, "2026-03-11", 99999)  # after "today" (the 10th)


@pytest.mark.parametrize(
    ("spent", "pace", "status"),
    [
        (100000, "1.0000", "on track"),  # exactly the even pace: 1000.00 by day 10
        (110000, "1.1000", "on track"),  # 110% is still on track
        (110001, "1.1000", "over"),  # a cent above 110%
        (120000, "1.2000", "over"),
        (90000, "0.9000", "on track"),  # 90% is still on track
        (89999, "0.9000", "under"),  # a cent below 90%
        (80000, "0.8000", "under"),
        (0, "0.0000", "under"),
    ],
)
def test_mid_month_pace(db, march, spent, pace, status) -> None:
    if spent:
        _cost(db, "2026-03-01", spent - spent // 2)
        _cost(db, "2026-03-10", spent // 2)  # today counts
    result = _one(db, "2026-03-10")
    assert (result.month, result.days, result.elapsed, result.final) == (
        date(2026, 3, 1), 31, 10, False
    )  # fmt: skip
    assert result.amount_minor == 310000 and result.currency == "EUR"
    # projected: spent / 10 days x 31 days, to the nearest cent
    assert _numbers(result) == (spent, 100000, (spent * 31 + 5) // 10, Decimal(pace), status)
    assert result.other_spend == {}


def test_spending_the_whole_amount_is_over_budget_whatever_the_pace(db, march) -> None:
    _cost(db, "2026-03-02", 309999)
    assert _one(db, "2026-03-10").status == "over"  # 3099.99 of 3100.00, at 310% of the pace
    _cost(db, "2026-03-03", 1)
    result = _one(db, "2026-03-10")
    assert _numbers(result) == (310000, 100000, 961000, Decimal("3.1"), "over budget")
    assert result.used == Decimal("1.0000")


def test_first_day_of_the_month(db, march) -> None:
    _cost(db, "2026-03-01", 10000)
    # elapsed 1: expected 3100.00 / 31 = 100.00; projected 100.00 x 31
    assert _numbers(_one(db, "2026-03-01")) == (10000, 10000, 310000, Decimal(1), "on track")


def test_last_day_of_the_month(db, site) -> None:
    _set(db, name="Spring Sale", amount="3100")
    _cost(db, "2026-03-01", 150000)
    _cost(db, "2026-03-31", 150000)
    result = _one(db, "2026-03-31")
    # elapsed 31: expected is the whole amount; the projection is what was spent
    assert (result.elapsed, result.final) == (31, False)
    assert _numbers(result) == (300000, 310000, 300000, Decimal("0.9677"), "on track")


def test_expected_and_projected_are_rounded_to_the_cent(db, site) -> None:
    _set(db, name="Spring Sale", amount="1000")
    _cost(db, "2026-03-02", 33333)
    # expected 1000.00 x 10 / 31 = 322.5806 -> 322.58; projected 333.33 / 10 x 31 = 1033.323
    # -> 1033.32; pace 333.33 / 322.5806 = 1.0333 (on track: the status uses exact fractions)
    assert _numbers(_one(db, "2026-03-10")) == (
        33333, 32258, 103332, Decimal("1.0333"), "on track"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("today", "amount", "days", "elapsed", "expected", "projected", "pace"),
    [
        # 500.00 spent by `today`: projected 500.00 / elapsed x days
        ("2026-02-14", "2800", 28, 14, 140000, 100000, "0.3571"),  # February 2026: 28 days
        ("2026-02-28", "2800", 28, 28, 280000, 50000, "0.1786"),
        ("2028-02-10", "2900", 29, 10, 100000, 145000, "0.5"),  # February 2028, leap: 29
        ("2028-02-28", "2900", 29, 28, 280000, 51786, "0.1786"),  # 517.857 -> 517.86
        ("2028-02-29", "2900", 29, 29, 290000, 50000, "0.1724"),
        ("2026-04-15", "3000", 30, 15, 150000, 100000, "0.3333"),  # April: 30 days
        ("2026-12-31", "3100", 31, 31, 310000, 50000, "0.1613"),  # December: 31 days
    ],
)
def test_month_lengths(db, site, today, amount, days, elapsed, expected, projected, pace):
    _set(db, name="Spring Sale", amount=amount)
    _cost(db, today, 50000)
    result = _one(db, today)
    assert (result.days, result.elapsed) == (days, elapsed)
    assert _numbers(result) == (50000, expected, projected, Decimal(pace), "under")


def test_a_past_month_is_final_without_projection(db, march) -> None:
    _cost(db, "2026-02-01", 100000)
    _cost(db, "2026-02-27", 170000)  # with the 999.99 of the 28th: 3699.99
    result = _one(db, "2026-03-10", month="2026-02-15")
    assert (result.month, result.days, result.elapsed, result.final) == (
        date(2026, 2, 1), 28, 28, True
    )  # fmt: skip
    assert _numbers(result) == (369999, 310000, None, Decimal("1.1935"), "over budget")
    assert result.caption == "February 2026 (final)"
    _cost(db, "2026-01-31", 300000)
    january = _one(db, "2026-03-10", month="2026-01-01")
    assert _numbers(january) == (300000, 310000, None, Decimal("0.9677"), "on track")
    december = _one(db, "2026-03-10", month="2025-12-01")
    assert _numbers(december) == (0, 310000, None, Decimal(0), "under")


def test_a_later_month_has_not_started(db, march) -> None:
    result = _one(db, "2026-03-10", month="2026-04-01")
    assert (result.elapsed, result.final, result.caption) == (
        0, False, "April 2026 (not started)"
    )  # fmt: skip
    assert _numbers(result) == (0, 0, None, None, "not started")


def test_the_sites_time_zone_decides_today(db, site) -> None:
    _set(db, name="Spring Sale", amount="3000")
    _cost(db, "2026-03-31", 5000)
    _cost(db, "2026-04-01", 7000)
    now = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    with db.session() as session:
        shop = find_site(session, SITE)
    assert site_today(shop, now) == date(2026, 3, 31)
    (utc,) = month_pacing(db, shop, now=now)
    assert (utc.month, utc.elapsed, utc.spent_minor) == (date(2026, 3, 1), 31, 5000)
    with db.session() as session:
        find_site(session, SITE).timezone = "Europe/Berlin"
        shop = find_site(session, SITE)
    # 01:30 on 1 April in Berlin (summer time, UTC+2): April's first day, 30 days
    assert site_today(shop, now) == date(2026, 4, 1)
    (berlin,) = month_pacing(db, shop, now=now)
    assert (berlin.month, berlin.days, berlin.elapsed) == (date(2026, 4, 1), 30, 1)
    # expected 3000.00 / 30 = 100.00; 70.00 spent: 70% of the pace, 2100.00 projected
    assert _numbers(berlin) == (7000, 10000, 210000, Decimal("0.7"), "under")


def test_cost_in_another_currency_is_kept_apart(db, march) -> None:
    _cost(db, "2026-03-05", 100000)
    _cost(db, "2026-03-06", 4500, currency="USD")
    _cost(db, "2026-03-07", 500, currency="USD")
    _cost(db, "2026-03-08", 120000, currency="JPY")
    result = _one(db, "2026-03-10")
    assert _numbers(result) == (100000, 100000, 310000, Decimal(1), "on track")
    assert result.other_spend == {"JPY": 120000, "USD": 5000}
    row = pacing_table([result]).rows[0]
    assert row.other == "Also 120000 JPY · 50.00 USD (other currencies, not converted)"


def test_cost_rows_match_whatever_their_letter_case(db, site) -> None:
    _set(db, name=" Spring SALE ", amount="3100")
    _cost(db, "2026-03-02", 40000, campaign="spring sale", label="Spring Sale")
    _cost(db, "2026-03-03", 30000, campaign="Spring Sale ")  # stored unfolded: still matched
    _cost(db, "2026-03-04", 20000, campaign="spring-sale")  # another campaign
    result = _one(db, "2026-03-10")
    assert (result.label, result.key) == ("Spring SALE", "spring sale")
    assert result.spent_minor == 70000


def test_source_budgets_sum_every_campaign_of_the_source(db, site) -> None:
    _set(db, scope="source", name="Google", amount="3100")
    _set(db, scope="campaign", name="Brand", amount="620")
    _cost(db, "2026-03-02", 30000, campaign="brand", source="google")
    _cost(db, "2026-03-03", 50000, campaign="spring sale", source="google")
    _cost(db, "2026-03-04", 99900, campaign="brand", source="bing")
    brand, google = _pacing(db, "2026-03-10")  # campaigns first, then sources
    assert (brand.scope, brand.label, google.scope, google.label) == (
        "campaign", "Brand", "source", "Google"
    )  # fmt: skip
    # Brand: 620.00 x 10 / 31 = 200.00 expected; 300.00 + 999.00 spent = over budget
    assert _numbers(brand) == (129900, 20000, 402690, Decimal("6.495"), "over budget")
    # Google: 800.00 of an expected 1000.00
    assert _numbers(google) == (80000, 100000, 248000, Decimal("0.8"), "under")


def test_other_sites_cost_is_not_counted(db, march) -> None:
    with db.session() as session:
        add_site(session, "other.example")
    _cost(db, "2026-03-05", 55555, site="other.example")
    assert _one(db, "2026-03-10").spent_minor == 0


def test_a_zero_amount_never_divides_by_zero(db, site) -> None:
    """set_budget refuses 0, but a row written otherwise must not break the page."""
    with db.session() as session:
        session.add(
            Budget(site_id=site.id, scope="campaign", key="x", label="X", amount_minor=0,
                   currency="EUR")
        )  # fmt: skip
    result = _one(db, "2026-03-10")
    assert (result.expected_minor, result.pace, result.used) == (0, None, None)
    row = pacing_table([result]).rows[0]
    assert (row.expected, row.pace, row.used) == ("0.00 EUR", "—", 0.0)


def test_no_budgets_no_query_result(db, site) -> None:
    assert _pacing(db, "2026-03-10") == []
    assert pacing_table([]).rows == [] and pacing_table([]).caption == ""


def test_display_rows(db, march) -> None:
    _cost(db, "2026-03-04", 120000)
    table = pacing_table(_pacing(db, "2026-03-10"))
    assert table.caption == "March 2026, day 10 of 31"
    (row,) = table.rows
    assert (row.label, row.scope, row.amount, row.spent, row.expected, row.projected) == (
        "Spring Sale", "Campaign", "3100.00 EUR", "1200.00 EUR", "1000.00 EUR", "3720.00 EUR"
    )  # fmt: skip
    assert (row.pace, row.status, row.status_mark, row.status_text) == (
        "120%", "over", "▲", "Over pace"
    )  # fmt: skip
    # the bar: 1200 / 3100 = 38.7% spent; an even pace at day 10 of 31 = 32.3%
    assert (row.used, row.mark) == (38.7, 32.3)
    assert row.bar_text == "39% of the budget spent; an even pace is at 32%"
    past = pacing_table(_pacing(db, "2026-03-10", month="2026-02-01")).rows[0]
    assert (past.projected, past.mark, past.used) == ("—", 100.0, 32.3)


# The CLI


def _cli(args: list[str], env: dict[str, Any]) -> Any:
    result = CliRunner().invoke(cli, args, env=env, prog_name="tracker")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def env(database_url, tmp_path) -> dict[str, Any]:
    environ = {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_DATA_DIR": str(tmp_path / "data"),
        "TRACKER_CONFIG": None,
    }
    assert _cli(["sites", "add", SITE], environ).exit_code == 0
    return environ


@pytest.mark.parametrize("command", [[], ["set"], ["list"], ["delete"]])
def test_cli_every_budgets_command_has_help(command) -> None:
    result = _cli(["budgets", *command, "--help"], {})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: tracker budgets {' '.join(command)}".rstrip())
    assert "--site" in result.stdout or not command


def test_cli_set_list_delete(env, db) -> None:
    site = ["--site", SITE]
    assert "No budgets yet" in _cli(["budgets", "list", *site], env).stdout
    args = ["--campaign", "Spring Sale", "--amount", "3100", "--currency", "eur"]
    added = _cli(["budgets", "set", *site, *args], env)
    assert added.exit_code == 0, added.stderr
    assert added.stdout.strip() == "Set the budget of campaign 'Spring Sale': 3100.00 EUR a month."
    changed = _cli(["budgets", "set", *site, "--campaign", "spring sale", "--amount", "2800"], env)
    assert changed.stdout.strip() == (
        "Changed the budget of campaign 'spring sale': 2800.00 EUR a month."
    )
    args = ["--source", "Google", "--amount", "500", "--currency", "USD"]
    assert _cli(["budgets", "set", *site, *args], env).exit_code == 0

    _cost(db, "2026-02-03", 150000, campaign="spring sale", source="google")
    _cost(db, "2026-02-20", 2000, campaign="brand", source="google", currency="USD")
    _cost(db, "2026-02-21", 700, campaign="spring sale", source="x", currency="USD")
    listed = _cli(["budgets", "list", *site, "--month", "2026-02"], env).stdout.splitlines()
    assert listed[0] == "February 2026 (final) (UTC)"
    assert listed[1].split() == [
        "SCOPE", "NAME", "BUDGET", "SPENT", "EXPECTED", "PROJECTED", "PACE", "STATUS"
    ]  # fmt: skip
    assert listed[2].split() == [
        "campaign", "spring", "sale", "2800.00", "EUR", "1500.00", "EUR", "2800.00", "EUR", "-",
        "54%", "under", "pace",
    ]  # fmt: skip
    assert listed[3].split() == [
        "source", "Google", "500.00", "USD", "20.00", "USD", "500.00", "USD", "-", "4%", "under",
        "pace",
    ]  # fmt: skip
    assert listed[4:] == [
        "spring sale: also 7.00 USD (other currencies, not converted)",
        "Google: also 1500.00 EUR (other currencies, not converted)",
    ]

    # Without --month: this month in the site's time zone, day N of its days.
    current = _cli(["budgets", "list", *site], env).stdout.splitlines()[0]
    today = datetime.now(UTC).date()
    assert re.fullmatch(rf"{today:%B %Y}, day \d+ of \d+ \(UTC\)", current), current

    deleted = _cli(["budgets", "delete", *site, "--source", "GOOGLE"], env)
    assert deleted.stdout.strip() == "Deleted the budget of source 'Google'."
    assert _cli(["budgets", "delete", *site, "--campaign", "Spring Sale"], env).exit_code == 0
    assert "No budgets yet" in _cli(["budgets", "list", *site], env).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["set", "--campaign", "A", "--amount", "abc", "--currency", "EUR"],
            "Amount 'abc': must be digits",
        ),
        (["set", "--campaign", "A", "--amount", "10"], "The currency is required"),
        (["set", "--campaign", "A", "--amount", "10", "--currency", "EURO"], "ISO 4217"),
        (["set", "--campaign", "A", "--amount", "0", "--currency", "EUR"], "above zero"),
        (["set", "--amount", "10"], "exactly one of --campaign or --source"),
        (["set", "--campaign", "A", "--source", "B", "--amount", "1"], "exactly one of"),
        (["set", "--campaign", " ", "--amount", "1", "--currency", "EUR"], "name is required"),
        (["delete", "--campaign", "Nope"], "no budget for campaign 'Nope'"),
        (["list", "--month", "March"], "--month 'March': write it as YYYY-MM"),
    ],
)
def test_cli_bad_input_is_one_line_error_and_nothing_saved(env, db, args, message) -> None:
    result = _cli(["budgets", args[0], "--site", SITE, *args[1:]], env)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Budget)) == 0


def test_cli_unknown_site(env) -> None:
    for args in (
        ["list"],
        ["delete", "--campaign", "A"],
        ["set", "--source", "A", "--amount", "1"],
    ):
        result = _cli(["budgets", *args, "--site", "missing.example"], env)
        assert result.exit_code == 1 and "no site 'missing.example'" in result.stderr


# The settings page

SETTINGS = f"/sites/{SITE}/settings"


@pytest.fixture
def owner_client(client, db):
    owner = add_user(db, "owner@example.com", admin=False)
    with db.session() as session:
        add_site(session, SITE, owner=owner).currency = "EUR"
    log_in(client, owner)
    return client


def _section(page: str) -> str:
    return page.split('id="budgets"')[1].split("</section>")[0]


def _errors(html: str) -> list[str]:
    return re.findall(r'<p class="error">([^<]*)', html)


def _post(client, path: str, **data: str):
    return post_form(client, SETTINGS + path, **data)


def test_settings_add_change_delete_and_pacing(owner_client, db) -> None:
    section = _section(owner_client.get(SETTINGS).get_data(as_text=True))
    assert "No budgets yet." in section
    assert 'name="currency" placeholder="EUR" type="text" value="EUR"' in section

    today = datetime.now(UTC).date()
    _cost(db, today.isoformat(), 5000, campaign="spring sale", label="Spring Sale")
    _cost(db, today.isoformat(), 250, campaign="spring sale", label="Spring Sale", currency="USD")
    section = _section(owner_client.get(SETTINGS).get_data(as_text=True))
    assert '<datalist id="budget-names"><option value="Spring Sale"></datalist>' in section

    added = _post(owner_client, "/budgets", scope="campaign", name="Spring Sale", amount="3000")
    assert added.status_code == 302 and added.location.endswith("#budgets")
    page = owner_client.get(added.location).get_data(as_text=True)
    assert "Budget for Campaign &#39;Spring Sale&#39; set: 3000.00 EUR a month." in page
    section = _section(page)
    assert "Campaign · 3000.00 EUR a month" in section
    # This month's pacing, counted as tracker.stats.pacing counts it.
    with db.session() as session:
        (result,) = month_pacing(db, find_site(session, SITE))
    assert result.spent_minor == 5000 and result.other_spend == {"USD": 250}
    row = pacing_table([result]).rows[0]
    assert f"<caption>{today:%B %Y}, day {today.day} of {result.days}</caption>" in section
    for cell in ("3000.00 EUR", "50.00 EUR", row.expected, row.projected, row.pace):
        assert f"{cell}</td>" in section or f">{cell}<" in section, cell
    assert f'<span aria-hidden="true">{row.status_mark}</span> {row.status_text}</td>' in section
    assert "Also 2.50 USD (other currencies, not converted)" in section
    assert f'aria-label="{row.bar_text}"' in section

    budget_id = _budgets_ids(db)["spring sale"]
    changed = _post(owner_client, f"/budgets/{budget_id}", amount="4500.50", currency="")
    assert changed.status_code == 302
    assert _budget_rows(db) == [("campaign", "Spring Sale", 450050, "EUR")]
    refused = _post(owner_client, f"/budgets/{budget_id}", amount="-1", currency="")
    assert refused.status_code == 400
    assert "Amount &#39;-1&#39;: must not be negative." in _errors(refused.get_data(as_text=True))
    assert _budget_rows(db) == [("campaign", "Spring Sale", 450050, "EUR")]

    # The add form also changes a budget that exists (same name, any letter case).
    _post(owner_client, "/budgets", scope="campaign", name="spring SALE", amount="10")
    assert _budget_rows(db) == [("campaign", "spring SALE", 1000, "EUR")]

    deleted = _post(owner_client, f"/budgets/{budget_id}/delete")
    assert deleted.status_code == 302 and _budget_rows(db) == []
    flashed = owner_client.get(deleted.location).get_data(as_text=True)
    assert "Budget for Campaign &#39;spring SALE&#39; deleted; cost rows are kept." in flashed


def _budget_rows(db) -> list[tuple[str, str, int, str]]:
    with db.session() as session:
        rows = session.scalars(select(Budget).order_by(Budget.id))
        return [(b.scope, b.label, b.amount_minor, b.currency) for b in rows]


def _budgets_ids(db) -> dict[str, int]:
    with db.session() as session:
        return {b.key: b.id for b in session.scalars(select(Budget))}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "amount": "10"}, "The campaign or source name is required."),
        ({"name": "A", "amount": "12.345"}, "more decimals than EUR has (2); round it first"),
        ({"name": "A", "amount": "10", "currency": "EURO"}, "is not an ISO 4217 code"),
        ({"name": "A", "amount": "10", "scope": "medium"}, "Not a valid choice"),
    ],
)
def test_bad_budgets_show_a_form_error_and_nothing_is_saved(owner_client, db, data, message):
    data = {"scope": "campaign", **data}
    response = _post(owner_client, "/budgets", **data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert any(message in error for error in _errors(_section(html))), _errors(html)
    assert _budget_rows(db) == []
    if data["name"]:  # the form keeps what was typed
        assert f'value="{data["amount"]}"' in _section(html)


def test_every_form_needs_the_csrf_token(owner_client, db) -> None:
    _post(owner_client, "/budgets", scope="campaign", name="A", amount="10")
    budget_id = _budgets_ids(db)["a"]
    for path, data in (
        ("/budgets", {"scope": "campaign", "name": "B", "amount": "5"}),
        (f"/budgets/{budget_id}", {"amount": "99"}),
        (f"/budgets/{budget_id}/delete", {}),
    ):
        for token in ("forged", None):
            form = {**data, "csrf_token": token} if token else data
            response = owner_client.post(SETTINGS + path, data=form)
            assert response.status_code == 400, path
            assert "The CSRF token is" in response.get_data(as_text=True)
    assert _budget_rows(db) == [("campaign", "A", 1000, "EUR")]


def test_labels_are_escaped(owner_client, db) -> None:
    _post(owner_client, "/budgets", scope="source", name="<b>ads</b>", amount="5")
    section = _section(owner_client.get(SETTINGS).get_data(as_text=True))
    assert "&lt;b&gt;ads&lt;/b&gt;" in section and "<b>ads</b>" not in section


def test_only_who_manages_the_site_sees_or_changes_budgets(client, db) -> None:
    owner = add_user(db, "owner@example.com", admin=False)
    viewer = add_user(db, "viewer@example.com", admin=False)
    with db.session() as session:
        shop = add_site(session, SITE, owner=owner)
        shop.public = True  # the viewer may see the stats, not manage the site
        saved = set_budget(session, shop, scope="campaign", name="A", amount="10", currency="EUR")
    budget_id = saved.budget.id
    log_in(client, viewer)
    assert client.get(f"/sites/{SITE}").status_code == 200
    assert client.get(SETTINGS).status_code == 404
    token = csrf_token(client, "/sites")
    for path, data in (
        ("/budgets", {"scope": "campaign", "name": "B", "amount": "5"}),
        (f"/budgets/{budget_id}", {"amount": "99"}),
        (f"/budgets/{budget_id}/delete", {}),
    ):
        response = client.post(SETTINGS + path, data={"csrf_token": token, **data})
        assert response.status_code == 404, path
    assert _budget_rows(db) == [("campaign", "A", 1000, "EUR")]
    # A budget of another site is not found through this one.
    with db.session() as session:
        add_site(session, "mine.example", owner=viewer)
    response = client.post(
        f"/sites/mine.example/settings/budgets/{budget_id}/delete", data={"csrf_token": token}
    )
    assert response.status_code == 404 and _budget_rows(db) == [("campaign", "A", 1000, "EUR")]
