"""Stored secrets this server's key cannot decrypt stop only their own target, and the operator is told."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from kamiyo.cli import app as cli_app
from kamiyo.cli import require_known_key
from kamiyo.config import get_settings
from kamiyo.db import Database
from kamiyo.delivery.models import AlertChannel, UserWebhook
from kamiyo.delivery.targets import BROKEN
from tests.delivery.support import (
    Receiver,
    add_channel,
    add_webhook,
    deliveries,
    delivery_settings,
    ingest,
    report,
    running_worker,
    wait_until,
)
from tests.support.app import running
from tests.support.users import user_with_key


async def _spoil(database: Database, model: type[UserWebhook] | type[AlertChannel], target_id: int) -> None:
    """What a restore onto a host with another KAMIYO_SECRET_KEY leaves: ciphertext this key cannot open."""
    column = "secret_enc" if model is UserWebhook else "target_enc"
    async with database.session() as session:
        await session.execute(update(model).where(model.id == target_id).values({column: "gAAAAAgarbage"}))


async def test_one_undecryptable_secret_disables_its_endpoint_and_the_others_get_their_deliveries(
    db_url: str, database: Database
) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running(settings, workers=False) as (_app, client), running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="team")
        hooks = [(await add_webhook(database, user_id, f"{rx.url}/hook{i}"))[0] for i in range(8)]
        bad = hooks[3]
        await _spoil(database, UserWebhook, bad)
        bad_channel = await add_channel(database, user_id, "slack", rx.url + "/slack-bad")
        await _spoil(database, AlertChannel, bad_channel)
        await ingest(database, report())
        got = await rx.wait_for(7, timeout=10)
        assert sorted(r.path for r in got) == sorted(f"/hook{i}" for i in range(8) if i != 3)

        async def bad_settled() -> bool:
            rows = await deliveries(database, bad)
            return len(rows) == 1 and rows[0].status != "pending"

        assert await wait_until(bad_settled, 10)
        [row] = await deliveries(database, bad)
        assert row.status == "failed" and row.attempts == 1
        assert row.error is not None and "cannot be decrypted" in row.error
        async with database.session() as session:
            hook = await session.get(UserWebhook, bad)
            assert hook is not None and hook.enabled is False
            assert hook.disabled_reason is not None and "KAMIYO_SECRET_KEY" in hook.disabled_reason
            assert await wait_until(lambda: _disabled(database, bad_channel), 10)
            others = (await session.execute(select(UserWebhook.enabled).where(UserWebhook.id != bad))).scalars()
            assert all(others)
        for hook_id in hooks:
            if hook_id != bad:
                [ok] = await deliveries(database, hook_id)
                assert ok.status == "succeeded"
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and health["secrets"]["undecryptable_targets"] == 2
        await asyncio.sleep(0.3)
        assert len(rx.requests) == 7  # nothing sent to the broken targets, nothing sent twice


async def _disabled(database: Database, channel_id: int) -> bool:
    async with database.session() as session:
        channel = await session.get(AlertChannel, channel_id)
        assert channel is not None
        await session.refresh(channel)
        return not channel.enabled and "cannot be decrypted" in (channel.disabled_reason or "")


async def test_health_is_ok_with_readable_secrets_and_degraded_under_another_key(
    db_url: str, database: Database
) -> None:
    user_id, _ = await user_with_key(database, tier="team")
    await add_webhook(database, user_id, "http://127.0.0.1:9/x")
    async with running(delivery_settings(db_url), workers=False) as (_app, client):
        body = (await client.get("/health")).json()
        assert body["status"] == "ok" and body["secrets"] == {
            "ok": True,
            "undecryptable_targets": 0,
            "sample_failures": 0,
        }
    async with database.session() as session:  # as a worker running under another key leaves it
        reason = BROKEN["webhook"]
        await session.execute(update(UserWebhook).values(enabled=False, disabled_reason=reason))
    async with running(delivery_settings(db_url, KAMIYO_SECRET_KEY="a-new-key"), workers=False) as (_app, client):
        body = (await client.get("/health")).json()
        assert body["status"] == "degraded"
        assert body["secrets"] == {"ok": False, "undecryptable_targets": 1, "sample_failures": 1}
    async with running(delivery_settings(db_url), workers=False) as (
        _app,
        client,
    ):  # the right key is back: readable again
        body = (await client.get("/health")).json()
        assert body["status"] == "ok" and body["secrets"]["undecryptable_targets"] == 0


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("KAMIYO_DATABASE_URL", db_url)
    monkeypatch.setenv("KAMIYO_SEED", "0")
    monkeypatch.setenv("KAMIYO_OFFLINE", "1")
    get_settings.cache_clear()
    return CliRunner()


def test_serve_refuses_to_start_under_a_new_key_when_secrets_are_stored(
    cli_env: CliRunner, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def setup() -> None:
        database = Database(db_url)
        try:
            user_id, _ = await user_with_key(database, tier="team")
            await add_webhook(database, user_id, "http://127.0.0.1:9/x")
        finally:
            await database.dispose()

    monkeypatch.setenv("KAMIYO_SECRET_KEY", "a-new-key")
    get_settings.cache_clear()
    require_known_key()  # nothing stored yet: any key will do
    asyncio.run(setup())
    try:
        result = cli_app_invoke(cli_env, ["serve", "--port", "9"])
        assert result.exit_code == 1
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "refusing to start" in lines[0] and "KAMIYO_SECRET_KEY" in lines[0]
        assert cli_app_invoke(cli_env, ["worker"]).exit_code == 1
        monkeypatch.setenv("KAMIYO_SECRET_KEY", "test-server-key")  # the key the secret was stored with
        get_settings.cache_clear()
        require_known_key()  # does not exit
    finally:
        get_settings.cache_clear()


def cli_app_invoke(runner: CliRunner, args: list[str]) -> Any:
    return runner.invoke(cli_app, args, catch_exceptions=False)
