"""`tracker goals` and `tracker funnels`: define what counts as a result, from the shell."""

from __future__ import annotations

import click

from tracker import audit
from tracker.cli.context import SITE_OPTION, CliContext, pass_context, site_session, table
from tracker.goals import (
    GoalError,
    add_funnel,
    add_goal,
    delete_funnel,
    delete_goal,
    find_funnel,
    find_goal,
    funnel_problems,
    funnel_step_names,
    goal_label,
    list_funnels,
    list_goals,
)


@click.group()
def goals() -> None:
    """Add, list and delete a site's goals (page visits, custom events, link clicks)."""


@goals.command("add")
@SITE_OPTION
@click.option("--name", required=True, help="How the goal is shown, e.g. Signup.")
@click.option("--page", metavar="PATTERN", help="A page path; * = any characters: /order/*/done.")
@click.option("--event", metavar="NAME", help="A custom event name, e.g. Signup.")
@click.option("--prop", metavar="KEY=VALUE", help="With --event: only events with this property.")
@click.option(
    "--click", "click_pattern", metavar="PATTERN", help="A link or download target: *.pdf."
)
@click.option("--currency", default="", metavar="CODE", help="ISO 4217 code revenue is shown in.")
@pass_context
def goals_add(
    ctx: CliContext,
    domain: str,
    name: str,
    page: str | None,
    event: str | None,
    prop: str | None,
    click_pattern: str | None,
    currency: str,
) -> None:
    """Add a goal: one of --page, --event or --click. It counts past data too."""
    kinds = (("page", page), ("event", event), ("click", click_pattern))
    given = [(k, v) for k, v in kinds if v is not None]
    if len(given) != 1:
        raise click.ClickException("give exactly one of --page, --event or --click")
    kind, value = given[0]
    if prop is not None and kind != "event":
        raise click.ClickException("--prop narrows an event goal: use it with --event")
    key, equals, prop_value = (prop or "").partition("=")
    if prop is not None and not equals:
        raise click.ClickException(f"--prop {prop!r}: write it as KEY=VALUE, e.g. plan=pro")
    with site_session(ctx, domain, GoalError) as (session, site):
        goal = add_goal(
            session,
            site,
            name=name,
            kind=kind,
            pattern=value if kind != "event" else "",
            event_name=value if kind == "event" else "",
            prop_key=key,
            prop_value=prop_value,
            currency=currency,
        )
        text = f"Added goal {goal.name!r}: {goal_label(goal)}."
        audit.record(session, None, site, "goal.add", f"{goal.name!r}: {goal_label(goal)}")
    click.echo(text)


@goals.command("list")
@SITE_OPTION
@pass_context
def goals_list(ctx: CliContext, domain: str) -> None:
    """List the site's goals in their display order."""
    with site_session(ctx, domain, GoalError) as (session, site):
        rows = [
            (str(n), g.name, g.kind, goal_label(g), g.currency or "-")
            for n, g in enumerate(list_goals(session, site), 1)
        ]
    if not rows:
        click.echo(f"No goals yet. Add one with: tracker goals add --site {domain} ...")
        return
    table(rows, ("#", "NAME", "KIND", "COUNTS", "CURRENCY"))


@goals.command("delete")
@SITE_OPTION
@click.argument("name")
@pass_context
def goals_delete(ctx: CliContext, domain: str, name: str) -> None:
    """Delete the goal NAME (stored events stay; funnels using it become broken)."""
    with site_session(ctx, domain, GoalError) as (session, site):
        goal = find_goal(session, site, name)
        if goal is None:
            raise click.ClickException(f"no goal {name!r} on {site.domain}")
        name = goal.name
        broken = delete_goal(session, site, goal)
        audit.record(session, None, site, "goal.delete", repr(name))
    click.echo(f"Deleted goal {name!r}.")
    for funnel in broken:
        click.echo(f"Funnel {funnel!r} used it and is now broken: delete it or fix its steps.")


@click.group()
def funnels() -> None:
    """Add, list and delete a site's funnels (2 to 8 goals reached in order in a visit)."""


@funnels.command("add")
@SITE_OPTION
@click.option("--name", required=True, help="How the funnel is shown, e.g. Checkout.")
@click.option(
    "--step", "steps", multiple=True, metavar="GOAL", help="A goal's name; repeat, in order."
)
@pass_context
def funnels_add(ctx: CliContext, domain: str, name: str, steps: tuple[str, ...]) -> None:
    """Add a funnel: --step GOAL two to eight times, in the order visitors go."""
    with site_session(ctx, domain, GoalError) as (session, site):
        ids = []
        for number, step in enumerate(steps, 1):
            goal = find_goal(session, site, step)
            if goal is None:
                raise click.ClickException(f"step {number}: no goal {step!r} on {site.domain}")
            ids.append(goal.id)
        funnel = add_funnel(session, site, name=name, steps=ids)
        text = f"Added funnel {funnel.name!r}: {' -> '.join(steps)}."
        audit.record(session, None, site, "funnel.save", text)
    click.echo(text)


@funnels.command("list")
@SITE_OPTION
@pass_context
def funnels_list(ctx: CliContext, domain: str) -> None:
    """List the site's funnels and their steps; a broken one says what to fix."""
    with site_session(ctx, domain, GoalError) as (session, site):
        rows = []
        for funnel in list_funnels(session, site):
            steps = funnel_step_names(session, funnel)
            names = [n if n is not None else "(deleted goal)" for n in steps]
            problems = funnel_problems(session, funnel)
            status = "broken: " + " ".join(problems) if problems else "ok"
            rows.append((funnel.name, " -> ".join(names), status))
    if not rows:
        click.echo(f"No funnels yet. Add one with: tracker funnels add --site {domain} ...")
        return
    table(rows, ("NAME", "STEPS", "STATUS"))


@funnels.command("delete")
@SITE_OPTION
@click.argument("name")
@pass_context
def funnels_delete(ctx: CliContext, domain: str, name: str) -> None:
    """Delete the funnel NAME."""
    with site_session(ctx, domain, GoalError) as (session, site):
        funnel = find_funnel(session, site, name)
        if funnel is None:
            raise click.ClickException(f"no funnel {name!r} on {site.domain}")
        name = funnel.name
        delete_funnel(session, funnel)
        audit.record(session, None, site, "funnel.delete", repr(name))
    click.echo(f"Deleted funnel {name!r}.")


COMMANDS: list[click.Command] = [goals, funnels]
