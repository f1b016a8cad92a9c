"""`kamiyo verify` and `kamiyo prices`: one round of an enrichment job now, its outcome in a line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar

import typer

from kamiyo.cli_support import console, run, upgrade_database, with_database
from kamiyo.config import Settings, get_settings

if TYPE_CHECKING:
    from kamiyo.db import Database


class _Outcome(Protocol):
    disabled: str | None


OutcomeT = TypeVar("OutcomeT", bound=_Outcome)


def _one_round(job: Callable[[Database, Settings], Awaitable[OutcomeT]], off: str) -> OutcomeT | None:
    """Bring the database up to date and run the job once; None (after saying so) when the job is off."""
    settings = get_settings()
    upgrade_database(settings.database_url)
    outcome = run(with_database(lambda db: job(db, settings)))
    if outcome.disabled:
        console.print(f"[yellow]{off} is off: {outcome.disabled}")
        return None
    return outcome


def verify(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="Exploits to check at most.")] = 100,
) -> None:
    """Confirm EVM exploit transactions on chain and time their records by block, through KAMIYO_RPC_URLS
    (one round of the job)."""
    from kamiyo.enrich.onchain import verify_pending

    outcome = _one_round(lambda db, settings: verify_pending(db, settings, limit=limit), "on-chain verification")
    if outcome is None:
        return
    for chain, problem in outcome.skipped_chains.items():
        console.print(f"[yellow]skipped {chain}: {problem}")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.by_status.items())) or "nothing due"
    console.print(
        f"checked {outcome.checked}: {counts}; {outcome.blocks_fetched} blocks read, "
        f"{outcome.updated} records updated, reset {outcome.reset}"
    )


def prices(
    requests: Annotated[int, typer.Option("--requests", min=1, max=10_000, help="Price API requests at most.")] = 60,
) -> None:
    """Price token-denominated losses at their incident day through the price API (one round of the job)."""
    from kamiyo.enrich.prices import price_pending

    outcome = _one_round(lambda db, settings: price_pending(db, settings, max_requests=requests), "pricing")
    if outcome is None:
        return
    for error in outcome.errors[:10]:
        console.print(f"[yellow]{error}")
    console.print(
        f"{outcome.requests} requests ({outcome.failed} failed): {outcome.quotes} prices, {outcome.missing} "
        f"without a price; {outcome.repriced} records re-derived; {outcome.pending} left for the next round"
    )
