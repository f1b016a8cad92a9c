"""`GET /health`: database reachability, data counts, source health, stored secrets and worker state."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, select

from kamiyo import __version__
from kamiyo.api_deps import get_app_settings, get_database
from kamiyo.app_state import app_state
from kamiyo.delivery.keycheck import check_key
from kamiyo.exploits.models import Exploit, ReportRow
from kamiyo.ingest.health import is_healthy, source_states
from kamiyo.kit.jsonresp import dumps
from kamiyo.sources import REGISTRY

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    version: str
    database: dict[str, Any]
    sources: dict[str, Any]
    workers: dict[str, Any]
    secrets: dict[str, Any] | None = None


@router.get("/ping", summary="Liveness: answers without touching the database")
async def ping() -> Response:
    return Response(b'{"pong":true}', media_type="application/json")


@router.get("/health", response_model=HealthOut, summary="Service health", responses={503: {"model": HealthOut}})
async def health(request: Request) -> Response:
    workers = dict(app_state(request).workers)
    body: dict[str, Any] = {"status": "ok", "version": __version__, "workers": workers}
    try:
        async with get_database(request).session() as session:
            exploits = (await session.execute(select(func.count()).select_from(Exploit))).scalar_one()
            reports = (await session.execute(select(func.count(func.distinct(ReportRow.source))))).scalar_one()
            states = await source_states(session)
            keys = await check_key(session, get_app_settings(request))
    except Exception as exc:  # the point of a health check is to report this, not raise it
        log.warning("health check: database unavailable: %s", type(exc).__name__)
        body.update(
            status="degraded",
            database={"ok": False, "exploits": None, "sources": None},
            sources={"active": 0, "total": len(REGISTRY), "failing": []},
        )
        return Response(dumps(body), status_code=503, media_type="application/json")
    failing = sorted(n for n, s in states.items() if s.enabled and s.consecutive_failures > 0)
    active = sum(1 for name in REGISTRY if is_healthy(states.get(name)))
    body["database"] = {"ok": True, "exploits": exploits, "sources": reports}
    body["sources"] = {"active": active, "total": len(REGISTRY), "failing": failing}
    # Webhook secrets and channel destinations this server's KAMIYO_SECRET_KEY cannot decrypt: their
    # alerts stop (each such target is disabled), so the operator is told here too.
    failures = keys.sampled - keys.opened
    body["secrets"] = {"ok": keys.ok, "undecryptable_targets": keys.disabled, "sample_failures": failures}
    if failing or not keys.ok:
        body["status"] = "degraded"
    return Response(dumps(body), media_type="application/json")
