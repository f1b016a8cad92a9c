"""Normalisation helpers shared by every source parser.

Sources describe the same facts in different words: "$1.5M" or "1,500,000 USDC", "bsc" or
"bscscan.com" or 56, "Flashloan & Reentrancy". These pure functions (no I/O) turn such text into
Kamiyo's vocabulary (`kamiyo.vocabulary.taxonomy`) so that reports from different sources can be merged.
Each returns None (or "other") rather than guessing when the input is not understood.
"""

from __future__ import annotations

import email.utils
import math
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from kamiyo.vocabulary.protocols import amounts_compatible, protocol_match_key
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

__all__ = [
    "amounts_compatible",
    "as_utc",
    "chain_from_url",
    "normalise_address",
    "normalise_category",
    "normalise_chain",
    "normalise_tx_hash",
    "parse_date_text",
    "parse_usd",
    "protocol_key",
    "protocol_match_key",
]

# --------------------------------------------------------------------------------------------
# USD amounts
# --------------------------------------------------------------------------------------------

MAX_USD = 1e11
"""Anything above this is a parsing accident or a token count, not a loss in dollars."""

# Dollar-pegged stablecoins counted at par (compared upper-cased, after stripping a leading "$").
USD_STABLECOINS = frozenset(
    {
        "USDC", "USDT", "BUSD", "DAI", "USD1", "FDUSD", "TUSD", "USDE", "USDS", "USDP", "PYUSD",
        "GUSD", "LUSD", "FRAX", "SUSD", "USDB", "USDBC", "USDC.E", "USDT.E", "USDT0", "BUSDT",
        "BSC-USD", "AXLUSDC", "CRVUSD", "GHO", "DOLA",
    }
)  # fmt: skip
_USD_UNITS = frozenset({"USD", "US", "USDOLLAR", "DOLLAR", "DOLLARS"})
# Lower-case words that still name a token ("1.7eth", "~10 K usdt" is caught by the stablecoins).
_LOWER_TOKENS = frozenset({"eth", "ether", "bnb", "wbnb", "weth", "btc", "wbtc", "matic", "avax", "ftm"})
_TOKENISH_WORDS = frozenset({"token", "tokens", "nft", "nfts", "shares"})
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}
_NO_LOSS = re.compile(r"^[\s~≈]*(?:n/?a\b|none\b|unknown\b|unclear\b|no loss|nothing\b)", re.I)
_URL = re.compile(r"https?://\S+")
_AMOUNT = re.compile(
    r"""
    (?<![\w.\-])(?P<neg>-)?
    (?P<dollar>(?:US)?\$)?[\s~≈\uff5e]*
    (?<![\w.])(?P<num>\d+(?:[,_]\d+)*(?:\.\d+)?|\.\d+)(?!\d)
    (?:\s?(?P<suffix>thousand|million|billion|bn|k|m|b)(?=[^A-Za-z]|$|US\$))?
    \+?\s*
    (?P<unit>\$?[A-Za-z][A-Za-z0-9.\-]*\$?|\$)?
    """,
    re.X | re.I,
)


def _number(raw: str) -> float:
    """'1,234.5' -> 1234.5; a lone comma not grouping thousands is a decimal comma ('1,24M')."""
    raw = raw.replace("_", "")
    if raw.count(",") == 1 and "." not in raw and not re.fullmatch(r"\d{1,3},\d{3}", raw):
        raw = raw.replace(",", ".")
    return float(raw.replace(",", ""))


def _amounts(text: str) -> list[tuple[str, float, bool]]:
    """Every number in `text` as (kind, value, has_multiplier); kind is usd | stable | token | bare."""
    found: list[tuple[str, float, bool]] = []
    for m in _AMOUNT.finditer(_URL.sub(" ", text)):
        value = _number(m["num"]) * _MULTIPLIERS.get((m["suffix"] or "").lower(), 1.0)
        if m["neg"]:
            value = -value
        unit = (m["unit"] or "").strip("$").rstrip(".-")
        upper = unit.upper()
        if m["unit"] == "$" or upper in _USD_UNITS:
            kind = "usd"
        elif upper in USD_STABLECOINS:
            kind = "usd" if m["dollar"] else "stable"
        elif unit and (unit != unit.lower() or unit in _LOWER_TOKENS or unit in _TOKENISH_WORDS):
            kind = "token"
        else:
            kind = "usd" if m["dollar"] else "bare"
        found.append((kind, value, m["suffix"] is not None))
    return found


