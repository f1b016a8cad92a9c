"""Outgoing webhooks: the Standard Webhooks body, frozen once, and a signed POST per attempt."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kamiyo.delivery.client import DeliveryClient, SendResult
from kamiyo.delivery.signing import webhook_headers
from kamiyo.kit.jsonresp import dumps
from kamiyo.kit.timeutil import iso


def render_body(event_type: str, exploit: dict[str, Any], timestamp: datetime) -> str:
    """`{"type","timestamp","data"}`: stored as text at creation; these exact bytes are signed and sent."""
    return dumps({"type": event_type, "timestamp": iso(timestamp), "data": exploit}).decode()


async def send(
    client: DeliveryClient, url: str, message_id: str, body: str, secrets: Sequence[str], now: datetime
) -> SendResult:
    raw = body.encode()
    headers = webhook_headers(message_id, int(now.timestamp()), raw, secrets)
    result = await client.post(url, raw, headers, now=now)
    if result.status == 410:
        result.disable_reason = "the endpoint answered 410 Gone"
    return result
