"""Error reporting to Sentry (or any server speaking its envelope protocol) when `SENTRY_DSN` is set; off otherwise.

What leaves the process is scrubbed three ways: the SDK's own rules (no cookies, no Authorization or X-API-Key
headers, no client addresses: `send_default_pii` is off), never a request body and never a stack frame's local
variables, and a last pass over the whole event that filters secret-named fields (passwords, keys, tokens,
secrets, signatures, sessions, cookies, DSNs and connection URLs) and masks credential-shaped text anywhere
(Kamiyo API keys, webhook secrets, Stripe keys, bearer tokens, passwords in URLs) with the log redactor's rules.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from kamiyo import __version__
from kamiyo.config import Settings
from kamiyo.logging_setup import MASK, redact

log = logging.getLogger(__name__)
FILTERED = "[Filtered]"
# Field names (headers, query parameters, extra data, cookies) whose values are never sent.
_SECRET_NAME = re.compile(
    r"passw|secret|token|api.?key|^key$|_key$|auth|cookie|session|csrf|signature|dsn|credential|private|"
    r"database.?url|redis.?url|smtp.?url",
    re.IGNORECASE,
)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and _SECRET_NAME.search(key) else _scrub(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        pairs = isinstance(value, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value)
        if pairs:  # headers or query parameters as [name, value] pairs
            return [
                [name, FILTERED if isinstance(name, str) and _SECRET_NAME.search(name) else _scrub(item, depth + 1)]
                for name, item in value
            ]
        return [_scrub(item, depth + 1) for item in value]
    return value


def scrub_event(event: Any, _hint: Any = None) -> Any:
    """`before_send` / `before_send_transaction`: the last pass over everything an event carries."""
    return _scrub(event)


def scrub_breadcrumb(crumb: Any, _hint: Any = None) -> Any:
    return _scrub(crumb)


def init_error_reporting(settings: Settings) -> bool:
    """Start the Sentry SDK for this process when SENTRY_DSN is set; True when reporting is on.

    A DSN that cannot be used turns reporting off with a warning: it never stops the server from starting."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    client = sentry_sdk.get_client()
    if client.is_active() and client.dsn == settings.sentry_dsn:
        return True  # one SDK per process: a second app in the same process reports through it
    extra = ["x-api-key", "x_api_key", "stripe-signature", "webhook-signature", "webhook_secret", "secret_key", "key"]
    try:
        sentry_sdk.init(
            dsn=settings.sentry_dsn,
            environment=settings.sentry_environment,
            release=f"kamiyo@{__version__}",
            # send_default_pii stays at its default (off): no cookies, user addresses or auth headers
            include_local_variables=False,  # a frame's locals may hold a raw key or a decrypted secret
            max_request_body_size="never",
            event_scrubber=EventScrubber(denylist=[*DEFAULT_DENYLIST, *extra], recursive=True),
            before_send=scrub_event,
            before_send_transaction=scrub_event,
            before_breadcrumb=scrub_breadcrumb,
            traces_sample_rate=None,  # errors only
        )
    except Exception as exc:  # BadDsn and friends: report nothing, serve anyway
        log.warning("SENTRY_DSN is not usable (%s): error reporting is off", type(exc).__name__)
        return False
    log.info("error reporting to Sentry is on (environment %s)", settings.sentry_environment)
    return True


__all__ = ["FILTERED", "MASK", "init_error_reporting", "scrub_breadcrumb", "scrub_event"]
