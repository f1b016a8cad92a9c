"""SlowMist Hacked (`https://hacked.slowmist.io/`): an HTML list of ~2,000 incidents, 20 per page.

Each `<li>` of `div.case-content` holds `span.time` (YYYY-MM-DD), `h3` ("Hacked target: NAME"),
a description paragraph, "Amount of loss: $ 56,000" (or "-"), "Attack method: …" and a
`p.link-reference` link. Pages are `?c=&page=N`; paging stops at the first page with nothing new,
so after the first full run each round reads one page.

The page has no chain field: the chain is the one the description names ("on BSC", "on Sui", "built
on the Hyperliquid chain", "PulseChain-based") or the reference's explorer; several named chains make
the report "multichain" with each listed in `chains`; none leaves it unknown. A reference that is an
explorer's tx link gives the tx hash.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from kamiyo.sources._classify import chains_named, extract_tx_hashes
from kamiyo.sources.base import Document, ParseError, Report, Source, each
from kamiyo.sources.html import Node, parse_html
from kamiyo.sources.http import SourceContext
from kamiyo.vocabulary.normalise import normalise_category, parse_date_text, parse_usd

NAME = "slowmist"
_LABEL = re.compile(r"^\s*(hacked target|description of the event|amount of loss|attack method)\s*:\s*", re.I)


def _labelled(item: Node) -> dict[str, str]:
    """{"hacked target": …, "amount of loss": …, …} from the `<em>Label: </em>value` pairs."""
    values: dict[str, str] = {}
    for em in item.find_all("em"):
        label = _LABEL.match(em.text() + ":")
        if not label:
            continue
        owner = _owner_of(item, em)
        if owner is not None:
            values[label.group(1).lower()] = owner.text().replace(em.text(), "", 1).strip()
    return values


def _owner_of(item: Node, em: Node) -> Node | None:
    """The innermost element directly holding `em` (its h3, p or span)."""
    for node in item.iter():
        if any(child is em for child in node.children):
            return node
    return None


def _report(item: Node) -> Report | None:
    time_node = item.find("span", "time")
    fields = _labelled(item)
    target = fields.get("hacked target", "")
    when = parse_date_text(time_node.text()) if time_node else None
    if not target or when is None:
        return None
    loss = fields.get("amount of loss", "").replace("$ ", "$")
    method = fields.get("attack method", "")
    description = fields.get("description of the event", "")
    link = item.find("p", "link-reference")
    anchor = link.find("a") if link else None
    url = anchor.attr("href") if anchor else None
    chains = chains_named(description, [url] if url else [])
    chain = chains[0] if len(chains) == 1 else ("multichain" if chains else None)
    hashes = extract_tx_hashes(description, [url] if url else [], chain)
    category = normalise_category(method)
    if category in ("other", "logic_error"):  # "Contract Vulnerability" says little; the text may say more
        from_text = normalise_category(description)
        category = from_text if from_text not in ("other", "logic_error") else category
    return Report(
        source=NAME,
        source_ref=f"{when.date().isoformat()}|{target}",
        protocol=target,
        timestamp=when,
        chain=chain,
        chains=chains,
        tx_hash=hashes[0] if hashes else None,
        tx_hashes=hashes,
        amount_usd=parse_usd(loss) if loss and loss != "-" else None,
        amount_text=loss if loss and loss != "-" else None,
        category=category,
        description=description or method,
        url=url,
        references=(url,) if url else (),
        raw={"date": when.date().isoformat(), "target": target, "description": description, "loss": loss,
             "method": method, "reference": url},
    )  # fmt: skip


def parse(document: Document) -> Iterator[Report]:
    """One page of the list."""
    root = parse_html(document.text)
    content = root.find("div", "case-content")
    if content is None:
        raise ParseError("no div.case-content in the page")
    return each((li for li in content.find_all("li")), _report, NAME)


def page_url(base: str, number: int) -> str:
    return base if number == 1 else f"{base.split('?', 1)[0]}?c=&page={number}"


async def fetch(ctx: SourceContext) -> list[Report]:
    return await ctx.paged(lambda n: page_url(ctx.url, n), parse)


SOURCE = Source(
    name=NAME,
    title="SlowMist Hacked",
    url="https://hacked.slowmist.io/",
    kind="html",
    endpoint="https://hacked.slowmist.io/",
    cadence_seconds=3 * 3600,
    fetch=fetch,
    description="SlowMist's incident list (HTML, paged): target, loss, attack method, reference.",
)
