"""`tracker sites`, `tracker users` and `tracker apikeys`: account and site administration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker import audit
from tracker.accounts import (
    SCOPES,
    WRITE,
    AccountError,
    create_api_key,
    create_user,
    delete_user,
    describe_api_key,
    disable_2fa,
    find_api_key,
    find_user,
    list_users,
    require_2fa,
    revoke_api_key,
    set_admin,
    set_password,
)
from tracker.cli.context import CliContext, pass_context, table
from tracker.columnar.invalidate import forget
from tracker.db.models import ApiKey, User
from tracker.sites import SiteError, add_site, delete_site, find_site, list_sites
from tracker.twofactor import is_enabled


@contextmanager
def _session(ctx: CliContext) -> Iterator[Session]:
    """A transaction whose user-facing errors become one-line CLI errors."""
    try:
        with ctx.db.session() as session:
            yield session
    except (AccountError, SiteError) as exc:
        raise click.ClickException(str(exc)) from None


def _user_or_fail(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise click.ClickException(f"no user with email {email!r}")
    return user


@click.group()
def sites() -> None:
    """Add, list and delete the sites being measured."""


@sites.command("add")
@click.argument("domain")
@click.option("--timezone", default="UTC", show_default=True, help="Site time zone (IANA name).")
@click.option(
    "--owner", metavar="EMAIL", help="User who becomes its owner (server admins see all sites)."
)
@pass_context
def sites_add(ctx: CliContext, domain: str, timezone: str, owner: str | None) -> None:
    """Register DOMAIN (e.g. example.com) and print its script tag."""
    with _session(ctx) as session:
        owner_user = _user_or_fail(session, owner) if owner else None
        site = add_site(session, domain, timezone=timezone, owner=owner_user)
        domain = site.domain
        audit.record(session, None, site, "site.create", domain)
    click.echo(f"Added {domain}. Script tag:")
    click.echo(
        f'<script defer data-site="{domain}" src="https://YOUR-TRACKER-HOST/tracker.js"></script>'
    )


@sites.command("list")
@pass_context
def sites_list(ctx: CliContext) -> None:
    """List every site."""
    with _session(ctx) as session:
        rows = [(s.domain, s.timezone, "yes" if s.public else "no") for s in list_sites(session)]
    if not rows:
        click.echo("No sites yet. Add one with: tracker sites add example.com")
        return
    table(rows, ("DOMAIN", "TIMEZONE", "PUBLIC"))


@sites.command("delete")
@click.argument("domain")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def sites_delete(ctx: CliContext, domain: str, yes: bool) -> None:
    """Delete DOMAIN and all its stored data."""
    with _session(ctx) as session:
        site = find_site(session, domain)
        if site is None:
            raise click.ClickException(f"no site {domain!r}")
        if not yes:
            click.confirm(f"Delete {site.domain} and all its data?", abort=True)
        audit.record(session, None, site, "site.delete", "The site and its data")
        delete_site(session, site)
        site_id = site.id
    forget(ctx.db.columnar_root, site_id)  # once the deletion is committed
    click.echo(f"Deleted {domain}.")


@click.group()
def users() -> None:
    """Add, list and delete user accounts, administrators, passwords, two-factor login."""


@users.command("add")
@click.argument("email")
@click.option("--password", help="Password (prompted for, hidden, when omitted).")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@pass_context
def users_add(ctx: CliContext, email: str, password: str | None, admin: bool) -> None:
    """Create a user who can log in with EMAIL."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _session(ctx) as session:
        user = create_user(session, email, password, is_admin=admin)
        email = user.email
    click.echo(f"Added {'admin ' if admin else ''}user {email}.")


@users.command("list")
@pass_context
def users_list(ctx: CliContext) -> None:
    """List users."""
    with _session(ctx) as session:
        rows = [
            (
                u.email,
                "yes" if u.is_admin else "no",
                ("on" if u.two_factor else "off") + (", required" if u.require_2fa else ""),
                u.created_at.strftime("%Y-%m-%d"),
                u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never",
            )
            for u in list_users(session)
        ]
    if not rows:
        click.echo("No users yet. Add one with: tracker users add you@example.com --admin")
        return
    table(rows, ("EMAIL", "ADMIN", "2FA", "CREATED", "LAST LOGIN (UTC)"))


@users.command("password")
@click.argument("email")
@click.option("--password", help="The new password (prompted for, hidden, when omitted).")
@pass_context
def users_password(ctx: CliContext, email: str, password: str | None) -> None:
    """Set a new password for EMAIL (a forgotten one); every session of the user ends."""
    with _session(ctx) as session:
        user = _user_or_fail(session, email)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _session(ctx) as session:
        user = _user_or_fail(session, email)
        set_password(session, user, password)
        audit.record(session, None, None, "account.password", f"Password of {user.email} reset")
    click.echo(f"New password set for {user.email}; their sessions are logged out.")


