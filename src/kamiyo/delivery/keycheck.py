"""Whether this server's key opens the secrets stored in the database (webhook secrets, channel destinations).

They are encrypted with a key derived from `KAMIYO_SECRET_KEY` (or the generated `data/secret_key`): a
database restored without its key holds secrets nobody can read. `kamiyo serve` and `kamiyo worker` refuse
to start when the newest stored secrets all fail to open (the key is new), and `/health` is degraded while
any sampled secret fails or a target is disabled because its secret could not be decrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.config import Settings
from kamiyo.delivery.models import AlertChannel, UserWebhook
from kamiyo.delivery.targets import UNDECRYPTABLE
from kamiyo.kit.crypto import SecretBox

MAX_FLAGGED = 1000  # disabled targets tried per check (a health check stays cheap)


@dataclass(frozen=True, slots=True)
class KeyCheck:
    sampled: int  # newest stored secrets tried
    opened: int  # of those, how many this key decrypts
    disabled: int  # targets disabled because their secret cannot be decrypted, still unreadable

    @property
    def key_is_new(self) -> bool:
        """Secrets are stored and none of the newest opens: the key is not the one they were encrypted with."""
        return self.sampled > 0 and self.opened == 0

    @property
    def ok(self) -> bool:
        return self.opened == self.sampled and not self.disabled


async def check_key(session: AsyncSession, settings: Settings, *, sample: int = 10) -> KeyCheck:
    """Try the newest `sample` secrets of each table, and those of targets disabled for an unreadable secret
    (counted while this key still cannot open them: once the right key is back they no longer count)."""
    newest: list[str] = []
    flagged: list[str] = []
    model: Any
    for model, column in ((UserWebhook, UserWebhook.secret_enc), (AlertChannel, AlertChannel.target_enc)):
        newest += [t for t in (await session.execute(select(column).order_by(model.id.desc()).limit(sample))).scalars()]
        disabled = select(column).where(
            model.enabled.is_(False), model.disabled_reason.startswith(UNDECRYPTABLE, autoescape=True)
        )
        flagged += list((await session.execute(disabled.limit(MAX_FLAGGED))).scalars())
    if not newest and not flagged:
        return KeyCheck(sampled=0, opened=0, disabled=0)
    box = SecretBox(settings.resolved_secret_key())  # only now: no key is made up for an empty database
    opened = sum(1 for token in newest if _opens(box, token))
    return KeyCheck(sampled=len(newest), opened=opened, disabled=sum(1 for t in flagged if not _opens(box, t)))


def _opens(box: SecretBox, token: str) -> bool:
    try:
        box.decrypt(token)
    except ValueError:
        return False
    return True