def parse_usd(text: str | None) -> float | None:
    """USD value of a free-text loss such as "$1.5M", "~320K", "9M USD", "~29,984.27 USDC".

    Rules, in order: an explicit dollar amount ("$X", "X USD", "X US$", "$X USDC") wins, the first
    one if several ("153,037 ETH (~$30M)" -> 30e6). Otherwise the first amount decides: a USD
    stablecoin counts at par, a bare number with a K/M/B suffix counts as USD, and a bare number
    without suffix only when it is the only number. A token amount first ("~15.32 ETH", "155 $ETH")
    gives None: pricing tokens is not this function's job. Negative or > 1e11 gives None.
    """
    if not text or _NO_LOSS.match(text):
        return None
    amounts = _amounts(text)
    if not amounts:
        return None
    explicit = [value for kind, value, _ in amounts if kind == "usd"]
    kind, value, has_suffix = amounts[0]
    if explicit:
        value = explicit[0]
    elif kind not in ("stable", "bare") or (kind == "bare" and not has_suffix and len(amounts) > 1):
        return None
    if value < 0 or value > MAX_USD or not math.isfinite(value):
        return None
    return round(value, 2)


# --------------------------------------------------------------------------------------------
# Chains
# --------------------------------------------------------------------------------------------


def _alias_key(text: str) -> str:
    return re.sub(r"[\s\-_]+", "", text.strip().lower())


def _build_chain_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for chain in CHAINS.values():  # aliases first, so that a slug always wins over another's alias
        for alias in chain.aliases:
            aliases.setdefault(_alias_key(alias), chain.slug)
    for chain in CHAINS.values():
        aliases[_alias_key(chain.slug)] = chain.slug
        aliases[_alias_key(chain.name)] = chain.slug
    return aliases


_CHAIN_ALIASES = _build_chain_aliases()
# Suffixes of RPC/env names seen in PoCs ("BSC_ARCHIVE", "ARBITRUM_ARCHIVE", "bsc_archive_rpc").
_ALIAS_SUFFIXES = ("archiverpc", "archive", "rpcurl", "rpc", "mainnet")

CHAIN_IDS: dict[int, str] = {
    1: "ethereum", 56: "bsc", 42161: "arbitrum", 10: "optimism", 137: "polygon", 43114: "avalanche",
    250: "fantom", 8453: "base", 100: "gnosis", 25: "cronos", 1284: "moonbeam", 1285: "moonriver",
    42220: "celo", 59144: "linea", 534352: "scroll", 324: "zksync", 5000: "mantle", 81457: "blast",
    1088: "metis", 1666600000: "harmony", 1313161554: "aurora", 2222: "kava", 128: "heco", 66: "okc",
    1101: "polygon_zkevm", 1329: "sei", 80094: "berachain", 146: "sonic", 999: "hyperevm",
    130: "unichain", 34443: "mode", 728126428: "tron", 1116: "core", 369: "pulsechain",
    143: "monad",
}  # fmt: skip

