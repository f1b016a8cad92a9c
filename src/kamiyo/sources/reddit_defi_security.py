"""Reddit: new posts of DeFi and Ethereum security-minded subreddits, filtered by the hack classifier.

`GET https://www.reddit.com/r/<a>+<b>/new.json?limit=100&raw_json=1` answers a Listing:
`{"kind": "Listing", "data": {"after", "children": [{"kind": "t3", "data": {"name" ("t3_<id>"),
"title", "selftext", "created_utc" (unix seconds, float), "permalink", "url", "subreddit"}}]}}`.
The shared client's descriptive User-Agent satisfies Reddit's rule against generic agents.
"""

from __future__ import annotations

from typing import Any

from kamiyo.sources._classify import incident_report
from kamiyo.sources.base import Document, Report, Source, each_object

NAME = "reddit_defi_security"
SUBREDDITS = "defi+ethdev+ethereum+CryptoCurrency"


def _report(child: dict[str, Any]) -> Report | None:
    post = child["data"]
    if child.get("kind") != "t3" or post.get("stickied"):
        return None
    permalink = f"https://www.reddit.com{post['permalink']}"
    link = post.get("url") if isinstance(post.get("url"), str) and "reddit.com" not in post["url"] else None
    return incident_report(
        NAME, str(post["name"]), str(post["title"]), str(post.get("selftext") or ""), post["created_utc"],
        url=permalink, links=(link,) if link else (),
        raw={k: post.get(k) for k in ("name", "title", "subreddit", "created_utc", "permalink", "url", "selftext")},
    )  # fmt: skip


def parse(document: Document) -> list[Report]:
    answer = document.json()
    data = answer.get("data") if isinstance(answer, dict) else None
    children = data.get("children") if isinstance(data, dict) else None
    return each_object(children, _report, NAME, error="expected a Reddit Listing")


SOURCE = Source(
    name=NAME,
    title="Reddit DeFi security",
    url=f"https://www.reddit.com/r/{SUBREDDITS}/new",
    kind="json",
    endpoint=f"https://www.reddit.com/r/{SUBREDDITS}/new.json?limit=100&raw_json=1",
    cadence_seconds=1800,
    parse=parse,
    description="New posts of r/defi, r/ethdev, r/ethereum and r/CryptoCurrency that report a named hack.",
)
