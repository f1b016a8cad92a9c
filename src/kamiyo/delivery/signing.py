"""Standard Webhooks signatures over the exact bytes sent.

`webhook-signature` is `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the decoded
secret; during a rotation window one signature per active secret, separated by single spaces.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Sequence

from kamiyo import __version__
from kamiyo.kit.crypto import secret_bytes

USER_AGENT = f"Kamiyo-Webhooks/{__version__}"


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.digest(secret_bytes(secret), f"{message_id}.{timestamp}.".encode() + body, "sha256")
    return "v1," + base64.b64encode(mac).decode()


def webhook_headers(message_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """Headers of one attempt; `timestamp` is the attempt's own time (unix seconds)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, message_id, timestamp, body) for secret in secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