# Explorer hosts not derivable from taxonomy.CHAINS[...].explorer.
_EXTRA_EXPLORER_HOSTS = {
    "snowscan.xyz": "avalanche", "avascan.info": "avalanche", "explorer.zksync.io": "zksync",
    "mantlescan.info": "mantle", "explorer.mantle.xyz": "mantle", "explorer.solana.com": "solana",
    "solana.fm": "solana", "blockstream.info": "bitcoin",
    "explorer.fantom.network": "fantom", "bsctrace.com": "bsc", "explorer.optimism.io": "optimism",
    "gnosis.blockscout.com": "gnosis",
    "tronscan.io": "tron", "suivision.xyz": "sui", "tonscan.org": "ton", "voyager.online": "starknet",
    "explorer.near.org": "near", "aptoscan.com": "aptos", "era.zksync.network": "zksync",
}  # fmt: skip
# Hosts that name the chain in the path: app.blocksec.com/explorer/tx/bsc/0x..., ethtx.info/mainnet/0x...
_PATH_CHAIN_HOSTS = frozenset(
    {
        "app.blocksec.com", "phalcon.blocksec.com", "tools.blocksec.com", "explorer.phalcon.xyz", "phalcon.xyz",
        "skylens.certik.com", "ethtx.info", "oklink.com", "mintscan.io", "dashboard.tenderly.co",
        "openchain.xyz", "tx.eth.samczsun.com",
    }
)  # fmt: skip
_PATH_SKIP = frozenset({"explorer", "tx", "txs", "transaction", "address", "trace", "one"})


def _build_explorer_hosts() -> dict[str, str]:
    hosts: dict[str, str] = {}
    for chain in CHAINS.values():
        if chain.explorer:
            parts = urlsplit(chain.explorer)
            if parts.path.strip("/#") in ("", "mainnet"):
                hosts[parts.netloc.removeprefix("www.")] = chain.slug
    return hosts | _EXTRA_EXPLORER_HOSTS


_EXPLORER_HOSTS = _build_explorer_hosts()


def chain_from_url(url: str | None) -> str | None:
    """Chain slug from a block-explorer URL (host, or the chain segment of multi-chain tools)."""
    if not url:
        return None
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").removeprefix("www.")
    if host in _EXPLORER_HOSTS:
        return _EXPLORER_HOSTS[host]
    if host in _PATH_CHAIN_HOSTS:
        for segment in (parts.path + "/" + parts.fragment).split("/"):
            if segment and segment.lower() not in _PATH_SKIP and not segment.startswith("0x"):
                slug = _CHAIN_ALIASES.get(_alias_key(segment))
                if slug:
                    return slug
    return None


