"""`kamiyo users create|set-tier` and `kamiyo keys create` against real databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from kamiyo.accounts import service
from kamiyo.cli import app
from kamiyo.config import get_settings
from kamiyo.db import Database


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("KAMIYO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _check(db_url: str, email: str, password: str | None = None, key: str | None = None) -> tuple[str, bool, bool]:
    async def run() -> tuple[str, bool, bool]:
        db = Database(db_url)
        try:
            async with db.session() as session:
                user = await service.get_user_by_email(session, email)
                assert user is not None
                login = password is not None and await service.authenticate(session, email, password) is not None
                found = key is not None and await service.resolve_key(session, key) is not None
                return user.tier, login, found
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_users_create_generates_and_prints_a_password_once(cli: CliRunner, db_url: str) -> None:
    result = cli.invoke(app, ["users", "create", "Op@Example.com", "--tier", "pro"])
    assert result.exit_code == 0, result.output
    password = result.stdout.strip().splitlines()[-1]
    assert len(password) >= 20
    assert _check(db_url, "op@example.com", password) == ("pro", True, False)
    again = cli.invoke(app, ["users", "create", "op@example.com"])
    assert again.exit_code == 1 and "already exists" in again.output


def test_users_create_reads_the_password_from_stdin(cli: CliRunner, db_url: str) -> None:
    result = cli.invoke(app, ["users", "create", "in@example.com", "--password-stdin"], input="a long passphrase!\n")
    assert result.exit_code == 0, result.output
    assert "a long passphrase!" not in result.output
    assert _check(db_url, "in@example.com", "a long passphrase!") == ("free", True, False)
    short = cli.invoke(app, ["users", "create", "s@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 10" in short.output


def test_set_tier_and_keys_create(cli: CliRunner, db_url: str) -> None:
    assert cli.invoke(app, ["users", "create", "t@example.com"]).exit_code == 0
    result = cli.invoke(app, ["users", "set-tier", "t@example.com", "enterprise"])
    assert result.exit_code == 0, result.output
    key_run = cli.invoke(app, ["keys", "create", "t@example.com", "--name", "ci"])
    assert key_run.exit_code == 0, key_run.output
    key = key_run.stdout.strip().splitlines()[-1]
    assert key.startswith("kmy_")
    assert _check(db_url, "t@example.com", key=key) == ("enterprise", False, True)
    assert cli.invoke(app, ["users", "set-tier", "t@example.com", "platinum"]).exit_code == 2
    missing = cli.invoke(app, ["keys", "create", "ghost@example.com"])
    assert missing.exit_code == 1 and "no user" in missing.output


def test_account_commands_have_help(cli: CliRunner) -> None:
    for args in (["users", "create"], ["users", "set-tier"], ["keys", "create"]):
        result = cli.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
