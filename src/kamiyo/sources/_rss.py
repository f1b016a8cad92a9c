"""RSS and Atom news feeds filtered by the hack classifier: one declaration per feed.

Feeds are read by feedparser (RSS 0.9x/1.0 (RDF)/2.0 and Atom; encodings from the BOM, the XML
declaration and the Content-Type charset; HTML entities XML does not define; CDATA; Atom xhtml
content). A broken feed (feedparser's `bozo`) keeps whatever entries feedparser recovers; a document
in which no feed can be read is a ParseError. feedparser's strict pass runs on defusedxml's expat
reader, so a feed that declares entities (the billion-laughs bomb, external entities) is refused.

An item gives its title, link, guid/id, publication time (`pubDate`, `dc:date`, Atom `published`
then `updated`), its full content or else its description/summary as plain text with the links in
it, and its categories. Only items the classifier (`kamiyo.sources._classify`) takes for one
incident become reports; the item's publication time is both `reported_at` and the incident time.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import feedparser
import feedparser.api
from defusedxml import DefusedXmlException

from kamiyo.sources._classify import incident_report
from kamiyo.sources.base import Document, Parse, ParseError, Report, Source, each
from kamiyo.sources.html import parse_html

MAX_TEXT = 6000
# feedparser's strict pass asks xml.sax for these parser modules first: defusedxml's expat reader
# raises on entity declarations and external references instead of expanding them.
feedparser.api.PREFERRED_XML_PARSERS = ["defusedxml.expatreader"]


@dataclass(frozen=True, slots=True)
class FeedItem:
    title: str
    link: str
    guid: str
    published: str
    text: str  # description (or full content) as plain text
    links: tuple[str, ...]  # hrefs inside the item's HTML (explorer links carry tx hashes)
    categories: tuple[str, ...]


def _plain(markup: str) -> tuple[str, tuple[str, ...]]:
    """Text and links of an HTML fragment; entities are decoded whether or not there are tags."""
    if "<" not in markup:
        return " ".join(html.unescape(markup).split())[:MAX_TEXT], ()
    root = parse_html(markup)
    hrefs = tuple(dict.fromkeys(h for a in root.find_all("a") if (h := a.attr("href") or "").startswith("http")))
    return root.text()[:MAX_TEXT], hrefs


def _item(entry: Any) -> FeedItem:
    contents = [c.get("value", "") for c in entry.get("content", [])]
    text, links = _plain(next((c for c in contents if c.strip()), "") or entry.get("summary", ""))
    link = entry.get("link", "").strip()
    return FeedItem(
        title=_plain(entry.get("title", ""))[0],
        link=link,
        guid=entry.get("id", "").strip() or link,
        published=(entry.get("published") or entry.get("updated") or "").strip(),
        text=text,
        links=links,
        categories=tuple(t for tag in entry.get("tags", []) if (t := (tag.get("term") or "").strip())),
    )


def read_feed(document: Document) -> list[Any]:
    """feedparser's entries of the document; ParseError when no feed can be read in it."""
    headers = {k.lower(): v for k, v in document.headers.items()}
    try:  # a file object, never a string: feedparser would fetch a string that looks like a URL or a path
        parsed = feedparser.parse(io.BytesIO(document.content), response_headers=headers)
    except DefusedXmlException as exc:
        raise ParseError(f"XML refused: {type(exc).__name__}") from exc
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS or Atom feed"
        raise ParseError(f"not a feed: {reason}")
    return list(parsed.entries)


def feed_items(document: Document) -> list[FeedItem]:
    """Every item of an RSS or Atom document; ParseError for anything else."""
    return [_item(entry) for entry in read_feed(document)]


def classified(name: str) -> Parse:
    """A parse function keeping the feed's incident items as `name`'s reports."""

    def parse(document: Document) -> Iterator[Report]:
        def build(item: FeedItem) -> Report | None:
            return incident_report(
                name,
                item.guid or item.link,
                item.title,
                item.text,
                item.published,
                url=item.link or None,
                links=item.links,
                raw={"title": item.title, "link": item.link, "guid": item.guid, "published": item.published,
                     "categories": list(item.categories), "text": item.text[:2000]},
            )  # fmt: skip

        return each(feed_items(document), build, name)

    return parse


def rss_source(name: str, title: str, url: str, endpoint: str, description: str, cadence: int = 1800) -> Source:
    """The declaration of a classified news feed."""
    return Source(
        name=name,
        title=title,
        url=url,
        kind="rss",
        endpoint=endpoint,
        cadence_seconds=cadence,
        parse=classified(name),
        description=description,
    )
