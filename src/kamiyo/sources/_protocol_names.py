"""Which protocol a headline names as attacked: the capitalised name next to its incident word.

Headlines say it in a few forms ("NAME exploited", "NAME $5M exploit", "drain $5M from NAME", "exploiting
NAME", "Hack Analysis: NAME"); alert bots also write a "Protocol: NAME" line. Precision beats recall:
no name beside the incident word (only generic words, chains, numbers) is None.
"""

from __future__ import annotations

import re

_STOP = frozenset(
    """a an the this that these those crypto cryptocurrency defi web3 dex cex hackers hacker
    exploiter exploiters attacker attackers scammer scammers thief thieves north korean korea lazarus group alert
    alerts breaking update updates report reports news just urgent warning security analysis hack hacks exploit
    exploits attack drained drain stolen funds users user platform project team over nearly about almost more
    than after amid as from in on of for to with by at and or but its it is was were has have had been be
    bitcoin btc ethereum eth solana sol bnb bsc binance-smart-chain arbitrum optimism polygon avalanche tron sui
    aptos base ton near fantom blast linea scroll mantle sonic zksync hyperliquid cardano cosmos multichain
    us usa fbi doj sec cftc treasury ofac department justice man men woman two three former hacked exploited
    i we you they he she our my your their new why how what who when where here there today yesterday
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday thousand million billion""".split()  # noqa: SIM905
)
_NAME_TOKEN = re.compile(r"^[#@]?(?:[A-Z0-9][\w.\-&]*|[a-z]+[A-Z][\w.\-]*|[a-z0-9]+\.[a-z]{2,}[\w.]*)$")
_AFTER_WORDS = frozenset({"from", "of", "on", "at", "against", "targeting", "hits", "hit", "in", "involving"})
_VERB_OBJECT = re.compile(r"^(?:exploiting|hacking|draining|attacking|exploited|hacked|drained)$", re.I)
_COLON_LEAD = re.compile(r"(?:hack|exploit|attack|breach|heist|drain|rug|analysis|post-?mortem|incident)", re.I)
_LABELLED = re.compile(r"(?im)^\W*(?:protocol|project|victim|target|platform)\s*:\s*[#@$]?([^\n,;|]{2,40})")
_CHAIN_TOKENS = frozenset(
    [
        "ethereum",
        "eth",
        "bsc",
        "bnb",
        "arbitrum",
        "optimism",
        "polygon",
        "avalanche",
        "solana",
        "sol",
        "tron",
        "sui",
        "aptos",
        "base",
        "ton",
        "near",
        "fantom",
        "blast",
        "linea",
        "scroll",
        "mantle",
        "sonic",
        "zksync",
        "starknet",
        "hyperliquid",
        "berachain",
        "cardano",
        "bitcoin",
    ]
)
_BEFORE_KEYS = re.compile(
    r"^(?:hack(?:ed|s)?|exploit(?:ed|s)?|exploiter|drain(?:ed|s)?|heist|breach(?:ed)?|compromised|attack(?:ed)?|"
    r"attacker|hacker|rug(?:ged|-?pull(?:ed)?)?|suffer(?:s|ed)|loses|lost|halts|pauses|paused|confirms|"
    r"investigates|incident|victim|falls?|hit|suspends)$",
    re.I,
)
_AFTER_KEYS = re.compile(
    r"^(?:hack|exploit|attack|breach|drain(?:s|ed)?|heist|steal(?:s)?|stole|siphon(?:s|ed)?|rug-?pull)$", re.I
)
_KIND_WORDS = frozenset(
    [
        "wallets",
        "hot",
        "vaults",
        "treasury",
        "multisig",
        "contract",
        "contracts",
        "neobank",
        "exchange",
        "protocol",
        "lender",
        "dex",
        "bridge",
        "platform",
        "wallet",
        "vault",
        "pool",
        "pools",
        "market",
        "markets",
        "app",
        "dapp",
        "project",
        "token",
        "stablecoin",
        "network",
        "l2",
        "perps",
        "perpetuals",
        "lending",
        "yield",
        "aggregator",
        "launchpad",
        "casino",
        "game",
    ]
)
_SKIP_BETWEEN = frozenset({"has", "have", "been", "was", "were", "is", "gets", "got", "reportedly", "allegedly"})
_DESCRIPTOR = re.compile(r"^(?:[a-z][\w\-]*|[A-Z][a-z]+-based|\$[\d.,]+\w*|~?\$?[\d.,]+[mbk]?|[\d.,]+%?)$")


def _tokens(title: str) -> list[str]:
    cleaned = re.sub(r"[\u2018\u2019]", "'", title)
    cleaned = re.sub(r"[\"“”()\[\]|!?;]|[^\w\s$#@.,'&:~%/-]", " ", cleaned)
    return [t.strip(",.:'") for t in cleaned.split() if t.strip(",.:'")]


