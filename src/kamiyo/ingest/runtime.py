"""Life of the ingest scheduler inside the API process (`kamiyo serve`)."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from kamiyo.config import Settings

log = logging.getLogger(__name__)


def ingest_wanted(settings: Settings) -> bool:
    """On unless `kamiyo serve --no-workers` (KAMIYO_RUN_WORKERS=0) or KAMIYO_OFFLINE."""
    return os.environ.get("KAMIYO_RUN_WORKERS", "").strip() != "0" and not settings.offline


async def start_ingest(app: FastAPI, settings: Settings) -> None:
    app.state.ingest_scheduler = None
    if not ingest_wanted(settings):
        app.state.workers["ingest"] = "offline" if settings.offline else "off"
        return
    from kamiyo.ingest.scheduler import IngestScheduler

    scheduler = IngestScheduler(app.state.db, settings)
    await scheduler.start()
    app.state.ingest_scheduler = scheduler
    app.state.workers["ingest"] = scheduler.status
    log.info("ingest scheduler started", extra={"sources": len(scheduler.sources)})


async def stop_ingest(app: FastAPI) -> None:
    scheduler = getattr(app.state, "ingest_scheduler", None)
    if scheduler is not None:
        await scheduler.stop()
        app.state.ingest_scheduler = None
