"""Protocol names and amounts, for telling whether two reports describe one incident.

Re-exported by `kamiyo.vocabulary.normalise`; pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from kamiyo.vocabulary.curation import alias_keys

# Words that sources add or drop around a name ("Cream Finance", "CREAM Lending", "Euler V1"),
# stripped from the end of the joined name while at least 2 (GENERIC) or 4 (WEAK) characters remain.
GENERIC_SUFFIXES = frozenset(
    {
        "finance", "financial", "protocol", "protocols", "lending", "lend", "capital", "network", "labs", "lab",
        "dao", "money", "markets", "market", "bridge", "token", "exchange", "exploit", "hack", "hacked", "attack",
        "incident", "chain", "defi", "multisig", "platform", "vesting", "masterchef", "frontier", "liquidity",
        "aggregator", "perps", "pools", "pool", "dex", "amm", "router", "nft", "options", "wallet", "v0", "v1",
        "v2", "v3", "v4",
    }
)  # fmt: skip
WEAK_SUFFIXES = frozenset({"fi", "io", "xyz", "app", "swap", "core", "vault", "lst", "fina"})
_SUFFIXES = sorted(((w, 2) for w in GENERIC_SUFFIXES), key=lambda p: -len(p[0])) + sorted(
    ((w, 4) for w in WEAK_SUFFIXES), key=lambda p: -len(p[0])
)
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


_SUFFIX_RE = re.compile("(" + "|".join(w for w, _ in _SUFFIXES) + r"|\d+)$")
_KEEP = {w: keep for w, keep in _SUFFIXES}


def _strip_suffixes(key: str) -> str:
    """Strip generic suffixes (and trailing numbers) while enough of the name remains."""
    while match := _SUFFIX_RE.search(key):
        word = match.group(1)
        keep = 4 if word.isdigit() else _KEEP[word]
        if len(key) - len(word) < keep:
            # the longest alternative did not fit: try shorter suffixes ending the same way
            shorter = next((w for w, k in _SUFFIXES if key.endswith(w) and w != word and len(key) - len(w) >= k), None)
            if shorter is None:
                break
            word = shorter
        key = key[: -len(word)]
    return key


@lru_cache(maxsize=65_536)
def protocol_match_key(name: str | None) -> str:
    """A loose key under which one project's names from different sources coincide.

    "CREAM Lending", "Cream Finance" and "cream.finance" -> "cream"; "PancakeBunny" and "Bunny" ->
    "bunny"; "UwU Lend" and "UwuLend" -> "uwu"; "Euler V1" and "EulerFinance" -> "euler". Steps:
    ASCII-fold, drop "'s", bracketed asides and what follows a "/", join the letters and digits,
    strip generic suffixes and trailing numbers (GENERIC_SUFFIXES, WEAK_SUFFIXES), a plural "s",
    and map other names of one project (`data/curation/aliases.toml`) to their shared key.
    """
    if not name:
        return ""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = text.replace("'s ", " ").split("/", 1)[0] or text
    bare = re.sub(r"^\s*the\s+(?=\S{3})", "", _PARENS.sub(" ", text))
    joined = _NON_ALNUM.sub("", bare) or _NON_ALNUM.sub("", text)
    aliases = alias_keys()  # alias names are listed as written: matched joined, then by the stripped key
    if joined in aliases:
        return aliases[joined]
    key = _strip_suffixes(joined)
    if key in aliases:
        return aliases[key]
    if len(key) >= 5 and key.endswith("s") and not key.endswith("ss"):
        key = key[:-1]
    return key


AMOUNT_RATIO = 10.0
AMOUNT_SLACK_USD = 250_000.0


def amounts_compatible(a: float | None, b: float | None) -> bool:
    """Whether two stated losses can describe one incident.

    Unknown on either side is compatible. Otherwise the larger may be at most AMOUNT_RATIO times the
    smaller (sources value tokens at different times and prices), or differ by less than
    AMOUNT_SLACK_USD (small losses are often rounded very differently).
    """
    if a is None or b is None:
        return True
    low, high = sorted((abs(a), abs(b)))
    return high - low <= AMOUNT_SLACK_USD or high <= low * AMOUNT_RATIO
