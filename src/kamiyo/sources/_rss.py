"""RSS 2.0 (and Atom) news feeds filtered by the hack classifier: one declaration per feed.

RSS 2.0 items: `<title>`, `<link>`, `<guid>`, `<pubDate>` (RFC 2822), `<description>` (HTML
excerpt), optional `<content:encoded>` (full HTML) and `<category>`s. Atom entries: `<title>`,
`<link href>`, `<id>`, `<published>`/`<updated>` (ISO-8601), `<summary>`/`<content>`. Only items
the classifier (`kamiyo.sources._classify`) takes for one incident become reports; the item's
publication time is both `reported_at` and the incident time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from kamiyo.sources._classify import incident_report
from kamiyo.sources.base import Document, Parse, ParseError, Report, Source, each
from kamiyo.sources.html import parse_html

CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
ATOM = "{http://www.w3.org/2005/Atom}"
MAX_TEXT = 6000


@dataclass(frozen=True, slots=True)
class FeedItem:
    title: str
    link: str
    guid: str
    published: str
    text: str  # description (or full content) as plain text
    links: tuple[str, ...]  # hrefs inside the item's HTML (explorer links carry tx hashes)
    categories: tuple[str, ...]


def _text(element: ET.Element, tag: str) -> str:
    found = element.find(tag)
    return (found.text or "").strip() if found is not None else ""


def _plain(html: str) -> tuple[str, tuple[str, ...]]:
    if "<" not in html:
        return " ".join(html.split())[:MAX_TEXT], ()
    root = parse_html(html)
    hrefs = tuple(dict.fromkeys(h for a in root.find_all("a") if (h := a.attr("href") or "").startswith("http")))
    return root.text()[:MAX_TEXT], hrefs


def _rss_item(item: ET.Element) -> FeedItem:
    body = _text(item, CONTENT) or _text(item, "description")
    text, links = _plain(body)
    if not text and _text(item, "description"):
        text, links = _plain(_text(item, "description"))
    link = _text(item, "link")
    return FeedItem(
        title=" ".join(_text(item, "title").split()),
        link=link,
        guid=_text(item, "guid") or link,
        published=_text(item, "pubDate") or _text(item, "{http://purl.org/dc/elements/1.1/}date"),
        text=text,
        links=links,
        categories=tuple((c.text or "").strip() for c in item.findall("category") if c.text),
    )


def _atom_entry(entry: ET.Element) -> FeedItem:
    link_node = next((n for n in entry.findall(f"{ATOM}link") if n.get("rel", "alternate") == "alternate"), None)
    link = (link_node.get("href") or "") if link_node is not None else ""
    text, links = _plain(_text(entry, f"{ATOM}content") or _text(entry, f"{ATOM}summary"))
    return FeedItem(
        title=" ".join(_text(entry, f"{ATOM}title").split()),
        link=link,
        guid=_text(entry, f"{ATOM}id") or link,
        published=_text(entry, f"{ATOM}published") or _text(entry, f"{ATOM}updated"),
        text=text,
        links=links,
        categories=tuple(c.get("term") or "" for c in entry.findall(f"{ATOM}category")),
    )


def feed_items(document: Document) -> list[FeedItem]:
    """Every item of an RSS 2.0 or Atom document; ParseError for anything else."""
    try:
        root = ET.fromstring(document.content)  # noqa: S314 - expat refuses entity expansion bombs
    except ET.ParseError as exc:
        raise ParseError(f"not XML: {exc}") from exc
    if root.tag == "rss" and (channel := root.find("channel")) is not None:
        return [_rss_item(item) for item in channel.findall("item")]
    if root.tag == f"{ATOM}feed":
        return [_atom_entry(entry) for entry in root.findall(f"{ATOM}entry")]
    raise ParseError("not an RSS 2.0 or Atom feed")


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
