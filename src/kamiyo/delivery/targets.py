"""Where claimed rows go: endpoint URLs and decrypted secrets, channel destinations.

Loaded once per claimed batch (one query per queue); decryption results are cached by ciphertext, so
a rotation or edit (new ciphertext) is picked up at once and 10,000 sends decrypt each secret once.
A secret this server's key cannot open (a restore onto a host with another `KAMIYO_SECRET_KEY`, a
damaged row) makes only its own target `broken`: its rows fail and it is disabled, the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.delivery.models import AlertChannel, UserWebhook
from kamiyo.delivery.queue import ALERTS, WEBHOOKS, Claimed
from kamiyo.kit.crypto import SecretBox

CONFIRMATION = "channel.confirmation"  # the event type of the message that confirms a destination
UNDECRYPTABLE = "stored secret cannot be decrypted with this server's KAMIYO_SECRET_KEY"
BROKEN = {
    "webhook": f"{UNDECRYPTABLE}: rotate the signing secret, then enable the endpoint again",
    "alert": f"{UNDECRYPTABLE}: enter the destination again, then enable the channel again",
}

MAX_CACHE = 50_000
_HOOKS: Any = UserWebhook.__table__
_CHANNELS: Any = AlertChannel.__table__
# Core columns, not ORM attributes: loaded once per claimed batch, without the ORM layer.
_WEBHOOK_COLUMNS = tuple(
    _HOOKS.c[name]
    for name in (
        "id",
        "url",
        "secret_enc",
        "previous_secret_enc",
        "previous_secret_expires_at",
        "enabled",
        "disabled_reason",
        "consecutive_failures",
    )
)
_CHANNEL_COLUMNS = tuple(
    _CHANNELS.c[name]
    for name in ("id", "kind", "target_enc", "enabled", "disabled_reason", "consecutive_failures", "confirmed_at")
)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    id: int
    url: str
    secret: str
    previous_secret: str | None
    previous_expires_at: datetime | None
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int = 0
    broken: str | None = None  # why nothing can be sent to it (its secret cannot be decrypted)

    def secrets(self, now: datetime) -> list[str]:
        """The signing secrets at `now`: the current one, plus the previous one inside its 24 h window."""
        active = [self.secret]
        if self.previous_secret and self.previous_expires_at and now < self.previous_expires_at:
            active.append(self.previous_secret)
        return active


@dataclass(frozen=True, slots=True)
class ChannelTarget:
    id: int
    kind: str
    destination: str
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int = 0
    broken: str | None = None
    confirmed: bool = True  # e-mail and Telegram: the owner confirmed the destination (else only the confirmation goes)


Target = WebhookTarget | ChannelTarget


class TargetCache:
    def __init__(self, settings: Settings) -> None:
        self.box = SecretBox(settings.resolved_secret_key())
        self._plain: dict[str, str] = {}

    def decrypt(self, token: str) -> str | None:
        """The plain text, or None when this server's key cannot open it."""
        plain = self._plain.get(token)
        if plain is None:
            if len(self._plain) > MAX_CACHE:
                self._plain.clear()
            try:
                plain = self._plain[token] = self.box.decrypt(token)
            except ValueError:
                return None
        return plain

    async def load(self, session: AsyncSession, claimed: Sequence[Claimed]) -> dict[tuple[str, int], Target]:
        found: dict[tuple[str, int], Target] = {}
        pg = session.get_bind().dialect.name == "postgresql"
        hook_ids = list({c.target_id for c in claimed if c.queue is WEBHOOKS})
        if hook_ids:
            hooks = select(*_WEBHOOK_COLUMNS).where(_id_in(_HOOKS.c.id, hook_ids, pg))
            for w in await session.execute(hooks, {"ids": hook_ids} if pg else {}):
                found[(WEBHOOKS.name, w.id)] = self.webhook(w)
        channel_ids = list({c.target_id for c in claimed if c.queue is ALERTS})
        if channel_ids:
            channels = select(*_CHANNEL_COLUMNS).where(_id_in(_CHANNELS.c.id, channel_ids, pg))
            for ch in await session.execute(channels, {"ids": channel_ids} if pg else {}):
                destination = self.decrypt(ch.target_enc)
                found[(ALERTS.name, ch.id)] = ChannelTarget(
                    ch.id,
                    ch.kind,
                    destination or "",
                    ch.enabled,
                    ch.disabled_reason,
                    ch.consecutive_failures,
                    broken=None if destination is not None else BROKEN["alert"],
                    confirmed=ch.confirmed_at is not None,
                )
        return found

    def webhook(self, w: Any) -> WebhookTarget:
        secret = self.decrypt(w.secret_enc)
        return WebhookTarget(
            id=w.id,
            url=w.url,
            secret=secret or "",
            # an unreadable previous secret only stops signing with it; the current one still signs
            previous_secret=self.decrypt(w.previous_secret_enc) if w.previous_secret_enc else None,
            previous_expires_at=w.previous_secret_expires_at,
            enabled=w.enabled,
            disabled_reason=w.disabled_reason,
            consecutive_failures=w.consecutive_failures,
            broken=None if secret is not None else BROKEN["webhook"],
        )


def _id_in(column: Any, ids: list[int], pg: bool) -> Any:
    """`= ANY(:ids)` on PostgreSQL: one statement text (prepared once) whatever the count, unlike `IN (…)`."""
    if pg:
        return column == any_(bindparam("ids", type_=postgresql.ARRAY(BigInteger)))
    return column.in_(ids)
