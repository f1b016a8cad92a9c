"""Public source health and rankings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kamiyo.api_deps import SessionDep
from kamiyo.exploits.schemas import SourceOut
from kamiyo.ingest import rankings
from kamiyo.ingest.health import list_sources

router = APIRouter(tags=["sources"])


class RankingOut(BaseModel):
    rank: int = Field(description="1 is best.")
    source: str = Field(description="Source slug.")
    score: float = Field(
        description="(0.25·speed + 0.20·exclusivity + 0.25·coverage + 0.20·accuracy + 0.10·uptime) divided by "
        "the sum of the weights used, where speed = 1 / (1 + speed_median_s / 86400). A null speed or exclusivity "
        "(no report with a known time) is left out with its weight; another null component counts 0."
    )
    speed_median_s: float | None = Field(
        description="Median delay in seconds between the first known report of an incident by any source and this "
        "source's report, over the incidents it reported with a known report time; 0 when it is usually first; "
        "null when none of its reports has a known time."
    )
    exclusivity: float | None = Field(
        description="Share of the incidents this source reported with a known report time where it was the first "
        "known report (ties count); null when none of its reports has a known time."
    )
    coverage: float | None = Field(description="Share of all incidents in the window that this source reported.")
    accuracy: float | None = Field(
        description="Share of agreeing checks against the merged exploit: amount within 10 %, same chain, "
        "incident day within 1 day (each check only where both sides state the fact)."
    )
    uptime: float | None = Field(
        description="Share of successful fetch runs in the window (all-time when it did not run in the window)."
    )
    reports: int = Field(description="Reports by this source on incidents in the window.")
    timed_reports: int = Field(
        description="How many of those reports have a known report time (`reported_at`): the ones speed and "
        "exclusivity are computed from. Backfilled history has none."
    )


@router.get("/sources", response_model=list[SourceOut], summary="Sources with their health")
async def sources(session: SessionDep) -> list[dict[str, object]]:
    return await list_sources(session)


@router.get(
    "/sources/rankings",
    response_model=list[RankingOut],
    summary="Sources ranked by speed, exclusivity, coverage, accuracy and uptime",
    description=rankings.__doc__ or "",
)
async def source_rankings(
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=3650, description="Window: incidents of the last N days.")] = 365,
) -> list[dict[str, Any]]:
    return await rankings.compute_rankings(session, days)
