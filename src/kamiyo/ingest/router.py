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
        description="0.25·speed + 0.20·exclusivity + 0.25·coverage + 0.20·accuracy + 0.10·uptime, where "
        "speed = 1 / (1 + speed_median_s / 86400) and a null component counts 0."
    )
    speed_median_s: float | None = Field(
        description="Median delay in seconds between the first report of an incident by any source and this "
        "source's report, over the incidents it reported; 0 when it is usually first."
    )
    exclusivity: float | None = Field(
        description="Share of the incidents this source reported where it was the first to report (ties count)."
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
