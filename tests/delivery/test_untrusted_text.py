"""Text from sources reaches chat channels as text: no masked links, no mentions, no markup of its own."""

from __future__ import annotations

import json
import re
from typing import Any

from kamiyo.db import Database
from tests.delivery.support import Receiver, add_channel, delivery_settings, ingest, report, running_worker
from tests.support.users import user_with_key

EVIL = "https://evil.example/claim"
PROTOCOL = f"Refundfi [Claim your refund]({EVIL}) <{EVIL}|Refund>"
DESCRIPTION = (
    f"Users must act now: [Claim your refund]({EVIL}) or <{EVIL}|Claim now> <!channel> <@U123>\n"
    f'# Urgent\n> official\n<a href="{EVIL}">Claim</a> **bold** `code`'
)
TX = "0x" + "cd" * 32
_MASKED_LINK = re.compile(r"(?<!\\)\[((?:[^\]\\]|\\.)*)\]\(([^)]*)\)")


def _incident() -> Any:
    return report(protocol=PROTOCOL, description=DESCRIPTION, chain="ethereum", tx_hash=TX)


def _live_links(text: str) -> set[str]:
    """Targets of the Markdown masked links Discord would render in `text`."""
    return {m.group(2) for m in _MASKED_LINK.finditer(text)}


async def test_discord_shows_source_markdown_as_text(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver(lambda _r, _n: (204, {}, 0.0)) as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="pro")
        await add_channel(database, user_id, "discord", rx.url + "/api/webhooks/1/tok")
        [exploit_id] = await ingest(database, _incident())
        [got] = await rx.wait_for(1)
    [embed] = json.loads(got.body)["embeds"]
    texts = [embed["title"], embed["description"], *(f["value"] for f in embed["fields"])]
    links = set().union(*(_live_links(t) for t in texts))
    assert links == {f"{settings.public_url}/app/exploits/{exploit_id}", f"https://etherscan.io/tx/{TX}"}
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert (
        fields["Protocol"]
        == r"Refundfi \[Claim your refund\]\(https://evil.example/claim\) \<https://evil.example/claim\|Refund>"
    )
    assert r"\[Claim your refund\]\(https://evil.example/claim\)" in embed["description"]
    assert "\n\\# Urgent\n\\> official\n" in embed["description"] and r"\*\*bold\*\* \`code\`" in embed["description"]
    assert r"\<@U123>" in embed["description"] and json.loads(got.body)["allowed_mentions"] == {"parse": []}


async def test_slack_shows_source_links_and_mentions_as_text(db_url: str, database: Database) -> None:
    settings = delivery_settings(db_url)
    async with Receiver() as rx, running_worker(database, settings):
        user_id, _ = await user_with_key(database, tier="pro")
        await add_channel(database, user_id, "slack", rx.url + "/services/T1/B1/x")
        await ingest(database, _incident())
        [got] = await rx.wait_for(1)
    message = json.loads(got.body)
    mrkdwn = [message["text"]]
    for block in message["blocks"]:
        if block["type"] == "section":
            mrkdwn += [f["text"] for f in block.get("fields", [])] + (
                [block["text"]["text"]] if "text" in block else []
            )
        elif block["type"] == "context":
            mrkdwn += [e["text"] for e in block["elements"]]
    every = "\n".join(mrkdwn)
    links = re.findall(r"<([^>]*)>", every)  # Slack's links and mentions: only Kamiyo's own two
    assert len(links) == 2 and links[0] == f"https://etherscan.io/tx/{TX}|Tx 0xcdcdcdcd…cdcdcd"
    assert links[1].startswith(settings.public_url) and links[1].endswith("|View on Kamiyo")
    assert f"&lt;{EVIL}|Claim now&gt; &lt;!channel&gt; &lt;@U123&gt;" in every


async def test_telegram_shows_source_html_as_text(db_url: str, database: Database) -> None:
    async with Receiver() as rx:
        settings = delivery_settings(db_url, TELEGRAM_API_BASE=rx.url, TELEGRAM_BOT_TOKEN="1:tok")
        async with running_worker(database, settings):
            user_id, _ = await user_with_key(database, tier="pro")
            await add_channel(database, user_id, "telegram", "-1001")
            await ingest(
                database, report(protocol='Evil <a href="https://evil.example/p">Claim</a>', description=DESCRIPTION)
            )
            [got] = await rx.wait_for(1)
    text = json.loads(got.body)["text"]
    hrefs = re.findall(r"<a href=\"([^\"]*)\"", text)
    assert len(hrefs) == 2 and not any("evil" in h for h in hrefs)  # the explorer and Kamiyo, nothing from the source
    assert "Evil &lt;a href=&quot;https://evil.example/p&quot;&gt;Claim&lt;/a&gt;" in text
