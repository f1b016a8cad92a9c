"""Token amounts in a loss text ("~70.83 ETH", "2.60 ETH, 4,477.72 USDC", "~$127ETH") and the price API's
coin for each symbol: what the price job asks for and what `derive` multiplies.

A text is a token amount only when it is a plain list: amounts joined by ",", "+", "&" or "and", before any
"(" or ";" (the rest is commentary: "(~$118.7K reported)", "; attacker net profit ..."), each with a unit,
followed at most by lower-case words ("drained"). Anything else (a sentence, a bare number, "Unclear")
is None: it is not priced. A "$" before a token amount ("~$56.9BNB", "$~150 BNB") is the DeFiHackLabs
habit of marking an approximate value and is read as the token amount.

Coins are DeFiLlama's `coingecko:<id>` for the natives, their wrapped forms (priced as the native they
redeem 1:1 for) and common tokens of the chains in `kamiyo.vocabulary.taxonomy`. Dollar stablecoins count at par,
as `parse_usd` counts them, and are never asked for. Any other symbol is unknown: the text stays unpriced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kamiyo.vocabulary.normalise import USD_STABLECOINS

PAR = "usd"  # the coin of a dollar stablecoin: 1 USD, not asked

_GECKO_IDS: dict[str, tuple[str, ...]] = {
    "ethereum": ("ETH", "WETH", "ETHER", "STETH"),  # stETH is redeemable 1:1 for ETH
    "binancecoin": ("BNB", "WBNB"),
    "bitcoin": ("BTC", "WBTC", "BTCB", "CBBTC", "BTC.B", "TBTC"),
    "matic-network": ("MATIC", "WMATIC"),
    "polygon-ecosystem-token": ("POL", "WPOL"),
    "avalanche-2": ("AVAX", "WAVAX"),
    "fantom": ("FTM", "WFTM"),
    "sonic-3": ("S", "WS"),
    "arbitrum": ("ARB",),
    "optimism": ("OP",),
    "solana": ("SOL", "WSOL"),
    "crypto-com-chain": ("CRO", "WCRO"),
    "moonbeam": ("GLMR", "WGLMR"),
    "moonriver": ("MOVR", "WMOVR"),
    "celo": ("CELO",),
    "mantle": ("MNT", "WMNT"),
    "metis-token": ("METIS",),
    "harmony": ("ONE", "WONE"),
    "kava": ("KAVA",),
    "huobi-token": ("HT", "WHT"),
    "okb": ("OKB", "OKT"),
    "sei-network": ("SEI",),
    "berachain-bera": ("BERA", "WBERA"),
    "hyperliquid": ("HYPE", "WHYPE"),
    "tron": ("TRX", "WTRX"),
    "near": ("NEAR", "WNEAR"),
    "aptos": ("APT",),
    "sui": ("SUI",),
    "cosmos": ("ATOM",),
    "cardano": ("ADA",),
    "the-open-network": ("TON",),
    "starknet": ("STRK",),
    "xdai": ("XDAI", "WXDAI"),
    "wrapped-steth": ("WSTETH",),
    "coinbase-wrapped-staked-eth": ("CBETH",),
    "rocket-pool-eth": ("RETH",),
    "bittensor": ("TAO", "WTAO"),
    "curve-dao-token": ("CRV",),
    "pancakeswap-token": ("CAKE",),
    "chainlink": ("LINK",),
    "uniswap": ("UNI",),
    "aave": ("AAVE",),
    "maker": ("MKR",),
}
COINS: dict[str, str] = {symbol: f"coingecko:{gecko}" for gecko, symbols in _GECKO_IDS.items() for symbol in symbols}

_NUMBER = r"\d+(?:[,_]\d{3})*(?:\.\d+)?|\.\d+"
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}
_AMOUNT = re.compile(
    rf"""
    [~≈～]?\s*(?:US)?\$?\s*[~≈～]?\s*
    (?P<num>{_NUMBER})
    (?:\s?(?P<suffix>thousand|million|billion|bn|k|m|b)(?![A-Za-z]))?
    \s*(?P<unit>\$?[A-Za-z][A-Za-z0-9.]*)
    """,
    re.X | re.I,
)
_JOIN = re.compile(r"\s*(?:,|\+|&|\band\b)\s*", re.I)
_TAIL = re.compile(r"(?:\s+[a-z][a-z\-]*)*\s*[.:]?\s*")
_NOT_UNITS = frozenset({"USD", "US", "DOLLAR", "DOLLARS", "K", "M", "B", "BN"})  # a lone multiplier is no unit
_URL = re.compile(r"https?://\S+")


@dataclass(frozen=True, slots=True)
class TokenAmount:
    amount: float
    symbol: str  # upper-case, without a leading "$"

    @property
    def coin(self) -> str | None:
        """The price API's coin id; PAR for a dollar stablecoin; None for a symbol Kamiyo cannot price."""
        if self.symbol in USD_STABLECOINS:
            return PAR
        return COINS.get(self.symbol)


def token_amounts(text: str | None) -> list[TokenAmount] | None:
    """The token amounts `text` states, or None when it is not a plain list of them (see the module doc)."""
    if not text:
        return None
    head = re.split(r"[(;]", _URL.sub(" ", text), maxsplit=1)[0].strip()
    found: list[TokenAmount] = []
    at = 0
    while True:
        match = _AMOUNT.match(head, at)
        if match is None:
            return None
        unit = match["unit"].lstrip("$").rstrip(".").upper()
        if unit in _NOT_UNITS:
            return None
        value = float(match["num"].replace(",", "").replace("_", ""))
        value *= _MULTIPLIERS.get((match["suffix"] or "").lower(), 1.0)
        if value <= 0:
            return None
        found.append(TokenAmount(value, unit))
        at = match.end()
        join = _JOIN.match(head, at)
        if join is None:
            break
        at = join.end()
    return found if _TAIL.fullmatch(head, at) else None


def priceable(amounts: list[TokenAmount] | None) -> bool:
    """Whether every amount has a coin: a text with any unknown token stays unpriced."""
    return bool(amounts) and all(a.coin is not None for a in amounts or ())


def coins_to_ask(amounts: list[TokenAmount] | None) -> set[str]:
    """The price API coins a priceable text needs (stablecoins are at par, never asked)."""
    if not priceable(amounts):
        return set()
    return {coin for a in amounts or () if (coin := a.coin) and coin != PAR}
