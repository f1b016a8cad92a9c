"""Security alert accounts on X through the X API v2 recent search (bearer token `X_BEARER_TOKEN`).

`GET https://api.x.com/2/tweets/search/recent?query=from:<handle> -is:retweet -is:reply` with
`tweet.fields=created_at,entities,note_tweet` answers `{"data": [{"id", "text", "created_at"
(ISO-8601 UTC), "entities": {"urls": [{"expanded_url"}]}, "note_tweet": {"text"}}], "meta":
{"result_count", "newest_id", "next_token"}}`; with nothing new, `data` is absent. Searching by
handle needs no user-id lookup; `since_id` (the newest stored post) keeps each run to new posts,
which is what the API bills. More than `max_results` new posts come with `meta.next_token`: the
next page is asked for with `next_token=`, up to MAX_PAGES pages, and a token seen twice ends it.
`text` arrives HTML-escaped (`&amp;`, `&lt;`, `&gt;`, as the API always has) and is unescaped.
Posts go through the hack classifier.
"""

from __future__ import annotations

import html
from typing import Any

from kamiyo.sources._api import bearer, request
from kamiyo.sources._classify import headline, incident_report
from kamiyo.sources.base import Document, Fetch, ParseError, Report, Source, each
from kamiyo.sources.http import SourceContext

SEARCH = "https://api.x.com/2/tweets/search/recent"
KEY = "X_BEARER_TOKEN"
MAX_PAGES = 3  # 300 posts a run: far above what an alert account posts between two runs


def _text(tweet: dict[str, Any]) -> str:
    note = tweet.get("note_tweet")
    long_text = note.get("text") if isinstance(note, dict) else None
    return html.unescape(str(long_text or tweet.get("text") or ""))


def _links(tweet: dict[str, Any]) -> tuple[str, ...]:
    entities = tweet.get("entities") if isinstance(tweet.get("entities"), dict) else {}
    urls = entities.get("urls") if isinstance(entities, dict) else None
    return tuple(str(u.get("expanded_url") or u.get("url")) for u in urls or [] if isinstance(u, dict))


def _answer(document: Document) -> dict[str, Any]:
    answer = document.json()
    if not isinstance(answer, dict) or ("meta" not in answer and "data" not in answer):
        raise ParseError("not an X API v2 search answer")
    return answer


def next_token(document: Document) -> str | None:
    meta = _answer(document).get("meta")
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return token if isinstance(token, str) and token else None


def parse_tweets(name: str, handle: str, document: Document) -> list[Report]:
    tweets = _answer(document).get("data") or []

    def build(tweet: dict[str, Any]) -> Report | None:
        text, ident = _text(tweet), str(tweet["id"])
        return incident_report(
            name, ident, headline(text)[:300], text, tweet["created_at"], url=f"https://x.com/{handle}/status/{ident}",
            links=_links(tweet), raw=tweet,
        )  # fmt: skip

    return list(each((t for t in tweets if isinstance(t, dict)), build, name))


def _fetcher(name: str, handle: str) -> Fetch:
    async def fetch(ctx: SourceContext) -> list[Report]:
        params = {
            "query": f"from:{handle} -is:retweet -is:reply",
            "max_results": "100",
            "tweet.fields": "created_at,entities,note_tweet",
        }
        newest = max((int(ref) for ref in ctx.known_refs if ref.isdigit()), default=0)
        if newest:
            params["since_id"] = str(newest)
        found: dict[str, Report] = {}
        tokens: set[str] = set()
        for number in range(MAX_PAGES):
            document = await request(ctx, ctx.url, params=params, headers=bearer(ctx.key), conditional=number == 0)
            if document is None:
                break
            for report in parse_tweets(name, handle, document):
                found.setdefault(report.source_ref, report)
            token = next_token(document)
            if token is None or token in tokens:
                break
            tokens.add(token)
            params = {**params, "next_token": token}
        return list(found.values())

    return fetch


def x_source(name: str, handle: str, title: str) -> Source:
    """The declaration of one X account's alerts."""
    return Source(
        name=name,
        title=title,
        url=f"https://x.com/{handle}",
        kind="json",
        endpoint=SEARCH,
        cadence_seconds=900,
        needs_key=KEY,
        fetch=_fetcher(name, handle),
        description=f"Posts of @{handle} through the X API v2 recent search, filtered to incident alerts.",
    )