@users.command("disable-2fa")
@click.argument("email")
@pass_context
def users_disable_2fa(ctx: CliContext, email: str) -> None:
    """Turn off two-factor login for EMAIL (a lost phone and no recovery code left)."""
    with _session(ctx) as session:
        user = _user_or_fail(session, email)
        disable_2fa(session, user)
        audit.record(
            session, None, None, "account.2fa_off", f"Two-factor login of {user.email} turned off"
        )
    click.echo(
        f"Two-factor login is off for {user.email}: the password alone logs in, and they can "
        "set it up again on their account page."
    )


@users.command("require-2fa")
@click.argument("email")
@click.option("--off", is_flag=True, help="Lift the requirement (the server's rules still apply).")
@pass_context
def users_require_2fa(ctx: CliContext, email: str, off: bool) -> None:
    """Require two-factor login of EMAIL: without it set up, they are sent to set it up
    after the password, and cannot turn it off."""
    with _session(ctx) as session:
        user = _user_or_fail(session, email)
        require_2fa(session, user, not off)
        state = "no longer required" if off else "required"
        audit.record(
            session, None, None, "account.2fa_required", f"Two-factor login {state} of {user.email}"
        )
        enabled = is_enabled(user)
    if off:
        click.echo(f"Two-factor login is no longer required of {user.email} by this setting.")
    elif enabled:
        click.echo(f"Two-factor login is required of {user.email} (it is on): it stays on.")
    else:
        click.echo(
            f"Two-factor login is required of {user.email}: after their password they are sent "
            "to set it up."
        )


@users.command("admin")
@click.argument("email")
@click.option("--off", is_flag=True, help="Take the administrator rights away instead.")
@pass_context
def users_admin(ctx: CliContext, email: str, off: bool) -> None:
    """Make EMAIL a server administrator (every site, the users, the audit log); refused
    for the last one with --off."""
    with _session(ctx) as session:
        user = _user_or_fail(session, email)
        changed = set_admin(session, user, not off, by=None)
        if changed:
            state = "no longer a server administrator" if off else "a server administrator"
            audit.record(session, None, None, "account.admin", f"{user.email} is {state}")
    if not changed:
        click.echo(f"{user.email} is {'not ' if off else ''}a server administrator already.")
    elif off:
        click.echo(f"{user.email} is no longer a server administrator.")
    else:
        click.echo(f"{user.email} is a server administrator.")


@users.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def users_delete(ctx: CliContext, email: str, yes: bool) -> None:
    """Delete the account EMAIL: its memberships and API keys go, its sessions end. Refused
    for the last owner of a site and the last administrator."""
    with _session(ctx) as session:
        user = _user_or_fail(session, email)
        if not yes:
            click.confirm(f"Delete the account {user.email}?", abort=True)
        deleted = delete_user(session, user, by=None)
        audit.record(session, None, None, "account.delete", deleted.detail)
    click.echo(f"{deleted.detail}; their sessions are logged out.")


@click.group()
def apikeys() -> None:
    """Create, list and revoke API keys (Stats API and trusted ingestion)."""


@apikeys.command("create")
@click.argument("email")
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option(
    "--scope",
    type=click.Choice(list(SCOPES)),
    default=WRITE,
    show_default=True,
    help="read: read stats only; write: also send events, costs, goals and notes.",
)
@pass_context
def apikeys_create(ctx: CliContext, email: str, name: str, scope: str) -> None:
    """Create an API key for the user EMAIL; it is printed once, store it now."""
    with _session(ctx) as session:
        owner = _user_or_fail(session, email)
        key, plain = create_api_key(session, owner, name, scope)
        audit.record(session, None, None, "apikey.create", describe_api_key(key, owner))
    click.echo(plain)


@apikeys.command("list")
@pass_context
def apikeys_list(ctx: CliContext) -> None:
    """List API keys (their prefixes; the keys themselves are not stored)."""
    with _session(ctx) as session:
        query = select(ApiKey, User.email).join(User).order_by(User.email, ApiKey.id)
        rows = [
            (
                k.id,
                f"{k.prefix}…",
                email,
                k.name,
                k.scope,
                k.created_at.strftime("%Y-%m-%d"),
                k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never",
            )
            for k, email in session.execute(query)
        ]
    if not rows:
        click.echo("No API keys yet. Create one with: tracker apikeys create you@example.com")
        return
    table(rows, ("ID", "KEY", "USER", "NAME", "SCOPE", "CREATED", "LAST USED"))


@apikeys.command("revoke")
@click.argument("key")
@pass_context
def apikeys_revoke(ctx: CliContext, key: str) -> None:
    """Revoke KEY (its id or prefix, as listed, or the key itself): refused from the next
    request on, on every server."""
    with _session(ctx) as session:
        found = find_api_key(session, key)
        owner = session.get(User, found.user_id)
        said = f"{found.prefix}… of {owner.email}" if owner else f"{found.prefix}…"
        audit.record(session, None, None, "apikey.revoke", describe_api_key(found, owner))
        revoke_api_key(session, found)
    click.echo(f"Revoked {said}; it is refused from the next request on.")


COMMANDS: list[click.Command] = [sites, users, apikeys]