def normalise_chain(text: str | int | None) -> str | None:
    """Canonical chain slug for a name, alias, chain id or explorer domain/URL; None if unknown."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int):
        return CHAIN_IDS.get(text)
    raw = text.strip()
    if not raw:
        return None
    if raw.isdigit():
        return CHAIN_IDS.get(int(raw))
    if "/" in raw or re.search(r"\.[a-z]{2,}$", raw, re.I):
        from_url = chain_from_url(raw)
        if from_url:
            return from_url
    key = _alias_key(raw)
    if key in _CHAIN_ALIASES:
        return _CHAIN_ALIASES[key]
    for suffix in _ALIAS_SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in _CHAIN_ALIASES:
            return _CHAIN_ALIASES[key[: -len(suffix)]]
    return None


# --------------------------------------------------------------------------------------------
# Categories
# --------------------------------------------------------------------------------------------

# Ordered: the first rule that matches wins, so the most specific root cause goes first.
# Precedence: private key > rug pull > phishing > front end > bridge > governance > reentrancy >
# rounding/precision > price/oracle manipulation > access control (incl. signatures, approvals,
# callbacks) > arbitrary call > arithmetic (overflow, donation/inflation) > flash loan > logic error.
# E.g. "Flashloan Attack + Reentrancy" -> reentrancy, "Flashloan & Price Oracle Manipulation" ->
# price_oracle, "Insufficient validation + flashloan" -> flash_loan, "Business Logic Flaw & Access
# Control" -> access_control. Matching is on lower-cased text with -_/ turned into spaces.
_RULES: tuple[tuple[str, str], ...] = (
    ("private_key", r"private ?key|keys? (?:were )?(?:compromis|leak|stol)|compromised keys?|lost keys"),
    ("private_key", r"profanity|vanity address|seed phrase|mnemonic"),
    ("rug_pull", r"\brug|insider|exit scam|backdoor|honeypot"),
    ("phishing", r"phish|social engineer|address poison"),
    ("frontend", r"front ?end|\bdns\b|supply chain|\bnpm\b"),
    ("bridge", r"bridge|cross ?chain|\bcctp\b"),
    ("governance", r"governance|governor|proposal|\bdao\b|voting|\bvotes?\b"),
    ("reentrancy", r"re ?entr|read only"),
    ("rounding", r"\bround|precis+ion|truncat|decimals"),
    ("price_oracle", r"oracle|\bpric(?:e|ing)\b|twap|sandwich|slippage|spot|metapool|(?<!parameter )manipulat"),
    ("access_control", r"access ?contro|permission(?!less)|unprotected|unauthori[sz]|privilege|owner|visibility"),
    ("access_control", r"public (?:internal )?function|initiali[sz]|init ?wallet|killed|selfdestruct"),
    ("access_control", r"signature|ecrecover|permit|replay|spoof|forwarder|\bauth|session key|paymaster"),
    ("access_control", r"allowance (?:check|bypass|sweep)|approval|transferfrom|caller|callback"),
    ("access_control", r"msg\.?sender|protection"),
    ("access_control", r"arbitrary mint|free mint|unlimi?t?ed mint"),
    ("arbitrary_call", r"arbitr?ary|external call|calldata|function ?call|delegatecall|call injection"),
    ("rounding", r"overflow|underflow|unsafe ?(?:math|cast)|unsafecast|integer|mathematical|arithmetic"),
    ("rounding", r"inflation attack|inflation exchange|donat|unit mismatch|division"),
    ("flash_loan", r"flash ?(?:loan|swap|mint)|flashloans?"),
    ("logic_error", r"logic|validat|input|check|calculat|incorrect|wrong|\bbad\b|flaw|error|bug|mispric"),
    ("logic_error", r"account|reward|dividend|reflection|deflation|rebas|\bfee|burn|mint|skim|balance"),
    ("logic_error", r"storage|collision|config|implement|mismatch|random|\brng\b|redemption|claim"),
    ("logic_error", r"migrat|insolven|health|withdraw|double|duplicate|self|stale|outdated|desync"),
    ("logic_error", r"compatib|zero|\bk\b|proof|forgery|yield|parameter|liquidity|fake|toctou|\bnav\b"),
    ("logic_error", r"invariant|interest|payout|recycle|drain|doesn.?t|denial of service|sybil|incentive"),
    ("logic_error", r"loans?|transfer|destroy|arbitrage|inflat|msg ?value"),
)
CATEGORY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((slug, re.compile(rx)) for slug, rx in _RULES)
_CATEGORY_SLUGS = {_alias_key(slug): slug for slug in CATEGORIES}


def normalise_category(text: str | None) -> str:
    """Canonical category slug for a free-text attack type; "other" when nothing matches."""
    if not text:
        return "other"
    clean = re.sub(r"[\s\-_/]+", " ", text.lower())
    if _alias_key(clean) in _CATEGORY_SLUGS:
        return _CATEGORY_SLUGS[_alias_key(clean)]
    for slug, pattern in CATEGORY_RULES:
        if pattern.search(clean):
            return slug
    return "other"


# --------------------------------------------------------------------------------------------
# Transactions, addresses, names, times
# --------------------------------------------------------------------------------------------

_EVM_TX = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BASE58 = r"[1-9A-HJ-NP-Za-km-z]"
_SOLANA_SIG = re.compile(_BASE58 + r"{64,88}")
_OTHER_TX = re.compile(_BASE58 + r"{32,88}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SOLANA_ADDRESS = re.compile(_BASE58 + r"{32,44}")
_TX_SEGMENTS = frozenset({"tx", "txs", "transaction", "transactions", "txn"})
_ADDRESS_SEGMENTS = frozenset({"address", "token", "account", "accounts"})
_OBJECT_SEGMENTS = _TX_SEGMENTS | _ADDRESS_SEGMENTS


def _url_candidates(url: str, keywords: frozenset[str]) -> list[str]:
    """Path (and "#/..." fragment) segments of an explorer URL that may hold the id.

    Those after a keyword segment ("tx", "address"); none when the URL names the other kind of
    object (".../account/<id>" is never a transaction: Sui account ids look like tx hashes);
    without a keyword, every segment, but only for known explorer hosts (so an article URL never
    yields a "hash").
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    segments = [s for s in (parts.path + "/" + parts.fragment).split("/") if s]
    for i, segment in enumerate(segments):
        if segment.lower() in keywords:
            return segments[i + 1 :]
        if segment.lower() in _OBJECT_SEGMENTS:
            return []
    host = (parts.hostname or "").removeprefix("www.")
    return segments if host in _EXPLORER_HOSTS or host in _PATH_CHAIN_HOSTS else []


