"""Deterministic synthetic exploits in Kamiyo's import shape (JSONL, one object per line).

    python bench/synth.py --rows 1000000 --out /tmp/exploits.jsonl [--seed 7] [--end 2026-11-26T00:00:00Z]

The same seed, row count and end time give the same file byte for byte. Shape of the data: tens of
thousands of invented protocol names with Zipf-like popularity, 20 chains skewed to ethereum and bsc,
log-normal losses (median ~$200k, capped at $1e9, ~10% unknown), timestamps uniform over the 4 years
before `--end` (default: now), chain-appropriate unique tx hashes (~5% missing), short descriptions built
from word lists (so text search has something to find) and ~20 source names.

Every row is a distinct incident under Kamiyo's merge rule: no two rows of one protocol fall within
MIN_GAP_DAYS of each other (a popular protocol fills up, and further draws go to other protocols), and
protocol names differ in their core word, which survives Kamiyo's loose name key (suffixes like
"Finance" or "Swap" are stripped there). So importing N rows stores N exploits.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

# (chain, weight): ethereum and bsc dominate, as in public incident lists.
CHAIN_WEIGHTS = (
    ("ethereum", 34), ("bsc", 28), ("arbitrum", 6), ("polygon", 5), ("base", 4), ("avalanche", 3),
    ("optimism", 3), ("fantom", 2.5), ("solana", 3), ("tron", 1.5), ("bitcoin", 1), ("blast", 1),
    ("linea", 1), ("zksync", 1), ("cronos", 1), ("mantle", 1), ("scroll", 0.8), ("gnosis", 0.8),
    ("moonbeam", 0.7), ("celo", 0.7),
)  # fmt: skip
CATEGORY_WEIGHTS = (
    ("flash_loan", 14), ("price_oracle", 12), ("reentrancy", 8), ("access_control", 16), ("private_key", 9),
    ("bridge", 3), ("rug_pull", 10), ("logic_error", 14), ("rounding", 4), ("arbitrary_call", 4),
    ("governance", 1.5), ("phishing", 3), ("other", 1.5),
)  # fmt: skip
SOURCES = (
    "defillama", "rekt", "slowmist", "defihacklabs", "peckshield", "certik", "beosin", "blocksec",
    "cyvers", "hacken", "immunefi", "chainalysis", "elliptic", "trm", "zachxbt", "halborn", "quillaudits",
    "web3isgoinggreat", "hackmd", "community",
)  # fmt: skip
# Protocol core words are consonant-vowel syllables: they end in a vowel, so no generic suffix,
# trailing number or plural "s" is stripped from them by a loose name key.
CONSONANTS, VOWELS = "bdgklmnprtvz", "aeiou"
PROTOCOLS = 60_000
ZIPF_EXPONENT = 1.0
MIN_GAP_DAYS = 4
NAME_TAILS = (
    "Finance", "Swap", "Protocol", "DAO", "Bridge", "Lend", "Vault", "Farm", "Exchange", "Capital",
    "Labs", "Network", "Money", "Markets", "Dex", "Pad", "Staking", "Yield", "Loans", "Pool", "Bank",
    "Fi", "X", "V2", "V3", "Chain", "Token", "Treasury", "Perps", "Options", "Launch", "Router",
)  # fmt: skip
ACTORS = ("An attacker", "A hacker", "The exploiter", "An unknown actor", "A whitehat", "A malicious insider")
VERBS = ("drained", "exploited", "manipulated", "abused", "compromised", "emptied", "attacked")
TARGETS = (
    "the lending pool", "the liquidity vault", "the staking contract", "the bridge relayer", "the price oracle",
    "the governance module", "the reward distributor", "the treasury multisig", "the swap router",
    "the collateral manager", "the token contract", "the farming pool",
)  # fmt: skip
MEANS = (
    "using a flashloan", "through a reentrancy bug", "via a stale price feed", "with a leaked private key",
    "through a missing access check", "via an arbitrary external call", "through a rounding error",
    "after a malicious proposal", "via a phishing signature", "by spoofing cross-chain messages",
    "through an unchecked donation", "by front-running the upgrade",
)  # fmt: skip
OUTCOMES = (
    "and bridged the funds out.", "and laundered the proceeds through a mixer.", "before the team paused it.",
    "and returned part of the funds.", "and swapped the loot for stablecoins.", "leaving users with losses.",
)  # fmt: skip
HEX = "0123456789abcdef"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
EVM_LIKE = frozenset(name for name, _ in CHAIN_WEIGHTS) - {"solana", "tron", "bitcoin"}
SPAN = timedelta(days=4 * 365 + 1)
MEDIAN_USD, SIGMA, CAP_USD = 200_000.0, 2.0, 1e9


def cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def protocol_pool(rng: random.Random, size: int = PROTOCOLS) -> list[str]:
    """`size` protocol names with distinct core words, in popularity order (index 0 is the most exploited)."""
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    cores = ["".join(parts) for parts in itertools.product(syllables, repeat=3)]
    cores = rng.sample(cores, size)
    return [core.capitalize() + (f" {rng.choice(NAME_TAILS)}" if rng.random() < 0.7 else "") for core in cores]


class Generator:
    """Precomputed pools and weights; `row()` makes one exploit with a handful of RNG calls."""

    def __init__(self, seed: int, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.protocols = protocol_pool(self.rng)
        self.protocol_cum = cumulative([1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(self.protocols))])
        # Per protocol, a bit mask of the days its incidents block (bit day + MIN_GAP_DAYS - 1 for a day).
        self.blocked = [0] * len(self.protocols)
        self.block = (1 << (2 * MIN_GAP_DAYS - 1)) - 1
        self.draws: list[int] = []
        self.chains = [name for name, _ in CHAIN_WEIGHTS]
        self.chain_cum = cumulative([w for _, w in CHAIN_WEIGHTS])
        self.categories = [name for name, _ in CATEGORY_WEIGHTS]
        self.category_cum = cumulative([w for _, w in CATEGORY_WEIGHTS])
        self.start = int((end - SPAN).timestamp())
        self.span_seconds = int(SPAN.total_seconds())
        self.mu = math.log(MEDIAN_USD)
        self.seen_tx: set[str] = set()

    def pick(self, items: list[str], cum: list[float]) -> str:
        return self.rng.choices(items, cum_weights=cum)[0]

    def draw(self) -> int:
        """A protocol index by popularity (drawn in bulk: one `choices` call per 8192)."""
        if not self.draws:
            self.draws = self.rng.choices(range(len(self.protocols)), cum_weights=self.protocol_cum, k=8192)
        return self.draws.pop()

    def protocol(self, day: int) -> str:
        """A popular protocol with no incident within MIN_GAP_DAYS - 1 days of `day` (uniform after 50 tries)."""
        blocked, bit = self.blocked, day + MIN_GAP_DAYS - 1
        for attempt in itertools.count():
            index = self.draw() if attempt < 50 else self.rng.randrange(len(blocked))
            if not (blocked[index] >> bit) & 1:
                blocked[index] |= self.block << day
                return self.protocols[index]
        raise AssertionError("unreachable")

    def amounts(self) -> tuple[float | None, float | None]:
        rng = self.rng
        if rng.random() < 0.10:
            return None, None
        amount = round(min(CAP_USD, rng.lognormvariate(self.mu, SIGMA)), 2)
        recovered = round(amount * rng.random(), 2) if rng.random() < 0.12 else None
        return amount, recovered

    def tx_hash(self, chain: str) -> str | None:
        """A unique hash in the chain family's format, or None (~5%)."""
        rng = self.rng
        if rng.random() < 0.05:
            return None
        while True:
            if chain == "solana":
                tx = "".join(rng.choices(BASE58, k=88))
            else:
                digits = f"{rng.getrandbits(256):064x}"
                tx = "0x" + digits if chain in EVM_LIKE else digits
            if tx not in self.seen_tx:
                self.seen_tx.add(tx)
                return tx

    def attacker(self, chain: str) -> str | None:
        rng = self.rng
        if rng.random() < 0.25:
            return None
        if chain in EVM_LIKE:
            return f"0x{rng.getrandbits(160):040x}"
        if chain == "solana":
            return "".join(rng.choices(BASE58, k=44))
        return None

    def description(self, protocol: str, chain: str) -> str:
        c = self.rng.choice
        return f"{c(ACTORS)} {c(VERBS)} {c(TARGETS)} of {protocol} on {chain} {c(MEANS)} {c(OUTCOMES)}"

    def row(self) -> dict[str, Any]:
        offset = self.rng.randrange(self.span_seconds)
        protocol = self.protocol(offset // 86_400)
        chain = self.pick(self.chains, self.chain_cum)
        amount, recovered = self.amounts()
        return {
            "protocol": protocol,
            "chain": chain,
            "category": self.pick(self.categories, self.category_cum),
            "amount_usd": amount,
            "recovered_usd": recovered,
            "timestamp": datetime.fromtimestamp(self.start + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tx_hash": self.tx_hash(chain),
            "description": self.description(protocol, chain),
            "attacker_address": self.attacker(chain),
            "source": self.rng.choice(SOURCES),
        }


def rows(count: int, seed: int = 7, end: datetime | None = None) -> Iterator[dict[str, Any]]:
    end = end or datetime.now(UTC).replace(second=0, microsecond=0)
    generator = Generator(seed, end)
    for _ in range(count):
        yield generator.row()


def write(path: Path, count: int, seed: int = 7, end: datetime | None = None) -> float:
    """Write `count` rows to `path` (atomically, via a temporary name); returns the seconds taken."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    dumps = orjson.dumps
    with partial.open("wb", buffering=1 << 20) as out:
        buffer: list[bytes] = []
        for row in rows(count, seed, end):
            buffer.append(dumps(row))
            if len(buffer) >= 10_000:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")
    partial.replace(path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Number of exploits (default 1,000,000).")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write.")
    parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
    parser.add_argument("--end", help="ISO-8601 UTC end of the 4-year window (default: now).")
    args = parser.parse_args(argv)
    end = datetime.fromisoformat(args.end.replace("Z", "+00:00")).astimezone(UTC) if args.end else None
    seconds = write(args.out, args.rows, args.seed, end)
    print(f"wrote {args.rows:,} exploits to {args.out} in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
