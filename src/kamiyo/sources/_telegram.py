"""Public Telegram channel previews (`https://t.me/s/<channel>`), filtered by the hack classifier.

The preview page lists the newest ~20 posts: each `div.tgme_widget_message_wrap` holds a
`div.tgme_widget_message` with `data-post="<channel>/<id>"`; inside its bubble the post text is
the `div.tgme_widget_message_text` that is a direct child of the bubble (a quoted reply carries
its own, nested one), and `a.tgme_widget_message_date > time[datetime]` gives the ISO-8601 time.
Older posts are at `?before=<smallest id on the page>`. A post's reference is its data-post.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kamiyo.sources._classify import headline, incident_report
from kamiyo.sources.base import Document, Fetch, ParseError, Report, Source
from kamiyo.sources.html import Node, parse_html
from kamiyo.sources.http import SourceContext

MAX_PAGES = 3
_POST_ID = re.compile(r"/(\d+)$")


@dataclass(frozen=True, slots=True)
class Post:
    ref: str  # "<channel>/<id>"
    number: int
    text: str
    published: str
    links: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"https://t.me/{self.ref}"


def _lines(node: Node) -> str:
    """Text with <br> as line breaks (the first line of a post is its headline)."""
    parts: list[str] = []
    for child in node.children:
        if isinstance(child, str):
            parts.append(child)
        elif child.tag == "br":
            parts.append("\n")
        else:
            parts.append(_lines(child))
    return "".join(parts)


def _post(message: Node) -> Post | None:
    ref = message.attr("data-post") or ""
    number = _POST_ID.search(ref)
    bubble = message.find("div", "tgme_widget_message_bubble") or message
    body = next((c for c in bubble.children if isinstance(c, Node) and "tgme_widget_message_text" in c.classes), None)
    date = message.find("a", "tgme_widget_message_date")
    time = date.find("time") if date else None
    if not number or time is None or not time.attr("datetime"):
        return None
    if body is None:  # a photo, video or file without caption: kept (with no text) so paging sees its id
        return Post(ref, int(number.group(1)), "", time.attr("datetime") or "", ())
    text = "\n".join(" ".join(line.split()) for line in _lines(body).splitlines() if line.strip())
    links = tuple(dict.fromkeys(h for a in body.find_all("a") if (h := a.attr("href") or "").startswith("http")))
    return Post(ref, int(number.group(1)), text, time.attr("datetime") or "", links)


def parse_posts(document: Document) -> list[Post]:
    """Every dated post of a preview page; media-only posts have empty text (no report, but they count for paging)."""
    root = parse_html(document.text)
    messages = list(root.find_all("div", "tgme_widget_message"))
    if not messages and root.find(None, "tgme_channel_history") is None:  # a <section> in the real markup
        raise ParseError("not a t.me/s channel preview page")
    return [post for post in (_post(m) for m in messages) if post is not None]


def post_report(name: str, post: Post) -> Report | None:
    return incident_report(
        name, post.ref, headline(post.text)[:300], post.text, post.published, url=post.url, links=post.links,
        raw={"post": post.ref, "datetime": post.published, "text": post.text[:4000], "links": list(post.links)},
    )  # fmt: skip


def fetcher(name: str) -> Fetch:
    async def fetch(ctx: SourceContext) -> list[Report]:
        """The newest page, then older pages (`?before=`) until one reaches a post older than the newest
        already-stored report, or MAX_PAGES; a first run reads MAX_PAGES pages."""
        base = ctx.url.split("?", 1)[0]
        known = max((int(m.group(1)) for ref in ctx.known_refs if (m := _POST_ID.search(ref))), default=0)
        found: dict[str, Report] = {}
        url = ctx.url
        for page in range(MAX_PAGES):
            document = await ctx.get(url, conditional=page == 0)
            if document is None:
                break
            posts = parse_posts(document)
            for post in posts:
                if (report := post_report(name, post)) is not None:
                    found.setdefault(report.source_ref, report)
            oldest = min((p.number for p in posts), default=None)
            before = _before(url)
            if oldest is None or oldest <= known or (before is not None and oldest >= before):
                break
            url = f"{base}?before={oldest}"
        return list(found.values())

    return fetch


def _before(url: str) -> int | None:
    match = re.search(r"[?&]before=(\d+)", url)
    return int(match.group(1)) if match else None


def telegram_source(name: str, channel: str, title: str, description: str) -> Source:
    return Source(
        name=name,
        title=title,
        url=f"https://t.me/s/{channel}",
        kind="html",
        endpoint=f"https://t.me/s/{channel}",
        cadence_seconds=900,
        fetch=fetcher(name),
        description=description,
    )
