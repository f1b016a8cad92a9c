"""The bodies of `kamiyo ingest`, `kamiyo sources` and `kamiyo worker` (cli.py only declares them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kamiyo.config import Settings
from kamiyo.db import Database
from kamiyo.ingest.runner import RunOutcome

STATUS_STYLE = {"ok": "green", "not_modified": "green", "failed": "red", "disabled": "yellow", "skipped": "yellow"}


async def ingest_round(settings: Settings, names: Sequence[str], console: Console) -> list[RunOutcome]:
    """One round of the named (or all) sources with a progress bar; the outcomes."""
    from kamiyo.ingest.scheduler import options_from, run_round, select_sources

    sources = select_sources(names)
    db = Database(settings.database_url)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            task = progress.add_task("fetching", total=len(sources))

            def done(outcome: RunOutcome) -> None:
                progress.update(task, advance=1, description=f"{outcome.source}: {outcome.status}")

            return await run_round(db, options_from(settings), sources, on_done=done)
    finally:
        await db.dispose()


def outcome_table(outcomes: Sequence[RunOutcome]) -> Table:
    table = Table(title="ingest round")
    for column, justify in (("source", "left"), ("status", "left"), ("items", "right"), ("new", "right"),
                            ("updated", "right"), ("latency", "right"), ("error", "left")):  # fmt: skip
        # Source names are identifiers: never cut; long errors fold onto more lines instead.
        table.add_column(column, justify=justify, no_wrap=column == "source", overflow="fold")  # type: ignore[arg-type]
    for o in outcomes:
        style = STATUS_STYLE.get(o.status, "")
        table.add_row(
            o.source,
            f"[{style}]{o.status}[/]" if style else o.status,
            str(o.items),
            str(o.new),
            str(o.updated),
            f"{o.latency_ms / 1000:.2f} s" if o.latency_ms else "-",
            (o.error or "")[:80],
        )
    return table


async def sources_rows(settings: Settings) -> list[dict[str, Any]]:
    """`/sources` joined with the 365-day ranking score."""
    from kamiyo.ingest.health import list_sources
    from kamiyo.ingest.rankings import compute_rankings

    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            rows = await list_sources(session)
            scores = {r["source"]: r["score"] for r in await compute_rankings(session, 365)}
    finally:
        await db.dispose()
    return [{**row, "score": scores.get(str(row["name"]))} for row in rows]


def sources_table(rows: Sequence[dict[str, Any]], offline: bool) -> Table:
    table = Table(title="sources" + (" (KAMIYO_OFFLINE: not fetching)" if offline else ""))
    for column in ("name", "enabled", "health", "last success", "items", "score"):
        table.add_column(
            column,
            justify="right" if column in ("items", "score") else "left",
            no_wrap=column == "name",
            overflow="fold",
        )
    for row in rows:
        if not row["enabled"]:
            health = f"[yellow]off[/] {row.get('disabled_reason') or ''}".strip()
        elif row["healthy"]:
            health = "[green]ok[/]"
        elif row.get("last_error"):
            health = f"[red]failing[/] ({row.get('consecutive_failures', 0)}×): {str(row['last_error'])[:60]}"
        else:
            health = "never ran"
        table.add_row(
            str(row["name"]),
            "yes" if row["enabled"] else "no",
            health,
            str(row["last_success_at"] or "-")[:16].replace("T", " "),
            str(row["items"]),
            f"{row['score']:.3f}" if row.get("score") is not None else "-",
        )
    return table
