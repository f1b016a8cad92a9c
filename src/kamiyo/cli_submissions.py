"""`kamiyo submissions review`: the community submissions' review queue."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from kamiyo.cli_support import account_command, console
from kamiyo.config import get_settings

submissions_app = typer.Typer(
    help="Community submissions: the review queue.", no_args_is_help=True, rich_markup_mode=None
)


@submissions_app.command("review")
def submissions_review(
    approve: Annotated[int | None, typer.Option("--approve", help="Approve this submission id.")] = None,
    reject: Annotated[int | None, typer.Option("--reject", help="Reject this submission id.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Reviewer's note, shown to the submitter.")] = None,
    reviewer: Annotated[str | None, typer.Option("--as", help="Record this admin's e-mail as the reviewer.")] = None,
    status: Annotated[str, typer.Option("--status", help="List pending, approved, rejected or all.")] = "pending",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Rows to list.")] = 50,
) -> None:
    """List the queue (pending, oldest first), or approve or reject one submission."""
    from kamiyo.submissions.commands import decide, queue_table

    if approve is not None and reject is not None:
        console.print("[red]give --approve or --reject, not both")
        raise typer.Exit(2)
    settings = get_settings()
    target = approve if approve is not None else reject
    if target is None:
        try:
            table = account_command(lambda session: queue_table(session, status, limit))
        except ValueError as exc:
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from exc
        Console(width=200).print(table)
        return
    line = account_command(
        lambda session: decide(session, settings, target, approve=approve is not None, note=note, reviewer=reviewer)
    )
    console.print(line)
