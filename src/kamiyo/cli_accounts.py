"""`kamiyo users …` and `kamiyo keys …`: operator administration of accounts and API keys without billing."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from kamiyo.cli_support import account_command, console, table_console

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from kamiyo.accounts.models import ApiKey, User

users_app = typer.Typer(
    help="User accounts: operator administration without billing.", no_args_is_help=True, rich_markup_mode=None
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True, rich_markup_mode=None)


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


async def _user_by_email(session: AsyncSession, email: str) -> User:
    from kamiyo.accounts import service
    from kamiyo.errors import NotFound

    user = await service.get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email.strip().lower()}")
    return user


def _check_tier(tier: str) -> None:
    from kamiyo.tiers import TIERS

    if tier not in TIERS:
        console.print(f"[red]tier must be one of {', '.join(TIERS)}")
        raise typer.Exit(2)


def users_table(rows: Sequence[tuple[User, int]]) -> Table:
    table = Table(title=f"{len(rows)} users", title_justify="left")
    for column in ("id", "e-mail", "tier", "admin", "active", "keys", "created"):
        table.add_column(column, justify="right" if column in ("id", "keys") else "left", overflow="fold")
    for user, keys in rows:
        table.add_row(
            str(user.id),
            user.email,
            user.tier,
            "yes" if user.is_admin else "",
            "yes" if user.is_active else "no",
            str(keys),
            _date(user.created_at)[:10],
        )
    return table


def keys_table(email: str, keys: Sequence[ApiKey]) -> Table:
    table = Table(title=f"API keys of {email}", title_justify="left")
    for column in ("prefix", "name", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")
    for key in keys:
        table.add_row(
            key.prefix,
            key.name,
            _date(key.created_at),
            _date(key.last_used_at),
            _date(key.revoked_at) if key.revoked_at else "",
        )
    return table


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="E-mail address, the login.")],
    tier: Annotated[str, typer.Option(help="free, pro, team or enterprise.")] = "free",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (else one is generated).")
    ] = False,
) -> None:
    """Create a user; a generated password is printed once on standard output."""
    from kamiyo.accounts import service

    _check_tier(tier)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else service.generate_password()

    async def work(session: AsyncSession) -> int:
        return (await service.create_user(session, email, password, tier=tier)).id

    user_id = account_command(work)
    console.print(f"created user {user_id} ({email.strip().lower()}, tier {tier})")
    if not password_stdin:
        console.print("generated password (shown once):")
        typer.echo(password)


@users_app.command("set-tier")
def users_set_tier(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    tier: Annotated[str, typer.Argument(help="free, pro, team or enterprise.")],
) -> None:
    """Set a user's tier by hand (billing without Stripe); it applies to their next request."""
    from kamiyo.delivery.plan_limits import set_tier

    _check_tier(tier)

    async def work(session: AsyncSession) -> None:
        await set_tier(session, await _user_by_email(session, email), tier)

    account_command(work)
    console.print(f"{email.strip().lower()} is now on the {tier} tier")


@users_app.command("set-admin")
def users_set_admin(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    off: Annotated[bool, typer.Option("--off", help="Take admin rights away instead.")] = False,
) -> None:
    """Let a user review community submissions (the dashboard's admin pages), or stop them."""
    from kamiyo.kit.timeutil import utcnow

    async def work(session: AsyncSession) -> None:
        user = await _user_by_email(session, email)
        user.is_admin, user.updated_at = not off, utcnow()

    account_command(work)
    console.print(f"{email.strip().lower()} is {'no longer' if off else 'now'} an admin")


@users_app.command("list")
def users_list(
    tier: Annotated[str | None, typer.Option(help="Only users on this tier.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Rows to show at most, newest first.")] = 1000,
) -> None:
    """Table of users, newest first: e-mail, tier, admin, active, number of active keys, created."""
    from kamiyo.accounts import service

    if tier is not None:
        _check_tier(tier)
    rows = account_command(lambda session: service.list_users(session, tier=tier, limit=limit))
    table_console().print(users_table(rows))


@keys_app.command("create")
def keys_create(
    email: Annotated[str, typer.Argument(help="The owner's e-mail address.")],
    name: Annotated[str, typer.Option("--name", help="A label to recognise the key by.")] = "cli",
) -> None:
    """Create an API key for a user; the key is printed once on standard output and never again."""
    from kamiyo.accounts import service

    async def work(session: AsyncSession) -> str:
        user = await _user_by_email(session, email)
        return (await service.create_key(session, user.id, name))[1]

    key = account_command(work)
    console.print(f"API key for {email.strip().lower()} (shown once, store it now):")
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    email: Annotated[str, typer.Argument(help="The owner's e-mail address.")],
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
) -> None:
    """Table of a user's API keys by prefix (never the key itself): name, created, last used."""
    from kamiyo.accounts import service

    async def work(session: AsyncSession) -> list[ApiKey]:
        user = await _user_by_email(session, email)
        return await service.list_keys(session, user.id, include_revoked=revoked)

    keys = account_command(work)
    table_console().print(keys_table(email.strip().lower(), keys))


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix as `kamiyo keys list` shows it (kmy_ and 8 more).")],
) -> None:
    """Revoke an API key at once, found by its prefix; it stops working on the next request."""
    from kamiyo.accounts import service

    key, email = account_command(lambda session: service.revoke_key_by_prefix(session, prefix))
    console.print(f"revoked key {key.prefix} ({key.name}) of {email}", highlight=False)
