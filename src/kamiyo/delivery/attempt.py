"""One attempt of a claimed row (webhook or channel), and the metrics of recorded attempts."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import orjson

from kamiyo.config import Settings
from kamiyo.delivery import channels
from kamiyo.delivery.channels import webhook as webhook_channel
from kamiyo.delivery.client import DeliveryClient, SendResult
from kamiyo.delivery.queue import Claimed, Outcome
from kamiyo.delivery.targets import Target, WebhookTarget


async def send_one(
    client: DeliveryClient, settings: Settings, item: Claimed, target: Target | None, now: datetime
) -> SendResult:
    """One attempt of one claimed row to its target."""
    if target is None:
        return SendResult(error="target deleted")
    if target.broken:  # the target is disabled with the reason; its owner sees it
        return SendResult(error=target.broken, disable_reason=target.broken)
    if isinstance(target, WebhookTarget):
        return await webhook_channel.send(client, target.url, item.message_id, item.body, target.secrets(now), now)
    message = orjson.loads(item.body)
    return await channels.send_alert(target.kind, client, target.destination, message, now, settings)


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
