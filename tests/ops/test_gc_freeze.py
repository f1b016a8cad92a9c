"""`kamiyo serve`'s app freezes what startup leaves out of the cycle collector.

A full collection walks every tracked object; the ~170k that the modules and startup leave made each one
a 100-600 ms pause of the event loop (the p99 of a cached answer under load). Apps made for tests do not
freeze (many apps in one process: their garbage must stay collectable)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kamiyo.app import create_app
from tests.support.app import make_settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_the_server_app_freezes_startup_objects_and_test_apps_do_not(unfrozen: None, empty_db_url: str) -> None:
    settings = make_settings(empty_db_url)
    plain = create_app(settings)
    async with plain.router.lifespan_context(plain):
        assert gc.get_freeze_count() == 0
    served = create_app(settings, freeze_gc=True)
    async with served.router.lifespan_context(served):
        frozen = gc.get_freeze_count()
        assert frozen > 50_000  # the modules, routes, models and settings of the whole app
        gc.collect()
        assert gc.get_freeze_count() == frozen  # a collection leaves them where they are
