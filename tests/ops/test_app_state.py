"""The app's typed state: what create_app and its start-up made, read through `app_state` by requests and code."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from kamiyo.app_state import AppState, app_state
from kamiyo.db import Database
from kamiyo.web.setup import html_error
from tests.support.app import make_settings, running


async def test_the_state_holds_what_start_up_made(db_url: str) -> None:
    settings = make_settings(db_url, KAMIYO_ANON_RATE_LIMIT="7/minute")
    async with running(settings) as (app, c):
        state = app_state(app)
        assert isinstance(app.state, AppState) and state.settings is settings
        assert isinstance(state.db, Database) and state.db.url == db_url
        assert state.anon_rate.amount == 7 and state.limiter.store.backend == "memory"
        assert state.html_error_renderer is html_error and state.stream_hub is None
        assert (await c.get("/health")).json()["workers"] == state.workers
        assert app.state.db is state.db  # code that reads an attribute sees the same objects


async def test_a_rate_that_is_not_one_falls_back_to_the_default(db_url: str) -> None:
    async with running(make_settings(db_url, KAMIYO_ANON_RATE_LIMIT="lots")) as (app, _):
        assert app_state(app).anon_rate.amount == 60


def test_an_app_not_made_by_create_app_has_no_state_to_read() -> None:
    with pytest.raises(TypeError, match="create_app"):
        app_state(FastAPI())
