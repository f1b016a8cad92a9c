"""What a community submission may contain: checks shared by the API schema and the review step.

Text is kept as plain text (never sanitised into HTML, escaped by whoever renders it); what is refused
is what no honest report needs: control characters, links in a protocol name, a link farm in the
description, link schemes other than http(s), credentials in a link, amounts no incident ever reached.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from kamiyo.kit.timeutil import as_utc, parse_when, utcnow
from kamiyo.vocabulary.normalise import normalise_address, normalise_chain, normalise_tx_hash
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

# The largest thefts on record are around $1.5B; ten billion leaves room and still refuses typos of 1e15.
MAX_AMOUNT_USD = 10_000_000_000.0
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)  # the Bitcoin genesis block
MAX_URLS = 10
MAX_URL_LENGTH = 1000
MAX_LINKS_IN_DESCRIPTION = 3
TX_FORMATS = {
    "evm": "0x followed by 64 hex digits",
    "solana": "a base58 signature of 64-88 characters",
    "bitcoin": "64 hex digits",
    "tron": "64 hex digits",
    "other": "a transaction id of 32 or more base58/hex characters",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


def chain_slug(value: str) -> str:
    slug = normalise_chain(value)
    if slug is None or slug not in CHAINS:
        raise ValueError(f"unknown chain {value!r}; use a slug such as ethereum, bsc, arbitrum, solana")
    return slug


def tx_hash_for(value: str, chain: str | None) -> str:
    """The normalised hash, or why it is not a transaction id on `chain` (an explorer link also works)."""
    family = CHAINS[chain].family if chain in CHAINS else None
    tx = normalise_tx_hash(value, chain)
    if tx is None:
        expected = TX_FORMATS.get(family or "", "a transaction hash")
        raise ValueError(f"not a transaction hash on {chain or 'this chain'}: expected {expected}")
    return tx


def category_slug(value: str) -> str:
    slug = value.strip().lower()
    if slug not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}; one of {', '.join(CATEGORIES)}")
    return slug


def address(value: str) -> str:
    found = normalise_address(value)
    if found is None:
        raise ValueError("not an address (EVM 0x + 40 hex, or a base58 Solana address)")
    return found


def incident_time(value: object) -> datetime:
    if isinstance(value, datetime):
        when = as_utc(value)
    elif isinstance(value, str):
        try:
            when = parse_when(value)
        except ValueError as exc:
            raise ValueError("not an ISO-8601 date or datetime") from exc
    else:
        raise ValueError("an ISO-8601 date or datetime string is required")
    if not EARLIEST <= when <= utcnow() + timedelta(hours=1):
        raise ValueError("must be between 2009-01-03 and now")
    return when


def plain_line(value: str, field: str) -> str:
    """One line of plain text: no control characters, no links, whitespace collapsed."""
    if _CONTROL.search(value):
        raise ValueError(f"{field} contains control characters")
    if _LINK.search(value):
        raise ValueError(f"{field} must not contain links (put them in evidence_urls)")
    text = " ".join(value.split())
    if not text:
        raise ValueError(f"{field} is empty")
    return text


def plain_text(value: str) -> str:
    """Free text: line breaks kept, other control characters refused, at most a few links."""
    if _CONTROL.search(value.replace("\n", "").replace("\r", "").replace("\t", "")):
        raise ValueError("contains control characters")
    if len(_LINK.findall(value)) > MAX_LINKS_IN_DESCRIPTION:
        raise ValueError(f"at most {MAX_LINKS_IN_DESCRIPTION} links; put evidence in evidence_urls")
    return value.replace("\r\n", "\n").strip()


def evidence_url(value: str) -> str:
    """An absolute http(s) link with a host name; no credentials, spaces or other schemes."""
    url = value.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValueError(f"links must be 1-{MAX_URL_LENGTH} characters")
    if _CONTROL.search(url) or any(ch.isspace() for ch in url):
        raise ValueError("a link must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError("not a valid link") from exc
    if parts.scheme.lower() not in {"http", "https"}:
        raise ValueError("only http:// and https:// links are accepted")
    if not host or "." not in host.strip("."):
        raise ValueError("a link needs a public host name")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a link must not carry a user name or password")
    return url


def evidence_urls(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(evidence_url(value), None)
    return list(seen)
