"""`tracker invite`: an invitation link to join a site, printed to copy, and mailed when the
server sends mail. The command line acts as an owner, so it may invite owners too."""

from __future__ import annotations

from datetime import timedelta

import click

from tracker import audit
from tracker.cli.context import CliContext, pass_context, site_session
from tracker.invitations import create_invitation, invite_path, mail_invitation
from tracker.members import OWNER, ROLES, VIEWER, MemberError


@click.command("invite")
@click.argument("site")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(ROLES), default=VIEWER, show_default=True, help="Their role."
)
@pass_context
def invite(ctx: CliContext, site: str, email: str, role: str) -> None:
    """Invite EMAIL to SITE (a domain) and print the single-use link to send them (mailed to
    them too when the server sends mail and base_url is set).

    The link expires after the setting invite_expiry_hours. Its address is the setting
    base_url; without it only the path is printed: put your server's address before it.
    """
    hours = ctx.settings.invite_expiry_hours
    with site_session(ctx, site, MemberError) as (session, found):
        invitation, token = create_invitation(
            session,
            found,
            email,
            role,
            actor_role=OWNER,
            by=None,
            expiry=timedelta(hours=hours),
        )
        mailed = mail_invitation(session, ctx.settings, invitation, found, token, None)
        detail = f"{invitation.email} invited as {role}" + (" (mailed)" if mailed else "")
        audit.record(session, None, found, "invite.create", detail)
        domain, address = found.domain, invitation.email
    base = ctx.settings.base_url.rstrip("/")
    sent = f" (mailed to {address})" if mailed else ""
    click.echo(
        f"Invited {address} to {domain} as {role}{sent}; the link works once, for {hours} hours:"
    )
    click.echo(base + invite_path(token))
    if not base:
        click.echo(
            "(Only the path: set base_url to your server's address to print the whole link.)",
            err=True,
        )


COMMANDS: list[click.Command] = [invite]
