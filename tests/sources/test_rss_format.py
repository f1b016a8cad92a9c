"""The RSS 2.0 / Atom 1.0 family (`kamiyo.sources._rss`): the awkward cases of the format, once for every feed.

Cointelegraph, The Block, CryptoSlate, Decrypt, Chainalysis, TRM and Immunefi (Medium) share this
parser. Feeds are given as bytes the way servers send them; each case is one the specs allow or
real feeds are known to produce (CDATA with escaped HTML, HTML entities XML does not define,
numeric zones and zone names in RFC 822 dates, declared non-UTF-8 encodings, missing elements).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kamiyo.sources._rss import classified, feed_items
from kamiyo.sources.base import Document, ParseError, Report
from tests.sources.fixture_server import FIXTURES

PARSE = classified("cointelegraph")
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'


def feed(*items: bytes, head: bytes = HEAD, headers: dict[str, str] | None = None) -> Document:
    body = head + b"<channel><title>t</title>" + b"".join(items) + b"</channel></rss>"
    return Document("https://example.org/feed", 200, body, headers or {})


def item(
    title: bytes = b"Zunami Protocol exploited for $2.1M on Ethereum",
    *,
    link: bytes | None = b"https://example.org/news/zunami",
    guid: bytes | None = None,
    date: bytes | None = b"Sun, 13 Aug 2023 14:05:00 +0000",
    description: bytes | None = b"<![CDATA[<p>The stablecoin protocol lost funds.</p>]]>",
) -> bytes:
    parts = [b"<title>" + title + b"</title>"]
    parts += [b"<link>" + link + b"</link>"] if link is not None else []
    parts += [b"<guid>" + guid + b"</guid>"] if guid is not None else []
    parts += [b"<pubDate>" + date + b"</pubDate>"] if date is not None else []
    parts += [b"<description>" + description + b"</description>"] if description is not None else []
    return b"<item>" + b"".join(parts) + b"</item>"


def reports(document: Document) -> list[Report]:
    return list(PARSE(document))


def only(document: Document) -> Report:
    found = reports(document)
    assert len(found) == 1, found
    return found[0]


def test_entity_escaped_html_inside_cdata_is_decoded_in_titles_and_excerpts() -> None:
    report = only(
        feed(
            item(
                b"<![CDATA[Curve Finance&#8217;s pools drained &amp; $70M lost]]>",
                description=b"<![CDATA[Vyper&#8217;s re-entrancy lock &amp; the CRV/ETH pool]]>",
            )
        )
    )
    assert report.raw["title"] == "Curve Finance’s pools drained & $70M lost"
    assert report.protocol == "Curve Finance" and report.amount_usd == 70e6
    assert "Vyper’s re-entrancy lock & the CRV/ETH pool" in (report.description or "")
    assert "&#" not in (report.description or "") and "&amp;" not in (report.description or "")


def test_html_named_entities_outside_cdata_do_not_cost_the_feed() -> None:
    """`&nbsp;` and `&rsquo;` are HTML, not XML: expat refuses them, the parser must not."""
    found = reports(
        feed(
            item(b"Zunami&nbsp;Protocol exploited for $2.1M"),
            item(b"Sturdy Finance&rsquo;s lending pools exploited for $800K &amp; paused", link=b"https://e.org/2"),
        )
    )
    assert {r.protocol for r in found} == {"Zunami Protocol", "Sturdy Finance"}
    assert found[1].raw["title"] == "Sturdy Finance’s lending pools exploited for $800K & paused"


def test_title_markup_is_reduced_to_text() -> None:
    report = only(feed(item(b"<![CDATA[<em>Zunami</em> exploited for $2.1M]]>")))
    assert report.raw["title"] == "Zunami exploited for $2.1M" and report.protocol == "Zunami"


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        (b"Sun, 13 Aug 2023 14:05:00 +0000", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),
        (b"Sun, 13 Aug 2023 14:05:00 GMT", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),
        (b"Sun, 13 Aug 2023 09:05:00 -0500", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),
        (b"Sun, 13 Aug 2023 10:05:00 EDT", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),
        (b"Sun, 13 Aug 2023 19:35:00 +05:30", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),  # colon: not RFC 822
        (b"13 Aug 2023 16:05 +0200", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),  # no weekday, no seconds
        (b"Mon, 14 Aug 2023 01:05:00 +1100", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),  # next day there
        (b"  Sun, 13 Aug 2023 14:05:00 +0000\n", datetime(2023, 8, 13, 14, 5, tzinfo=UTC)),
    ],
)
def test_rfc_822_publication_times_in_every_zone_form_become_utc(stamp: bytes, utc: datetime) -> None:
    report = only(feed(item(date=stamp)))
    assert report.reported_at == report.timestamp == utc
    assert report.reported_at.tzinfo is UTC


def test_dublin_core_date_stands_in_for_a_missing_pub_date() -> None:
    head = HEAD.replace(b"<rss ", b'<rss xmlns:dc="http://purl.org/dc/elements/1.1/" ')
    body = item(date=None).replace(b"</item>", b"<dc:date>2023-08-13T16:05:00+02:00</dc:date></item>")
    assert only(feed(body, head=head)).reported_at == datetime(2023, 8, 13, 14, 5, tzinfo=UTC)


def test_atom_entries_with_offsets_html_titles_and_xhtml_content() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Security blog</title><id>urn:blog</id>
<entry>
  <title type="html">Zunami &amp;amp; friends: Zunami Protocol exploited for $2.1M</title>
  <link rel="enclosure" href="https://example.org/zunami.mp3"/>
  <link href="https://example.org/posts/zunami"/>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <published>2023-08-13T16:05:00+02:00</published>
  <updated>2023-08-20T00:00:00Z</updated>
  <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>The attacker used a
    <a href="https://etherscan.io/tx/0x2aec4fdb2a09ad4269a410f2c770737626fb62c54e0fa8ac25e8582d4b690cca">donation</a>
    to inflate the price.</p></div></content>
</entry>
<entry><title>Weekly newsletter</title><id>urn:2</id><updated>2023-08-21T09:00:00-07:00</updated></entry>
</feed>"""
    report = only(Document("https://example.org/atom", 200, atom))
    assert report.source_ref == "urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6"
    assert report.url == "https://example.org/posts/zunami"  # the alternate link, not the enclosure
    assert report.raw["title"] == "Zunami & friends: Zunami Protocol exploited for $2.1M"
    assert report.reported_at == datetime(2023, 8, 13, 14, 5, tzinfo=UTC)  # published, not updated
    assert "inflate the price" in (report.description or "")
    assert report.tx_hash == "0x2aec4fdb2a09ad4269a410f2c770737626fb62c54e0fa8ac25e8582d4b690cca"


