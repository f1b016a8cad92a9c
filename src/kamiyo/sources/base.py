"""What a source is and what it produces.

A source is a declaration (`Source`: name, title, URLs, cadence, key) plus one parse function from
a fetched `Document` to `Report`s. Everything about HTTP (timeouts, retries, conditional requests,
User-Agent, paging) lives once in `kamiyo.sources.http`; scheduling, storing and health bookkeeping
live in `kamiyo.ingest`. Sources know nothing of the database, the API or delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from kamiyo.kit.links import web_url

if TYPE_CHECKING:
    from kamiyo.sources.http import SourceContext

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Report:
    """One source's account of one incident, already normalised to Kamiyo's vocabulary.

    `source_ref` is the source's own stable identifier for the incident (an id, a URL, or a
    derived key) so that fetching the same feed twice updates rather than duplicates.
    """

    source: str
    source_ref: str
    protocol: str
    timestamp: datetime
    chain: str | None = None
    tx_hash: str | None = None
    tx_hashes: tuple[str, ...] = ()
    amount_usd: float | None = None
    amount_text: str | None = None
    recovered_usd: float | None = None
    category: str | None = None
    description: str | None = None
    attacker_address: str | None = None
    url: str | None = None
    references: tuple[str, ...] = ()
    # When the source itself published this report (a post's own time); None where that is not known
    # (a list or dataset without publication times, the backfill of a source's history).
    reported_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # Further facts (CONTRACT §12), stored in `reports.details` (the `details` property).
    chains: tuple[str, ...] = ()  # every chain the source names (canonical slugs), the primary `chain` first
    technique: str | None = None  # the source's own words for how it was done ("Flash loan price manipulation")
    classification: str | None = None  # the source's own class ("Protocol Logic", "Infrastructure")
    target_type: str | None = None  # defi | cefi | bridge | ...
    attack_contracts: tuple[str, ...] = ()
    vulnerable_contracts: tuple[str, ...] = ()
    fork_block: tuple[str, int] | None = None  # (chain, block) a PoC forks at: the attack is in the next blocks
    _details: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    # Set by `kamiyo import`: reports with the same value are one incident (one imported row). They join a
    # stored incident only by (source, source_ref) or tx hash, never by the fuzzy rule, and never overwrite
    # a stored report of the same key.
    incident: str | None = None

    def __post_init__(self) -> None:
        # Links are kept only when they are plain http(s) web links: a report keeps no URL rather than a bad one.
        self.url = web_url(self.url)
        if self.references:
            self.references = tuple(u for u in map(web_url, self.references) if u)

    @property
    def details(self) -> dict[str, Any]:
        """The further facts as stored in `reports.details` (empty ones left out); `references` are its `links`.
        Built once: deriving a record reads it for every fact (set the fields before reading it)."""
        if self._details is not None:
            return self._details
        facts: dict[str, Any] = {
            "chains": list(self.chains),
            "tx_hashes": list(self.tx_hashes),
            "technique": self.technique,
            "classification": self.classification,
            "target_type": self.target_type,
            "attack_contracts": list(self.attack_contracts),
            "vulnerable_contracts": list(self.vulnerable_contracts),
            "links": list(self.references),
            "fork_block": list(self.fork_block) if self.fork_block else None,
        }
        self._details = {k: v for k, v in facts.items() if v}
        return self._details


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What Kamiyo shows about a source (`/sources`, `/health`, `kamiyo sources`)."""

    name: str
    title: str
    url: str
    kind: str  # json | html | rss | markdown | graphql | dataset
    cadence_seconds: int = 3600
    needs_key: str | None = None  # name of the environment variable that must be set, if any


class ParseError(ValueError):
    """The response is not in the source's format (malformed JSON/HTML, wrong shape)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One fetched HTTP response body."""

    url: str
    status: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The parsed body; a UTF-8 byte order mark, which RFC 8259 lets parsers ignore, is ignored."""
        try:
            return orjson.loads(self.content.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc}") from exc


Parse = Callable[[Document], Iterable[Report]]
Fetch = Callable[["SourceContext"], Awaitable[list[Report]]]


@dataclass(frozen=True, slots=True)
class Source(SourceInfo):
    """A full source declaration: SourceInfo plus how to fetch and parse it.

    Give `parse` for a one-document source (the shared code GETs `endpoint` conditionally and
    calls `parse` on the body). Give `fetch` instead for sources needing several requests
    (paging, index then details, primary and fallback URLs); it uses `ctx.get` for every request.
    """

    endpoint: str = ""
    parse: Parse | None = None
    fetch: Fetch | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.parse is None) == (self.fetch is None):
            raise ValueError(f"source {self.name}: give exactly one of parse= or fetch=")
        if not self.endpoint:
            raise ValueError(f"source {self.name}: endpoint is required")


def each(items: Iterable[T], build: Callable[[T], Report | None], source: str) -> Iterator[Report]:
    """`build` per item; an item that does not fit (KeyError, TypeError, ValueError) is skipped and logged.

    One odd row must not cost the whole feed; a feed whose every row is odd yields nothing.
    """
    skipped = 0
    for item in items:
        try:
            report = build(item)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            skipped += 1
            continue
        if report is not None:
            yield report
    if skipped:
        log.warning("source items skipped", extra={"source": source, "skipped": skipped})


def each_object(
    items: Any, build: Callable[[dict[str, Any]], Report | None], source: str, *, error: str
) -> list[Report]:
    """`each` over the objects of a JSON list (other entries are passed over); ParseError(`error`) when
    `items` is not a list: the answer is not in the source's format."""
    if not isinstance(items, list):
        raise ParseError(error)
    return list(each((item for item in items if isinstance(item, dict)), build, source))
