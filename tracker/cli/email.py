"""`tracker email test ADDRESS`: check the SMTP settings by sending one mail at once."""

from __future__ import annotations

import click

from tracker.cli.context import CliContext, pass_context
from tracker.mail import MailError, send_test


@click.group()
def email() -> None:
    """Mail: reports, alerts and invitations go out through the SMTP server of the settings."""


@email.command("test")
@click.argument("address")
@pass_context
def email_test(ctx: CliContext, address: str) -> None:
    """Send a test mail to ADDRESS now, through the configured SMTP server; a failure says
    in one line what failed (connection refused, authentication, TLS)."""
    settings = ctx.settings
    try:
        send_test(settings, address)
    except MailError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Sent a test mail to {address} through {settings.smtp_host}:{settings.smtp_port} "
        f"({settings.smtp_security})."
    )


COMMANDS: list[click.Command] = [email]
