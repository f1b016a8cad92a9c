"""One attempt of a claimed row (webhook or channel), and the metrics of recorded attempts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import orjson

from kamiyo.config import Settings
from kamiyo.delivery import channels
from kamiyo.delivery.channels import webhook as webhook_channel
from kamiyo.delivery.client import DeliveryClient, SendResult
from kamiyo.delivery.queue import Claimed, Outcome
from kamiyo.delivery.targets import Target, WebhookTarget

log = logging.getLogger(__name__)


async def send_one(
    client: DeliveryClient, settings: Settings, item: Claimed, target: Target | None, now: datetime
) -> SendResult:
    """One attempt of one claimed row to its target; never raises.

    Whatever goes wrong in a send (a bad setting, a message a library refuses) is this row's failed
    attempt with its error, retried by the schedule like any other failure.
    """
    try:
        return await _send(client, settings, item, target, now)
    except Exception as exc:
        log.warning("%s %d: the send raised %s", item.queue.name, item.target_id, type(exc).__name__)
        return SendResult(error=_redact(f"{type(exc).__name__}: {exc}", settings)[:300])


async def _send(
    client: DeliveryClient, settings: Settings, item: Claimed, target: Target | None, now: datetime
) -> SendResult:
    if target is None:
        return SendResult(error="target deleted")
    if target.broken:  # the target is disabled with the reason; its owner sees it
        return SendResult(error=target.broken, disable_reason=target.broken)
    if isinstance(target, WebhookTarget):
        return await webhook_channel.send(client, target.url, item.message_id, item.body, target.secrets(now), now)
    message = orjson.loads(item.body)
    return await channels.send_alert(target.kind, client, target.destination, message, now, settings)


def _redact(text: str, settings: Settings) -> str:
    """No server credential in an error its owner (or a log) sees."""
    password = urlsplit(settings.smtp_url).password if settings.smtp_url else None
    for secret in (settings.telegram_bot_token, settings.smtp_url, password):
        if secret:
            text = text.replace(secret, "***")
    return text


def observe(batch: Sequence[Outcome], now: datetime) -> None:
    """Metrics: one count per attempt by channel and outcome; latency from queueing to success."""
    from kamiyo.ops.metrics import record_delivery

    for outcome in batch:
        if not outcome.record_attempt:
            continue
        channel = str(outcome.extra.get("channel", outcome.claimed.queue.name))
        queued = outcome.claimed.created_at
        seconds = (now - queued).total_seconds() if outcome.result.ok and queued else None
        with contextlib.suppress(Exception):  # metrics never break delivery
            record_delivery(channel, "succeeded" if outcome.result.ok else "failed", seconds)
