"""rekt.news: post-mortems of DeFi exploits. RSS feed first, the HTML home page as fallback.

RSS 2.0 (`https://rekt.news/feed.xml`): `<item>` with `<title>` ("Name - Rekt"), `<link>`,
`<pubDate>` (RFC 2822), `<description>` (the excerpt), `<guid>`, optional `<category>`s.
HTML (`https://rekt.news/`): `<article class="post">` with `h5.post-title > a[href]`, a long
`<time>` ("Friday, October 3, 2025"), tag links and `section.post-excerpt`. When the feed is
unreachable or not RSS, the fallback URL is the feed URL's site root (so a KAMIYO_SOURCE_URLS
override of `…/feed.xml` falls back to `…/`). rekt gives no tx hashes; the loss is read from the
excerpt's first dollar amount, the publication time is both the report and the incident time.

Only incident post-mortems are reports. rekt titles them "<Name> - Rekt" ("- Rugged", "- Rekt II",
"- REKT 2"); every other title is an editorial that names no victim: an essay ("Cutting Corners"), a
riddle ("Who Got Rugged?": "the project remains unknown"), an investigation without a hack ("Parabolic
Mirage"), a non-DeFi story ("The Great npm Heist That Wasn't"), or a scraper's "Untitled".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import urljoin, urlsplit

from kamiyo.sources._rss import FeedItem, feed_items
from kamiyo.sources.base import Document, ParseError, Report, Source, each
from kamiyo.sources.html import Node, parse_html
from kamiyo.sources.http import FetchError, SourceContext
from kamiyo.vocabulary.normalise import normalise_category, parse_date_text, parse_usd

NAME = "rekt"
SITE = "https://rekt.news/"
_INCIDENT_TITLE = re.compile(
    r"^(?P<name>.*?\S)\s+[-–—:]\s*(?:rekt|rugged|rug\s*pulled?)(?:\s*(?:ii+|\d+|pt\.?\s*\d+))?\s*$", re.I
)
_DOLLARS = re.compile(r"\$\s?\d[\d,.]*\s*(?:thousand|million|billion|[kmb])?\b", re.I)


def incident_name(title: str) -> str | None:
    """The victim named by an incident post-mortem title ("Bunni - Rekt" -> "Bunni"); None for an editorial."""
    match = _INCIDENT_TITLE.match(" ".join(title.split()))
    return match.group("name") if match else None


def _slug(link: str) -> str:
    path = urlsplit(link).path.strip("/")
    return path or link


def _report(title: str, link: str, when_text: str, excerpt: str, tags: Iterable[str]) -> Report | None:
    title, link = title.strip(), link.strip()
    when = parse_date_text(when_text)
    protocol = incident_name(title)
    if protocol is None or not link or when is None:
        return None
    amount = _DOLLARS.search(excerpt)
    tag_text = " ".join(tags)
    category = normalise_category(tag_text)
    if category == "other":
        category = normalise_category(excerpt)
    return Report(
        source=NAME,
        source_ref=_slug(link),
        protocol=protocol,
        timestamp=when,
        amount_usd=parse_usd(amount.group(0)) if amount else None,
        amount_text=amount.group(0) if amount else None,
        category=category,
        description=excerpt[:2000] or title,
        url=link,
        reported_at=when,
        raw={"title": title, "link": link, "date": when_text, "tags": list(tags), "excerpt": excerpt[:2000]},
    )


def parse_rss(document: Document) -> Iterator[Report]:
    """Items of the RSS feed (read as every feed is, by `kamiyo.sources._rss`)."""

    def build(item: FeedItem) -> Report | None:
        return _report(item.title, item.link or item.guid, item.published, item.text, item.categories)

    return each(feed_items(document), build, NAME)


def parse_html_index(document: Document) -> Iterator[Report]:
    """Articles of the rekt.news home page (or any page of its post grid)."""
    articles = list(parse_html(document.text).find_all("article", "post"))
    if not articles and "<article" not in document.text:
        raise ParseError("no rekt.news post grid in the page")

    def build(article: Node) -> Report | None:
        anchor = next((a for a in article.find_all("a") if (a.attr("href") or "").startswith("/")), None)
        title_node = article.find("h5") or article.find("h2")
        time_node = article.find("time")
        if anchor is None or title_node is None or time_node is None:
            return None
        meta = article.find("span", "post-meta")
        tags = [a.text() for a in (meta.find_all("a") if meta else [])]
        excerpt_node = article.find("section", "post-excerpt")
        excerpt = (excerpt_node.find("p") or excerpt_node).text() if excerpt_node else ""
        link = urljoin(SITE, anchor.attr("href") or "")
        return _report(title_node.text(), link, time_node.attr("datetime") or time_node.text(), excerpt, tags)

    return each(articles, build, NAME)


async def fetch(ctx: SourceContext) -> list[Report]:
    """The RSS feed; on a failed or non-RSS answer, the HTML index of the same site."""
    try:
        document = await ctx.get(ctx.url)
        if document is None:
            return []
        return list(parse_rss(document))
    except (FetchError, ParseError) as first:
        fallback = urljoin(ctx.url, "./")
        try:
            page = await ctx.get(fallback)
        except FetchError as second:
            raise FetchError(f"feed: {first}; HTML fallback: {second}", second.status) from second
        return list(parse_html_index(page)) if page is not None else []


SOURCE = Source(
    name=NAME,
    title="rekt.news",
    url=SITE,
    kind="rss",
    endpoint="https://rekt.news/feed.xml",
    cadence_seconds=3600,
    fetch=fetch,
    description="Post-mortems of DeFi exploits; RSS with the HTML home page as fallback.",
)
