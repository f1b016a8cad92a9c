"""Which news items, posts and alerts report a hack, and the facts they state.

News feeds, blogs, Telegram channels, X accounts and Reddit mix incident reports with market news,
guides, quarterly loss statistics, court cases about old incidents and bounty announcements. Only
items about one incident are kept, and precision beats recall: an item is kept only when it says a
protocol was hacked/exploited/drained/rug-pulled, names that protocol, and is not a roundup, a guide,
a price story, a legal outcome (unless the source is a court source) or a funds-returned update.

From title + text the extractor reads: the protocol (`_protocol_names`: the capitalised name next to the incident
word), the first USD amount ("$12.3M", "$1.5 billion", "4.2M USDC"), the chain (explorer links
first, then an unambiguous chain mention), transaction hashes (explorer links and bare 0x hashes)
and an attacker address named as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kamiyo.sources._protocol_names import extract_protocol, labelled_protocol
from kamiyo.sources.base import Report
from kamiyo.vocabulary.normalise import chain_from_url, normalise_chain, normalise_tx_hash, parse_date_text, parse_usd

# Words that say an incident happened (matched on lower-cased text).
INCIDENT = re.compile(
    r"\b(?:hack(?:ed|s|ing)?|exploit(?:ed|s|ing)?|exploiter|drain(?:ed|s|ing)?|stolen|stole|steal(?:s|ing)?|heist|"
    r"rug[\s-]?pull(?:ed|s)?|rugged|breach(?:ed)?|compromised|attacked|attacker|siphon(?:ed|s)?|looted|"
    r"loses|lost \$|attacks? (?:on|against|involving|targeting)|flash[\s-]?loan attack|price manipulation attack|"
    r"private keys? (?:leak|compromise))(?![a-z])"
)
_LEGAL = re.compile(
    r"\b(?:sentenced|sentencing|pleads?|pleaded|guilty|convicted|extradited|indicted|indictment|charged|"
    r"charges|arrested|arrest|lawsuit|sues|sued|settle(?:s|d|ment)?|trial|jury|prison|seiz(?:e|ed|es|ure))\b"
)
_NOT_AN_INCIDENT = re.compile(
    r"\b(?:how to|guide|explained|what is|what are|tips|protect yourself|avoid(?:ing)?|lessons?|webinar|"
    r"podcast|interview|opinion|op-ed|newsletter|recap|roundup|round-up|weekly|monthly|quarterly|"
    r"annual|mid-year|year in review|top \d+|(?:biggest|largest) (?:crypto )?(?:hacks|exploits|heists)|statistics|"
    r"data shows|report:|research|"
    r"price (?:prediction|analysis|today|rally|surge|drops?|jumps?|falls?)|prediction|etf|"
    r"bug bount(?:y|ies)|audit(?:s|ed)? (?:by|of)|launch(?:es|ed)? (?:a|an|its|new)|partners? with|integrat(?:es|ion)|"
    r"returns?|returned|recover(?:s|ed|y)|refund(?:s|ed)?|compensat\w*|reimburs\w*|white ?hat|rumou?rs?|fears?|"
    r"update:|launder\w*|swapped|moves? (?:stolen )?funds)(?!\w)"
)
_PERIOD = re.compile(
    r"\b(?:in|during|so far in|for|of|this|last) (?:q[1-4]|h[12]|the first (?:half|quarter)|20\d\d|"
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"(?:this|last|the) (?:year|month|week|quarter)|(?:the )?past (?:\d+ )?(?:days?|weeks?|months?|years?))\b"
)
_PLURAL = re.compile(r"\b(?:hacks|exploits|losses|scams|thefts|incidents|attacks)\b")
_CRYPTO = re.compile(r"\b(?:crypto\w*|bitcoin|ether(?:eum)?|defi|blockchain|token|stablecoin|usdt|usdc|nft)\b")


_USD = re.compile(
    r"(?:US)?\$\s?~?\d[\d,]*(?:\.\d+)?(?:\s?(?:thousand|million|billion|mn|bn|[kmb])\b)?"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:thousand|million|billion|mn|bn|[kmb])?\s?(?:USD[CT]?|dollars)\b",
    re.I,
)
# A bare 64-hex value is a tx hash only when the text calls it one (Sui/Aptos addresses look alike).
_EVM_TX = re.compile(r"\b(?:tx|txn|txs|transaction|hash)\b[^0-9a-zA-Z]{0,20}(0x[0-9a-fA-F]{64})(?![0-9a-fA-F])", re.I)
_ATTACKER = re.compile(
    r"(?:attacker|exploiter|hacker|drainer|scammer|thief)(?:'s)?(?:\s+(?:address|wallet|eoa|contract))?"
    r"[^0-9a-zA-Z]{0,12}(?:\([^)]{0,20}\))?[^0-9a-zA-Z]{0,6}(0x[0-9a-fA-F]{40})(?![0-9a-fA-F])",
    re.I,
)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")

# Chains named in prose: case-insensitive unambiguous names, and capitalised-only ambiguous ones.
_CHAIN_WORDS = re.compile(
    r"\b(ethereum|bnb chain|bnb smart chain|binance smart chain|bsc|arbitrum|optimism|polygon|avalanche|solana|"
    r"tron|fantom|zksync|starknet|berachain|hyperliquid|cardano|aptos|bitcoin|unichain|pulsechain|core dao)\b",
    re.I,
)
_CHAIN_LABEL = re.compile(r"(?im)^\W*(?:chain|network|blockchain)\s*:\s*#?([A-Za-z][\w ]{1,24})")
_CHAIN_CAPS = re.compile(r"\b(?:on|the) #?(Base|Sui|Sonic|Blast|Linea|Scroll|Mantle|Mode|TON|NEAR|Sei)\b")

_CATEGORY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (slug, re.compile(rx))
    for slug, rx in (
        ("private_key", r"private keys?|compromised keys?|key compromise|seed phrase|signers? (?:were )?compromised"),
        ("rug_pull", r"rug[\s-]?pull|rugged|exit scam|honeypot"),
        ("phishing", r"phish|drainer|address poisoning|social engineering|fake (?:website|app|airdrop)"),
        ("frontend", r"front[\s-]?end|dns hijack|supply[\s-]chain attack|malicious (?:npm|package)"),
        ("exchange_hack", r"hot wallets?"),
        ("governance", r"governance attack|malicious proposal"),
        ("reentrancy", r"re-?entrancy"),
        ("bridge", r"\bbridge\b|cross-chain"),
        ("price_oracle", r"oracle|price manipulation"),
        ("flash_loan", r"flash[\s-]?loan"),
        ("access_control", r"access control|unprotected function|missing (?:access|permission) check"),
        ("rounding", r"rounding|precision (?:loss|error)"),
    )
)


@dataclass(frozen=True)
class Facts:
    """What one item states about its incident."""

    protocol: str
    amount_usd: float | None = None
    amount_text: str | None = None
    chain: str | None = None
    tx_hashes: tuple[str, ...] = ()
    attacker: str | None = None
    category: str = "other"
    links: tuple[str, ...] = field(default_factory=tuple)


def is_incident(title: str, text: str = "", *, legal_ok: bool = False) -> bool:
    """True when the item reports one hack/exploit/drain/rug pull (not stats, guides, prices, updates)."""
    head = " ".join(title.split()).lower()
    if not head or not INCIDENT.search(head):
        return False
    if _NOT_AN_INCIDENT.search(head):
        return False
    if _PLURAL.search(head) and _PERIOD.search(head):
        return False  # "DeFi hacks cost $1.2B in Q2"
    if not legal_ok and _LEGAL.search(head):
        return False  # a court step about an old incident would be mistaken for a new one
    return not legal_ok or bool(_CRYPTO.search(f"{head} {text[:3000].lower()}"))


def extract_amount(*texts: str) -> tuple[float | None, str | None]:
    """The first USD amount in the first text that has one."""
    for text in texts:
        for match in _USD.finditer(text or ""):
            value = parse_usd(match.group(0))
            if value is not None and value >= 1000:
                return value, match.group(0).strip()
    return None, None


def _labelled_chain(text: str) -> str | None:
    label = _CHAIN_LABEL.search(text)
    return normalise_chain(label.group(1).strip()) if label else None


def _mentioned_chains(text: str) -> list[str]:
    """Chains named in prose, in the order the text names them."""
    mentions = sorted([*_CHAIN_WORDS.finditer(text), *_CHAIN_CAPS.finditer(text)], key=lambda m: m.start())
    return [chain for m in mentions if (chain := normalise_chain(m.group(1)))]


def extract_chain(text: str, links: Iterable[str] = ()) -> str | None:
    """Chain of the first explorer link; else the one chain the text names (None when it names several)."""
    for link in links:
        if chain := chain_from_url(link):
            return chain
    if chain := _labelled_chain(text):
        return chain
    named = set(_mentioned_chains(text))
    return named.pop() if len(named) == 1 else None


def chains_named(text: str, links: Iterable[str] = ()) -> tuple[str, ...]:
    """Every chain an item names, once each: explorer links first, then a "Chain:" label, then the prose in order."""
    found = [chain_from_url(link) for link in links] + [_labelled_chain(text), *_mentioned_chains(text)]
    return tuple(dict.fromkeys(chain for chain in found if chain))


def extract_tx_hashes(text: str, links: Iterable[str] = (), chain: str | None = None) -> tuple[str, ...]:
    found: list[str] = []
    for candidate in [*links, *(m.group(1) for m in _EVM_TX.finditer(text))]:
        tx = normalise_tx_hash(candidate, chain)
        if tx and tx not in found:
            found.append(tx)
    return tuple(found)


def extract_category(text: str) -> str:
    lowered = text.lower()
    return next((slug for slug, rule in _CATEGORY_RULES if rule.search(lowered)), "other")


_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_FULL_DATE = re.compile(rf"\b(?:{_MONTHS})\.? \d{{1,2}}, (?:19|20)\d\d\b")


def stated_date(text: str, published: datetime, max_age: timedelta) -> datetime | None:
    """The earliest "Month D, YYYY" in the text between `max_age` before publication and publication.

    Blogs and court releases describe incidents days to years later ("On March 13, 2023, Euler …");
    the stated date is the better incident time. None when the text gives no such date.
    """
    dates = [d for m in _FULL_DATE.finditer(text) if (d := parse_date_text(m.group(0).replace(".", "")))]
    plausible = [d for d in dates if published - max_age <= d <= published]
    return min(plausible) if plausible else None


def links_in(text: str) -> list[str]:
    return [m.group(0).rstrip(".,") for m in _URL.finditer(text)]


def extract(title: str, text: str = "", links: Iterable[str] = ()) -> Facts | None:
    """The facts of an incident item; None when no protocol can be named (precision over recall)."""
    protocol = extract_protocol(title) or labelled_protocol(text)
    if protocol is None:
        return None
    every_link = tuple(dict.fromkeys([*links, *links_in(text)]))
    both = f"{title}\n{text}"
    amount, amount_text = extract_amount(title, text)
    chain = extract_chain(title, every_link) or extract_chain(text)
    attacker = _ATTACKER.search(both)
    return Facts(
        protocol=protocol,
        amount_usd=amount,
        amount_text=amount_text,
        chain=chain,
        tx_hashes=extract_tx_hashes(both, every_link, chain),
        attacker=attacker.group(1) if attacker else None,
        category=extract_category(title) if extract_category(title) != "other" else extract_category(text),
        links=every_link,
    )


def headline(text: str) -> str:
    """The first sentence of a post (alert accounts put the incident there, follow-ups after it)."""
    first = text.strip().split("\n", 1)[0]
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z#@🚨])", first, maxsplit=1)[0]
    return sentence if len(sentence) >= 20 else first


def incident_report(
    source: str,
    ref: str,
    title: str,
    text: str,
    published: str | int | float | datetime | None,
    *,
    url: str | None = None,
    links: Iterable[str] = (),
    raw: dict[str, Any] | None = None,
    legal_ok: bool = False,
    incident_time: datetime | None = None,
    look_back: timedelta = timedelta(days=60),
) -> Report | None:
    """A Report when the item is an incident with a nameable protocol, else None.

    `published` is the item's publication time and always `reported_at` (the speed ranking). The
    incident time is `incident_time` if given, else the earliest full date the text states within
    `look_back` before publication, else the publication time (news reports within hours).
    """
    when = published if isinstance(published, datetime) else parse_date_text(published)
    if when is None or not ref or not is_incident(title, text, legal_ok=legal_ok):
        return None
    facts = extract(title, text, links)
    if facts is None:
        return None
    return Report(
        source=source,
        source_ref=ref,
        protocol=facts.protocol,
        timestamp=incident_time or stated_date(f"{title} {text}", when, look_back) or when,
        chain=facts.chain,
        tx_hash=facts.tx_hashes[0] if facts.tx_hashes else None,
        tx_hashes=facts.tx_hashes,
        amount_usd=facts.amount_usd,
        amount_text=facts.amount_text,
        category=facts.category,
        description=" ".join(f"{title}. {text}".split())[:2000] if text else title[:2000],
        attacker_address=facts.attacker,
        url=url,
        references=tuple(link for link in facts.links if link != url)[:20],
        reported_at=when,
        raw=raw if raw is not None else {"title": title, "text": text[:4000], "url": url},
    )
