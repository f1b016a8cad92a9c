"""`kamiyo users …`, `kamiyo keys …` and `kamiyo db upgrade` against real databases; help texts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
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


def _table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_users_list_and_keys_list_fit_80_columns(cli: CliRunner, db_url: str) -> None:
    long_email = "a.rather.long.operator.address@accounts.example.org"
    for email, tier in (("l1@example.com", "pro"), (long_email, "enterprise")):
        assert cli.invoke(app, ["users", "create", email, "--tier", tier]).exit_code == 0
    keys = [cli.invoke(app, ["keys", "create", long_email, "--name", n]).stdout.split()[-1] for n in ("ci", "laptop")]
    users = cli.invoke(app, ["users", "list"])
    assert users.exit_code == 0, users.output
    assert all(len(line) <= 80 for line in _table_lines(users.stdout)), users.stdout
    row = next(line for line in users.stdout.splitlines() if "l1@example.com" in line)
    assert "pro" in row and " 0 " in row
    assert "enterprise" in users.stdout and " 2 " in users.stdout
    only_pro = cli.invoke(app, ["users", "list", "--tier", "pro"])
    assert "l1@example.com" in only_pro.stdout and "enterprise" not in only_pro.stdout
    listed = cli.invoke(app, ["keys", "list", long_email])
    assert listed.exit_code == 0, listed.output
    assert all(len(line) <= 80 for line in _table_lines(listed.stdout)), listed.stdout
    for key in keys:
        assert key[:12] in listed.stdout and key not in listed.stdout  # the prefix, never the key
    assert "laptop" in listed.stdout and "ci" in listed.stdout


def test_keys_revoke_by_prefix_stops_the_key(cli: CliRunner, db_url: str) -> None:
    assert cli.invoke(app, ["users", "create", "r@example.com"]).exit_code == 0
    key = cli.invoke(app, ["keys", "create", "r@example.com"]).stdout.split()[-1]
    kept = cli.invoke(app, ["keys", "create", "r@example.com"]).stdout.split()[-1]
    assert _check(db_url, "r@example.com", key=key)[2] is True
    result = cli.invoke(app, ["keys", "revoke", key[:12]])
    assert result.exit_code == 0, result.output
    assert "revoked" in result.output and "r@example.com" in result.output
    assert _check(db_url, "r@example.com", key=key)[2] is False
    assert _check(db_url, "r@example.com", key=kept)[2] is True
    assert key[:12] not in cli.invoke(app, ["keys", "list", "r@example.com"]).stdout
    assert key[:12] in cli.invoke(app, ["keys", "list", "r@example.com", "--revoked"]).stdout
    again = cli.invoke(app, ["keys", "revoke", key[:12]])
    assert again.exit_code == 1 and "no active key" in again.output
    bad = cli.invoke(app, ["keys", "revoke", "nonsense"])
    assert bad.exit_code == 1 and "prefix" in bad.output


def test_db_upgrade_says_what_it_did(empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kamiyo import migrations

    head = migrations.current_heads()[0]
    monkeypatch.setenv("KAMIYO_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["db", "upgrade"])
        assert first.exit_code == 0, first.output
        assert f"database at revision {head} (latest)" in first.output and "upgraded from an empty" in first.output
        monkeypatch.setenv("KAMIYO_DATABASE_URL", empty_db_url)  # already migrated, on each backend
        get_settings.cache_clear()
        second = CliRunner().invoke(app, ["db", "upgrade"])
        assert second.exit_code == 0, second.output
        assert f"database at revision {head} (latest): nothing to do" in second.output
    finally:
        get_settings.cache_clear()


def _commands(group: Any, path: list[str]) -> Iterator[list[str]]:
    yield path
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name]


def test_every_help_text_is_plain_words() -> None:
    root = typer.main.get_command(app)
    paths = list(_commands(root, []))
    assert ["users", "list"] in paths and ["keys", "revoke"] in paths and ["keys", "list"] in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, path
        assert "<bool>" not in result.output, (path, result.output)
        assert all(len(line) <= 80 for line in result.output.splitlines()), (path, result.output)


def test_sources_table_fits_80_columns_with_whole_names(cli: CliRunner) -> None:
    from kamiyo.sources import REGISTRY

    result = cli.invoke(app, ["sources"])
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in _table_lines(result.stdout)), result.stdout
    for name in REGISTRY:
        assert name in result.stdout