def _tx_hash(value: str, family: str | None) -> str | None:
    if family in ("evm", None, "other") and _EVM_TX.fullmatch(value):
        return value.lower()
    if family in ("bitcoin", "tron", None, "other") and _HEX64.fullmatch(value):
        return value.lower()
    if family in ("solana", None) and _SOLANA_SIG.fullmatch(value):
        return value
    if family == "other" and _OTHER_TX.fullmatch(value):
        return value
    return None


def normalise_tx_hash(value: str | None, chain: str | None = None) -> str | None:
    """A valid transaction id for the chain's family, or None.

    EVM: 0x + 64 hex, lower-cased. Solana: base58 signature of 64-88 chars, case kept.
    Bitcoin/Tron: 64 hex without 0x, lower-cased. Unknown chain: any of these; family "other"
    (NEAR, Sui, Cosmos...): also base58 ids of 32+ chars. Explorer URLs (".../tx/<hash>") are
    reduced to the hash first.
    """
    if not value:
        return None
    value = value.strip()
    family = CHAINS[chain].family if chain in CHAINS else None
    candidates = _url_candidates(value, _TX_SEGMENTS) if "://" in value else [value]
    for candidate in candidates:
        tx = _tx_hash(candidate, family)
        if tx:
            return tx
    return None


def normalise_address(value: str | None) -> str | None:
    """An EVM (0x + 40 hex, case kept) or Solana (base58, 32-44 chars) address, or None.

    Explorer URLs (".../address/<addr>", ".../token/<addr>") are reduced to the address first.
    """
    if not value:
        return None
    value = value.strip()
    candidates = _url_candidates(value, _ADDRESS_SEGMENTS) if "://" in value else [value]
    for candidate in candidates:
        if _EVM_ADDRESS.fullmatch(candidate) or _SOLANA_ADDRESS.fullmatch(candidate):
            return candidate
    return None


def protocol_key(name: str) -> str:
    """Case- and whitespace-insensitive key for matching protocol names across sources."""
    return " ".join(name.split()).lower()


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken to be UTC; aware ones are converted to UTC."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Dates in the forms sources publish
# --------------------------------------------------------------------------------------------

_LONG_DATE_FORMATS = ("%A, %B %d, %Y", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y-%m-%d", "%Y/%m/%d")
# "+05:30" at the end of an RFC 2822 date (not the standard "+0530"): email.utils would drop it and read UTC.
_COLON_OFFSET = re.compile(r"([+-]\d\d):(\d\d)$")


def parse_date_text(value: str | int | float | None) -> datetime | None:
    """Aware UTC datetime from unix seconds, ISO-8601, RFC 2822 or "Friday, October 3, 2025"; None if not."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_unix(float(value))
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,13}(?:\.\d+)?", text):
        return _from_unix(float(text))
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        pass
    try:
        return as_utc(email.utils.parsedate_to_datetime(_COLON_OFFSET.sub(r"\1\2", text)))
    except (TypeError, ValueError):
        pass
    for fmt in _LONG_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _from_unix(seconds: float) -> datetime | None:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
