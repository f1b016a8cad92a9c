"""The refresh job: fetch each enrichment feed through the sources' HTTP layer and store its labels.

Call `refresh_labels(db, urls=settings.source_urls)` once a day (each feed declares 24 h); one
failing feed never stops the other, and a failed or empty download leaves the stored labels as they
were. ETag / Last-Modified are kept in `source_http_cache` under "labels:<feed>", so an unchanged
list costs a 304.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kamiyo.db import Database
from kamiyo.enrich.feeds import FEEDS, Feed
from kamiyo.enrich.labels import RefreshOutcome, replace_feed
from kamiyo.ingest.health import save_validators
from kamiyo.ingest.models import SourceHttpCache
from kamiyo.sources.base import ParseError
from kamiyo.sources.http import Fetcher, FetchError, FetchPolicy, new_client

log = logging.getLogger(__name__)
CACHE_PREFIX = "labels:"


async def _validators(session: AsyncSession, feed: str) -> dict[str, dict[str, str]]:
    rows = await session.execute(select(SourceHttpCache).where(SourceHttpCache.source == CACHE_PREFIX + feed))
    return {
        row.url: {k: v for k, v in (("etag", row.etag), ("last_modified", row.last_modified)) if v}
        for row in rows.scalars()
    }


async def refresh_feed(
    db: Database, feed: Feed, client: httpx.AsyncClient, url: str | None = None, policy: FetchPolicy | None = None
) -> RefreshOutcome:
    """Fetch one feed conditionally (the sources' HTTP layer) and replace its labels in one transaction."""
    async with db.session() as session:
        validators = await _validators(session, feed.name)
    fetcher = Fetcher(client, policy or FetchPolicy(timeout=60.0), validators)
    try:
        document = await fetcher.get(url or feed.endpoint)
        if document is None:
            return RefreshOutcome(feed.name, "not_modified")
        labels = feed.parse(document)
    except (FetchError, ParseError) as exc:
        log.warning("label feed failed", extra={"feed": feed.name, "error": str(exc)})
        return RefreshOutcome(feed.name, "failed", error=str(exc))
    if not labels:  # an empty list is a broken download, not "everyone was delisted"
        return RefreshOutcome(feed.name, "failed", error="the feed listed no address")
    async with db.session() as session:
        outcome = await replace_feed(session, feed.name, labels)
        await save_validators(session, CACHE_PREFIX + feed.name, fetcher.seen_validators)
    log.info("label feed refreshed", extra={k: getattr(outcome, k) for k in ("feed", "labels", "added", "removed")})
    return outcome


async def refresh_labels(
    db: Database,
    *,
    urls: dict[str, str] | None = None,
    feeds: Iterable[str] | None = None,
    client: httpx.AsyncClient | None = None,
    policy: FetchPolicy | None = None,
) -> list[RefreshOutcome]:
    """The job: refresh every feed (or the named ones); one failing feed never stops the other.

    `urls` maps a feed name (`ofac`, `scamsniffer`) to a replacement URL (KAMIYO_SOURCE_URLS can be
    passed as is: the feed names do not clash with source names). Call it once a day.
    """
    chosen = [FEEDS[name] for name in feeds] if feeds is not None else list(FEEDS.values())
    own = client is None
    http = client or new_client()
    try:
        return [await refresh_feed(db, feed, http, (urls or {}).get(feed.name), policy) for feed in chosen]
    finally:
        if own:
            await http.aclose()