def _is_name(token: str) -> bool:
    bare = token.lstrip("#@").removesuffix("'s").removesuffix("'")
    if not bare or bare.lower() in _STOP or bare.lower().endswith(("alert", "alerts")) or bare.startswith("$"):
        return False
    return bool(_NAME_TOKEN.match(token.removesuffix("'s"))) and not bare.replace(".", "").replace(",", "").isdigit()


_GENERIC_NAMES = frozenset(
    "blockchain network protocol bridge exchange finance chain wallet wallets platform app token tokens".split()  # noqa: SIM905
)


_HANDLE_SUFFIX = re.compile(r"(?:_?(?:io|xyz|fi|perp|perps|finance|protocol|official|labs|app|hq|dao))+$", re.I)


def _word(token: str) -> str:
    """A name word: "#Cetus" -> "Cetus", "@KiloEx_perp" -> "KiloEx", "@GMX_IO" -> "GMX"."""
    word = token.removesuffix("'s")
    if word.startswith("@"):
        word = _HANDLE_SUFFIX.sub("", word[1:]) or word[1:]
        return word.replace("_", " ").strip()
    return word.lstrip("#")


def _clean_name(tokens: list[str]) -> str | None:
    """The joined name; None when too short or long, or only generic words ("Blockchain", "Exchange")."""
    words = [_word(t) for t in tokens]
    name = " ".join(words).strip(" -.,")
    if all(w.lower().strip(".,") in _GENERIC_NAMES for w in words):
        return None
    return name if 2 <= len(name) <= 60 else None


def _name_before(tokens: list[str], end: int) -> str | None:
    i = end - 1
    while i >= 0 and tokens[i].lower() in _SKIP_BETWEEN:
        i -= 1
    if i >= 1 and tokens[i].lstrip("#@").lower() in _CHAIN_TOKENS and tokens[i - 1].lower() == "on":
        i -= 2  # "Cork Protocol on #Ethereum was exploited"
    while i >= 0 and re.fullmatch(r"~?\$?[\d.,]+[mbk]?|\$[\d.,]+\w*|(?:million|billion)", tokens[i], re.I):
        i -= 1  # "Cetus $223M exploit"
    kinds = 0
    while i >= 1 and kinds < 2 and tokens[i] in _KIND_WORDS:
        i, kinds = i - 1, kinds + 1  # "Infini neobank drained"
    found: list[str] = []
    while i >= 0 and len(found) < 4 and _is_name(tokens[i]):
        found.insert(0, tokens[i])
        if tokens[i].endswith("'s") and len(found) > 1:
            break
        i -= 1
    return _clean_name(found) if found else None


def _is_descriptor(token: str) -> bool:
    return bool(_DESCRIPTOR.match(token)) or token.lstrip("#@").lower() in _STOP


def _name_after(tokens: list[str], start: int) -> str | None:
    i, skipped = start, 0
    while i < len(tokens) and skipped < 4 and not _is_name(tokens[i]) and _is_descriptor(tokens[i]):
        i, skipped = i + 1, skipped + 1
    found: list[str] = []
    while i < len(tokens) and len(found) < 4 and _is_name(tokens[i]):
        found.append(tokens[i])
        if tokens[i].endswith("'s"):
            break
        i += 1
    return _clean_name(found) if found else None


def extract_protocol(title: str) -> str | None:
    """The attacked project's name as the title gives it, or None when no name stands next to the incident word.

    Forms: "NAME exploited/hacked/suffers/loses …", "NAME $5M exploit", "… drain $5M from NAME",
    "exploit on/against/involving NAME", "exploiting NAME", "Hack Analysis: NAME".
    """
    tokens = _tokens(title)
    for i, token in enumerate(tokens):
        word = token.lower().lstrip("#")
        if _BEFORE_KEYS.match(word) and (name := _name_before(tokens, i)):
            return name
        if _VERB_OBJECT.match(word) and i + 1 < len(tokens) and (name := _name_after(tokens, i + 1)):
            return name
        if _AFTER_KEYS.match(word):
            for j in range(i + 1, min(i + 6, len(tokens))):
                if tokens[j].lower() in _AFTER_WORDS:
                    if name := _name_after(tokens, j + 1):
                        return name
                    break
    lead, colon, rest = title.partition(":")
    if colon and _COLON_LEAD.search(lead):
        return _name_after(_tokens(rest), 0)
    return None


def labelled_protocol(text: str) -> str | None:
    """The value of a "Protocol: X" / "Project: X" line (alert bots write their posts so)."""
    match = _LABELLED.search(text)
    name = _clean_name([t for t in _tokens(match.group(1)) if _is_name(t)][:4]) if match else None
    return name
