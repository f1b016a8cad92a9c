"""Public source health."""

from __future__ import annotations

from fastapi import APIRouter

from kamiyo.api_deps import SessionDep
from kamiyo.exploits.schemas import SourceOut
from kamiyo.ingest.health import list_sources

router = APIRouter(tags=["sources"])


@router.get("/sources", response_model=list[SourceOut], summary="Sources with their health")
async def sources(session: SessionDep) -> list[dict[str, object]]:
    return await list_sources(session)
