"""Life of the delivery worker and the live-stream hub inside the API process (`kamiyo serve`)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from kamiyo.config import Settings
from kamiyo.delivery import wakeup


def workers_wanted() -> bool:
    """On unless `kamiyo serve --no-workers` set KAMIYO_RUN_WORKERS=0 (the same rule as the ingest scheduler)."""
    return os.environ.get("KAMIYO_RUN_WORKERS", "").strip() != "0"


async def start_delivery(app: FastAPI, settings: Settings) -> None:
    """Install the commit hooks (API writes wake workers); start the embedded worker when wanted."""
    wakeup.install_session_hooks()
    app.state.delivery_worker = None
    if workers_wanted():
        from kamiyo.delivery.worker import DeliveryWorker

        worker = DeliveryWorker(app.state.db, settings)
        await worker.start()
        app.state.delivery_worker = worker
        app.state.workers["delivery"] = worker.state


async def stop_delivery(app: FastAPI) -> None:
    hub = getattr(app.state, "stream_hub", None)
    if hub is not None:
        await hub.stop()
    worker = getattr(app.state, "delivery_worker", None)
    if worker is not None:
        await worker.stop()