def test_a_feed_declared_in_windows_1252_is_decoded_by_its_declaration() -> None:
    head = b'<?xml version="1.0" encoding="windows-1252"?>\n<rss version="2.0">'
    report = only(feed(item(description=b"India\x92s Zunami \x96 \x80 2.1M gone"), head=head))
    assert "India’s Zunami – € 2.1M gone" in (report.description or "")


def test_a_charset_given_only_in_content_type_is_honoured() -> None:
    latin = feed(item(description=b"Caf\xe9 owners lost funds"), head=b'<rss version="2.0">',
                 headers={"content-type": "application/rss+xml; charset=ISO-8859-1"})  # fmt: skip
    assert "Café owners lost funds" in (only(latin).description or "")
    declared = feed(item(description=b"Caf\xc3\xa9"), headers={"content-type": "text/xml; charset=ISO-8859-1"})
    assert "Café" in (only(declared).description or "")  # the XML declaration says UTF-8 and wins


def test_a_byte_order_mark_or_whitespace_before_the_declaration_is_tolerated() -> None:
    assert len(reports(feed(item(), head=b"\n\n  " + HEAD))) == 1
    assert len(reports(feed(item(), head=b"\xef\xbb\xbf" + HEAD))) == 1


def test_missing_elements_leave_unknowns_unknown_and_drop_only_what_cannot_be_placed() -> None:
    no_link = only(feed(item(link=None, guid=b"tag:example.org,2023:zunami")))
    assert no_link.source_ref == "tag:example.org,2023:zunami" and no_link.url is None
    no_amount = only(feed(item(b"Zunami Protocol exploited on Ethereum")))
    assert no_amount.amount_usd is None and no_amount.amount_text is None
    no_description = only(feed(item(description=None)))
    assert no_description.protocol == "Zunami Protocol" and no_description.amount_usd == 2.1e6
    assert reports(feed(item(date=None))) == []  # no time at all: not placed on the timeline
    assert reports(feed(item(link=None))) == []  # neither link nor guid: no stable reference
    assert reports(feed(item(b""))) == []  # no title


