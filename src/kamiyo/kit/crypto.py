"""Encryption at rest for stored secrets (webhook signing secrets, chat targets) and secret generation.

Fernet (AES-128-CBC + HMAC-SHA256) keyed by a key derived from the server's `KAMIYO_SECRET_KEY`, so a
database dump alone reveals no webhook secret.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken

SECRET_PREFIX = "whsec_"  # noqa: S105  # a prefix, not a secret


class SecretBox:
    """Encrypts and decrypts short texts with a key derived from the server secret."""

    def __init__(self, server_key: str) -> None:
        digest = hashlib.sha256(b"kamiyo/secret-box/v1:" + server_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with this server key") from exc


def new_webhook_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (the Standard Webhooks secret format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=4096)
def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret: its base64 part, decoded."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
