"""US Department of Justice press releases (`https://www.justice.gov/api/v1/press_releases.json`).

The News API v1 answers `{"metadata": {"resultset": {"count", "page", "pagesize"}}, "results": [...]}`;
each result has `uuid`, `title`, `url`, `date` (unix seconds as a string), `teaser`, `body` (HTML),
`component` ([{"name"}]) and `topic`. `pagesize` is at most 50; `sort=date&direction=DESC` gives the
newest first. Only releases about a crypto hack or theft of a named project are kept (the hack
classifier, with court words allowed and a crypto word required). A release announces a charge or
sentence long after the theft, so the incident time is the earliest full date in the release text
(within five years before it), else the release date; `reported_at` is the release date.
"""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

from kamiyo.sources._classify import incident_report
from kamiyo.sources.base import Document, Report, Source, each_object
from kamiyo.sources.html import parse_html
from kamiyo.vocabulary.normalise import parse_date_text

NAME = "doj"
LOOK_BACK = timedelta(days=5 * 365)


def _plain(value: Any) -> tuple[str, tuple[str, ...]]:
    if not isinstance(value, str) or not value:
        return "", ()
    root = parse_html(value)
    links = tuple(dict.fromkeys(h for a in root.find_all("a") if (h := a.attr("href") or "").startswith("http")))
    return root.text()[:8000], links


def _report(item: dict[str, Any]) -> Report | None:
    title = html.unescape(str(item["title"])).strip()
    published = parse_date_text(item.get("date"))
    url = item.get("url") if isinstance(item.get("url"), str) else None
    ref = str(item.get("uuid") or url or "")
    if published is None or not ref:
        return None
    body, links = _plain(item.get("body"))
    teaser, _ = _plain(item.get("teaser"))
    text = body or teaser
    components = [c.get("name") for c in item.get("component") or [] if isinstance(c, dict)]
    return incident_report(
        NAME, ref, title, text, published, url=url, links=links, legal_ok=True,
        look_back=LOOK_BACK,
        raw={"uuid": item.get("uuid"), "title": title, "url": url, "date": item.get("date"),
             "number": item.get("number"), "component": components, "teaser": teaser[:1000]},
    )  # fmt: skip


def parse(document: Document) -> list[Report]:
    answer = document.json()
    results = answer.get("results") if isinstance(answer, dict) else None
    return each_object(results, _report, NAME, error="expected the DOJ API's {results: [...]}")


SOURCE = Source(
    name=NAME,
    title="US Department of Justice press releases",
    url="https://www.justice.gov/news",
    kind="json",
    endpoint="https://www.justice.gov/api/v1/press_releases.json?pagesize=50&sort=date&direction=DESC",
    cadence_seconds=3600,
    parse=parse,
    description="Charges and sentences in crypto hacks and thefts of named projects (DOJ News API).",
)