def test_empty_feeds_yield_nothing_and_other_documents_are_refused() -> None:
    assert reports(feed()) == []
    assert feed_items(Document("u", 200, b'<rss version="2.0"><channel/></rss>')) == []
    assert feed_items(Document("u", 200, b'<feed xmlns="http://www.w3.org/2005/Atom"/>')) == []
    for body in (b"", b"<html><body>Just a moment...</body></html>", b"<opml/>", b'{"items": []}'):
        with pytest.raises(ParseError):
            feed_items(Document("u", 200, body))


def test_one_odd_item_among_good_ones_costs_only_itself() -> None:
    found = reports(
        feed(
            item(),
            item(b"Sturdy Finance exploited for $800K", link=b"https://e.org/2", date=b"Thu, 31 Feb 2023 10:00:00 GMT"),
            item(b"<![CDATA[]]>", link=b"https://e.org/3"),
            item(b"Exactly Protocol exploited for $7.3M", link=b"https://e.org/4", date=b"yesterday"),
            item(b"Conic Finance exploited for $3.2M", link=b"https://e.org/5", date=b"Fri, 21 Jul 2023 18:30 +0000"),
        )
    )
    assert [r.protocol for r in found] == ["Zunami Protocol", "Conic Finance"]


def fixture(name: str, path: str) -> Document:
    return Document(f"https://example.org/{name}", 200, (FIXTURES / name / path).read_bytes())


def test_each_feed_fixture_holds_its_awkward_case() -> None:
    """What each hand-built feed fixture adds (see its README.md)."""
    decrypt = {r.protocol: r for r in classified("decrypt")(fixture("decrypt", "feed"))}
    assert "India’s CoinDCX" in (decrypt["CoinDCX"].description or "")  # windows-1252 byte 0x92
    slate = {r.protocol: r for r in classified("cryptoslate")(fixture("cryptoslate", "feed"))}
    zklend = slate["zkLend"].raw["text"]  # content:encoded wins over the description
    assert "zkLend’s accumulator & lending market. The attacker" in zklend  # entities; paragraphs stay apart
    chainalysis = feed_items(fixture("chainalysis_blog", "feed"))
    assert "Introducing Hexagate & Chainalysis’s exchange integrations" in [i.title for i in chainalysis]
    assert "New product features." in [i.text for i in chainalysis]  # &nbsp; outside CDATA: the feed still parses
    assert len(feed_items(fixture("trm_blog", "rss.xml"))) == 3  # a newline before <?xml
    telegraph = classified("cointelegraph")(fixture("cointelegraph", "rss"))
    assert "Zunami Protocol" not in {r.protocol for r in telegraph}  # no pubDate: dropped
    block = {r.protocol: r for r in classified("theblock")(fixture("theblock", "rss.xml"))}
    assert block["Bybit"].reported_at == datetime(2025, 2, 21, 21, 30, 14, tzinfo=UTC)  # -0500
    assert block["Abracadabra"].reported_at == datetime(2025, 3, 25, 14, 44, tzinfo=UTC)  # -0400
    trm = {r.protocol: r for r in classified("trm_blog")(fixture("trm_blog", "rss.xml"))}
    assert trm["UPCX"].reported_at == datetime(2025, 4, 2, 16, tzinfo=UTC)  # GMT
    medium = {r.protocol: r for r in classified("immunefi")(fixture("immunefi", "feed"))}
    assert "donateToReserves" in (medium["Euler Finance"].description or "")  # empty description: content:encoded


def test_rss_1_0_rdf_feeds_are_read() -> None:
    rdf = b"""<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://example.org/"><title>t</title><link>https://example.org/</link></channel>
<item rdf:about="https://example.org/news/zunami">
  <title>Zunami Protocol exploited for $2.1M</title><link>https://example.org/news/zunami</link>
  <description>The stablecoin protocol lost funds.</description><dc:date>2023-08-13T14:05:00Z</dc:date>
</item></rdf:RDF>"""
    report = only(Document("https://example.org/rdf", 200, rdf))
    assert (report.protocol, report.url) == ("Zunami Protocol", "https://example.org/news/zunami")
    assert report.reported_at == datetime(2023, 8, 13, 14, 5, tzinfo=UTC)


def test_a_broken_feed_keeps_the_items_read_before_the_break() -> None:
    """An unclosed element midway (feedparser's `bozo`): the items before it still count."""
    second = item(b"Sturdy Finance exploited for $800K", link=b"https://e.org/2")
    broken = feed(item(), second.replace(b"</title>", b"</titel>"))
    assert [r.protocol for r in reports(broken)] == ["Zunami Protocol"]
