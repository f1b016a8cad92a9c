"""The one HTTP layer every source goes through.

Timeouts, retries with exponential backoff (honouring Retry-After), conditional requests
(ETag / Last-Modified, remembered per URL), a clear User-Agent, a size cap and paging live here,
so that a source file only declares URLs and parses bodies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from kamiyo import __version__
from kamiyo.kit.retry_after import parse_retry_after
from kamiyo.kit.timeutil import utcnow
from kamiyo.sources.base import Document, Parse, Report

log = logging.getLogger(__name__)

USER_AGENT = f"Kamiyo/{__version__} (exploit-intelligence aggregator; +https://github.com/kamiyo-ai/kamiyo)"
MAX_BYTES = 25 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class FetchError(Exception):
    """A request failed for good (after retries): the source's round fails with this message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    timeout: float = 20.0  # seconds per request (connect, read, write, pool)
    retries: int = 2  # further attempts after the first, on timeouts, transport errors, 429 and 5xx
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_pages: int = 100  # cap for paged sources


Validators = dict[str, dict[str, str]]


@dataclass
class Fetcher:
    """Conditional GETs with retries on one shared httpx client.

    `validators` holds what the last successful run saw per URL ({"etag", "last_modified"}); new
    ones collect in `seen_validators` and are saved by the scheduler only if the run succeeds.
    """

    client: httpx.AsyncClient
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    validators: Validators = field(default_factory=dict)
    seen_validators: Validators = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0

    async def get(self, url: str, *, params: dict[str, str] | None = None, conditional: bool = True) -> Document | None:
        """The body of `url`, or None on 304 Not Modified. Raises FetchError when it cannot."""
        full = str(httpx.URL(url, params=params)) if params else url
        return await self.request("GET", full, conditional=conditional)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        cache_key: str | None = None,
        conditional: bool = True,
        keyed: bool = False,
    ) -> Document | None:
        """One request with the retry policy, conditional on what was seen under `cache_key` (default: the URL):
        the body, or None on 304 Not Modified. FetchError when it fails for good; `keyed` names a refused key."""
        key = cache_key or url
        sent = {**(headers or {}), **(self._conditional_headers(key) if conditional else {})}
        response = await self._send(method, url, sent, content)
        if response.status_code == 304:
            self.not_modified += 1
            self.seen_validators[key] = self.validators.get(key, {})
            return None
        status = response.status_code
        if keyed and status in (401, 403):
            raise FetchError(f"HTTP {status} from {shown_url(url)}: the API key was refused", status)
        if status >= 400:
            raise FetchError(f"HTTP {status} from {shown_url(url)}", status)
        if len(response.content) > MAX_BYTES:
            raise FetchError(f"response of {shown_url(url)} exceeds {MAX_BYTES} bytes")
        if conditional:  # a later page neither sends nor replaces what the first page of a listing saw
            self._remember(key, response)
        return Document(
            str(response.url), status, response.content, {k.lower(): v for k, v in response.headers.items()}
        )

    def _conditional_headers(self, url: str) -> dict[str, str]:
        known = self.validators.get(url, {})
        headers = {}
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
        return headers

    def _remember(self, url: str, response: httpx.Response) -> None:
        found = {"etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified")}
        self.seen_validators[url] = {k: v for k, v in found.items() if v}

    async def _send(self, method: str, url: str, headers: dict[str, str], content: bytes | None) -> httpx.Response:
        """The one retry loop: timeouts, transport errors, 429 and 5xx are tried again with exponential
        backoff, stretched by a `Retry-After` (at most MAX_RETRY_AFTER)."""
        delay = self.policy.backoff
        for attempt in range(self.policy.retries + 1):
            last = attempt == self.policy.retries
            self.requests += 1
            try:
                response = await self.client.request(
                    method, url, headers=headers, content=content, timeout=self.policy.timeout
                )
            except httpx.TimeoutException as exc:
                if last:
                    raise FetchError(f"timeout after {self.policy.timeout:g} s fetching {shown_url(url)}") from exc
            except httpx.HTTPError as exc:
                if last:
                    raise FetchError(f"{type(exc).__name__} fetching {shown_url(url)}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                wait = parse_retry_after(response.headers.get("retry-after"), utcnow(), MAX_RETRY_AFTER)
                delay = max(delay, wait or 0.0)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class SourceContext:
    """What a source's `fetch` function works with (see `kamiyo.sources.base.Source`)."""

    fetcher: Fetcher
    url: str
    key: str | None = None
    known_refs: frozenset[str] = frozenset()

    async def get(self, url: str, *, params: dict[str, str] | None = None, conditional: bool = True) -> Document | None:
        return await self.fetcher.get(url, params=params, conditional=conditional)

    async def paged(self, page_url: Callable[[int], str], parse: Parse, *, first: int = 1) -> list[Report]:
        """Fetch pages first, first+1, … until a page brings nothing new, is empty, or the cap.

        "Nothing new" means every report on the page is already stored (`known_refs`) or was on
        an earlier page of this run, so an incremental run stops after the first page. Only the
        first page is requested conditionally; a 304 there means the whole listing is unchanged.
        """
        seen: dict[str, Report] = {}
        for number in range(first, first + self.fetcher.policy.max_pages):
            document = await self.get(page_url(number), conditional=number == first)
            if document is None:
                break
            page = list(parse(document))
            fresh = [r for r in page if r.source_ref not in seen and r.source_ref not in self.known_refs]
            for report in page:
                seen.setdefault(report.source_ref, report)
            if not fresh:
                break
        return list(seen.values())


def shown_url(url: str) -> str:
    """A URL as errors show it (in logs and on `/sources`): without its query, where keys and tokens ride,
    and at most 200 characters."""
    bare = url.split("?", 1)[0].split("#", 1)[0]
    return bare if len(bare) <= 200 else bare[:197] + "..."


def new_client(*, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The shared client: User-Agent, redirects followed, pooled connections."""
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        transport=transport,
    )
