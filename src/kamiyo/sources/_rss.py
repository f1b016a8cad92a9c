"""RSS 2.0 (and Atom) news feeds filtered by the hack classifier: one declaration per feed.

RSS 2.0 items: `<title>`, `<link>`, `<guid>`, `<pubDate>` (RFC 2822), `<description>` (HTML
excerpt), optional `<content:encoded>` (full HTML) and `<category>`s. Atom entries: `<title>`,
`<link href>`, `<id>`, `<published>`/`<updated>` (ISO-8601), `<summary>`/`<content>`. Only items
the classifier (`kamiyo.sources._classify`) takes for one incident become reports; the item's
publication time is both `reported_at` and the incident time.

What real feeds do and the specs allow: entity-escaped HTML inside CDATA titles and excerpts
(WordPress writes `&#8217;` there), HTML named entities such as `&nbsp;` outside CDATA (not
defined in XML), whitespace before the XML declaration, a charset given only in Content-Type,
and Atom `type="xhtml"` content held as child elements. All of these are read, not refused.
"""

from __future__ import annotations

import contextlib
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from html.entities import name2codepoint

from kamiyo.sources._classify import incident_report
from kamiyo.sources.base import Document, Parse, ParseError, Report, Source, each
from kamiyo.sources.html import parse_html

CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
ATOM = "{http://www.w3.org/2005/Atom}"
MAX_TEXT = 6000
XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_NAMED_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_DECLARED_ENCODING = re.compile(rb"^<\?xml[^>]*encoding=", re.I)
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)


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


def _atom_text(entry: ET.Element, tag: str) -> str:
    """An Atom text construct: `type="xhtml"` keeps its text in child elements, the others in the element."""
    found = entry.find(tag)
    if found is None:
        return ""
    if found.get("type") == "xhtml":  # the markup itself, out of the XHTML namespace, so links survive
        for element in found.iter():
            element.tag = element.tag.rpartition("}")[2]
        return "".join(ET.tostring(child, encoding="unicode") for child in found).strip()
    return (found.text or "").strip()


def _plain(markup: str) -> tuple[str, tuple[str, ...]]:
    """Text and links of an HTML fragment; entities are decoded whether or not there are tags."""
    if "<" not in markup:
        return " ".join(html.unescape(markup).split())[:MAX_TEXT], ()
    root = parse_html(markup)
    hrefs = tuple(dict.fromkeys(h for a in root.find_all("a") if (h := a.attr("href") or "").startswith("http")))
    return root.text()[:MAX_TEXT], hrefs


def _rss_item(item: ET.Element) -> FeedItem:
    body = _text(item, CONTENT) or _text(item, "description")
    text, links = _plain(body)
    if not text and _text(item, "description"):
        text, links = _plain(_text(item, "description"))
    link = _text(item, "link")
    return FeedItem(
        title=_plain(_text(item, "title"))[0],
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
    text, links = _plain(_atom_text(entry, f"{ATOM}content") or _atom_text(entry, f"{ATOM}summary"))
    return FeedItem(
        title=_plain(_atom_text(entry, f"{ATOM}title"))[0],
        link=link,
        guid=_text(entry, f"{ATOM}id") or link,
        published=_text(entry, f"{ATOM}published") or _text(entry, f"{ATOM}updated"),
        text=text,
        links=links,
        categories=tuple(c.get("term") or "" for c in entry.findall(f"{ATOM}category")),
    )


def _xml_bytes(document: Document) -> bytes:
    """The body as expat should see it: no leading whitespace, and in the Content-Type charset when
    the XML declaration names none (RFC 7303: the HTTP charset wins; expat would assume UTF-8)."""
    body = document.content
    bom = body.startswith(b"\xef\xbb\xbf")
    body = body[3:].lstrip() if bom else body.lstrip()
    charset = _CHARSET.search(document.headers.get("content-type", ""))
    name = charset.group(1).lower() if charset else "utf-8"
    if name not in ("utf-8", "utf8") and not _DECLARED_ENCODING.match(body):
        with contextlib.suppress(LookupError):  # an unknown charset name: the bytes go to expat as they are
            body = body.decode(name, errors="replace").encode("utf-8")
    return body


def _numeric_entities(body: bytes) -> bytes:
    """HTML named entities (`&nbsp;`, `&rsquo;`) as numeric references, which XML knows without a DTD."""

    def numeric(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode()
        code = name2codepoint.get(name)
        return match.group(0) if name in XML_ENTITIES or code is None else f"&#{code};".encode()

    return _NAMED_ENTITY.sub(numeric, body)


def _parse_xml(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)  # noqa: S314 - expat refuses entity expansion bombs
    except ET.ParseError as exc:
        if "undefined entity" not in str(exc):
            raise ParseError(f"not XML: {exc}") from exc
    try:
        return ET.fromstring(_numeric_entities(body))  # noqa: S314
    except ET.ParseError as exc:
        raise ParseError(f"not XML: {exc}") from exc


def feed_items(document: Document) -> list[FeedItem]:
    """Every item of an RSS 2.0 or Atom document; ParseError for anything else."""
    root = _parse_xml(_xml_bytes(document))
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
