"""A synthetic chain history for the bundled incidents, served by local JSON-RPC nodes (see
tests/fixtures/enrich/README.md): deterministic, plausible block numbers and times for every EVM tx hash
the seeded records carry. The tests check the mechanism (which blocks are asked, once; what records
become), not real times: there is no internet here, and real block times would tie the tests to the chains.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.exploits.models import Exploit, is_public
from kamiyo.vocabulary.normalise import CHAIN_IDS
from kamiyo.vocabulary.taxonomy import CHAINS
from tests.enrich.rpc_server import ChainState, rpc_server

# (a block, its unix time, seconds per block): a rough clock per chain, so numbers grow with time as they do.
CLOCKS: dict[str, tuple[int, int, int]] = {
    "ethereum": (15_537_394, 1_663_224_179, 12),
    "bsc": (20_000_000, 1_658_386_800, 3),
    "polygon": (30_000_000, 1_656_000_000, 2),
    "arbitrum": (20_000_000, 1_660_000_000, 1),
}
DEFAULT_CLOCK = (1_000_000, 1_577_836_800, 2)
SENDER_PREFIX = "0x5e"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def block_at(chain: str, moment: datetime) -> tuple[int, int]:
    """The synthetic (number, unix time) of `chain`'s block at `moment`."""
    block, at, every = CLOCKS.get(chain, DEFAULT_CLOCK)
    number = block + (int(moment.timestamp()) - at) // every
    return number, at + (number - block) * every


def sender_of(tx_hash: str) -> str:
    return SENDER_PREFIX + f"{_digest('from' + tx_hash):038x}"[-38:]


async def synthetic_chains(database: Database) -> dict[str, ChainState]:
    """One node state per EVM chain of the seeded records: each record's tx mined at a time of its stated day."""
    chain_ids = {slug: chain_id for chain_id, slug in CHAIN_IDS.items()}
    states: dict[str, ChainState] = {}
    async with database.session() as session:
        rows = await session.execute(
            select(Exploit.chain, Exploit.tx_hash, Exploit.timestamp).where(is_public(), Exploit.tx_hash.like("0x%"))
        )
        for chain, tx_hash, timestamp in rows:
            if CHAINS.get(chain) is None or CHAINS[chain].family != "evm":
                continue
            state = states.setdefault(chain, ChainState(chain_id=chain_ids[chain]))
            day = datetime(timestamp.year, timestamp.month, timestamp.day, tzinfo=UTC)
            number, at = block_at(chain, datetime.fromtimestamp(day.timestamp() + _digest(tx_hash) % 86_400, UTC))
            state.txs[tx_hash] = (number, sender_of(tx_hash), "0x" + "c1" * 20, 1)
            state.block_times[number] = at
    return states


@asynccontextmanager
async def serving(states: dict[str, ChainState]) -> AsyncIterator[dict[str, str]]:
    """Each chain's node on its own loopback port; yields chain -> URL."""
    async with AsyncExitStack() as stack:
        yield {chain: await stack.enter_async_context(rpc_server(state)) for chain, state in states.items()}
