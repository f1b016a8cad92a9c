"""Links from outside (source reports, imports, submissions) that Kamiyo shows to users."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


def web_url(value: str | None) -> str | None:
    """An absolute http(s) link with a host (no credentials or control characters; inner spaces encoded), else None.

    Links are shown as they came (`sources[].url`, the pages' "Open" links): a `javascript:` or `data:` URL
    there would run in the reader's browser, so anything but a plain web link is dropped."""
    if not value:
        return None
    url = value.strip().replace(" ", "%20")
    if len(url) > MAX_URL_LENGTH or _FORBIDDEN.search(url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not host or parts.username is not None:
        return None
    return url
