"""Whether this server's key opens the secrets stored in the database (webhook secrets, channel destinations).

They are encrypted with a key derived from `KAMIYO_SECRET_KEY` (or the generated `data/secret_key`): a
database restored without its key holds secrets nobody can read. `kamiyo serve` and `kamiyo worker` refuse
to start when the newest stored secrets all fail to open (the key is new), and `/health` is degraded while
any sampled secret fails or a target is disabled because its secret could not be decrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.delivery.models import AlertChannel, UserWebhook
from kamiyo.delivery.targets import UNDECRYPTABLE
from kamiyo.kit.crypto import SecretBox


@dataclass(frozen=True, slots=True)
class KeyCheck:
    sampled: int  # newest stored secrets tried
    opened: int  # of those, how many this key decrypts
    disabled: int  # targets disabled because their secret cannot be decrypted

    @property
    def key_is_new(self) -> bool:
        """Secrets are stored and none of the newest opens: the key is not the one they were encrypted with."""
        return self.sampled > 0 and self.opened == 0

    @property
    def ok(self) -> bool:
        return self.opened == self.sampled and not self.disabled


async def check_key(session: AsyncSession, settings: Settings, *, sample: int = 10) -> KeyCheck:
    """Try the newest `sample` secrets of each table; count targets disabled for an unreadable secret."""
    tokens: list[str] = []
    hooks = select(UserWebhook.secret_enc).order_by(UserWebhook.id.desc()).limit(sample)
    channels = select(AlertChannel.target_enc).order_by(AlertChannel.id.desc()).limit(sample)
    for stmt in (hooks, channels):
        tokens += [t for t in (await session.execute(stmt)).scalars() if t]
    box = SecretBox(settings.resolved_secret_key()) if tokens else None  # no key made up for an empty database
    opened = sum(1 for token in tokens if box is not None and _opens(box, token))
    disabled = 0
    model: Any
    for model in (UserWebhook, AlertChannel):
        found = await session.execute(
            select(func.count()).where(
                model.enabled.is_(False), model.disabled_reason.startswith(UNDECRYPTABLE, autoescape=True)
            )
        )
        disabled += int(found.scalar_one())
    return KeyCheck(sampled=len(tokens), opened=opened, disabled=disabled)


def _opens(box: SecretBox, token: str) -> bool:
    try:
        box.decrypt(token)
    except ValueError:
        return False
    return True
