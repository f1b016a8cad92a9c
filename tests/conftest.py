"""Shared fixtures: migrated and seeded databases on real SQLite and PostgreSQL, and an API client.

A seeded and an empty (migrated only) template are built once per backend per run (per xdist worker);
each test gets its own copy (file copy for SQLite, `CREATE DATABASE … TEMPLATE` for PostgreSQL), so
tests may write freely without paying for the migrations again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from kamiyo import migrations
from kamiyo.accounts import service as account_service
from kamiyo.db import Database
from kamiyo.kit.ratelimit import Limiter
from tests.support.app import make_settings, running
from tests.support.databases import WORKER, fresh_postgres, fresh_sqlite, read_only_copy, seed, sqlite_footprint
from tests.support.services import postgres_missing_reason, postgres_server, psql
from tests.support.users import PRODUCTION_HASHER, settings_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "input_matrix: the cases vary the input, not the storage; all run on SQLite, the first also on PostgreSQL",
    )
    config.addinivalue_line(
        "markers",
        "reads_seed: the test only reads the seeded database, so `db_url` is one read-only copy shared by such tests",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep one PostgreSQL case of each `input_matrix` test: its other cases would only repeat, on a second
    database, a check that is made before (or without regard to) anything is stored."""
    seen: set[str] = set()
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        spec = getattr(item, "callspec", None)
        if item.get_closest_marker("input_matrix") and spec and spec.params.get("backend") == "postgresql":
            key = f"{item.path}::{getattr(item, 'originalname', item.name)}"
            if key in seen:
                dropped.append(item)
                continue
            seen.add(key)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Settings default to ./data, where the app writes a generated secret key: each run (each xdist worker)
    gets its own folder instead, so no run reads another's key or races it while it is being written."""
    patch = pytest.MonkeyPatch()
    # Not created here: the app makes it (owner-only), as on a fresh clone.
    patch.setenv("KAMIYO_DATA_DIR", str(tmp_path_factory.mktemp("data") / "kamiyo"))
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Hash test passwords with argon2id at its smallest cost (64 KiB, one pass) instead of the production 19 MiB
    and two passes: hundreds of sign-ups and logins otherwise spend about 50 CPU-seconds of the run in argon2.
    Tests of the production parameters ask for `real_password_hashing`."""
    patch = pytest.MonkeyPatch()
    patch.setattr(account_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    yield
    patch.undo()


@pytest.fixture
def real_password_hashing(monkeypatch: pytest.MonkeyPatch) -> PasswordHasher:
    """The production hasher, for this test only."""
    monkeypatch.setattr(account_service, "_hasher", PRODUCTION_HASHER)
    return PRODUCTION_HASHER


@pytest.fixture(autouse=True)
def _rate_windows_do_not_roll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the rate limiter's clock a second into the current minute for the whole test.

    Limits use fixed clock-aligned windows, so a test that makes N requests and expects the N+1th to be
    refused would otherwise pass a fresh window to it whenever it ran across a minute boundary.
    """
    pinned = time.time() // 60 * 60 + 1
    monkeypatch.setattr(Limiter, "clock", staticmethod(lambda: pinned))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "kamiyo.db"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    seed(url)
    return path


@pytest.fixture(scope="session")
def sqlite_empty_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("empty-template") / "kamiyo.db"
    migrations.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    reason = postgres_missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: str) -> str:
    name = f"kamiyo_template{WORKER}"
    psql(postgres_admin, f"CREATE DATABASE {name}")
    url = f"{postgres_admin}/{name}"
    migrations.upgrade(url)
    seed(url)
    return name


@pytest.fixture(scope="session")
def postgres_empty_template(postgres_admin: str) -> str:
    name = f"kamiyo_empty{WORKER}"
    psql(postgres_admin, f"CREATE DATABASE {name}")
    migrations.upgrade(f"{postgres_admin}/{name}")
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _dropped_after(request: pytest.FixtureRequest, admin: str, url: str) -> str:
    """Drop a test's PostgreSQL copy when it ends: hundreds of 13 MB copies otherwise fill the page cache
    and disk until the whole cluster is deleted at the end of the run."""
    name = url.rsplit("/", 1)[1]
    request.addfinalizer(lambda: psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    return url


@pytest.fixture(scope="session")
def read_only_sqlite(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_sqlite(sqlite_template, tmp_path_factory.mktemp("read-only"))


@pytest.fixture(scope="session")
def read_only_postgres(postgres_admin: str, postgres_template: str) -> str:
    return read_only_copy(postgres_admin, postgres_template)


def _unwritten(request: pytest.FixtureRequest, url: str) -> str:
    """SQLite cannot refuse this process's writes the way PostgreSQL does: check after the test that none came."""
    before = sqlite_footprint(url)

    def check() -> None:
        if sqlite_footprint(url) != before:
            pytest.fail(f"{request.node.nodeid} is marked reads_seed but wrote to the shared database")

    request.addfinalizer(check)
    return url


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database seeded with the bundled dataset, on each backend: the test's own copy, or with
    `@pytest.mark.reads_seed` one read-only copy shared by such tests (a copy costs up to 0.2 s on PostgreSQL)."""
    shared = request.node.get_closest_marker("reads_seed") is not None
    if backend == "sqlite":
        if shared:
            return _unwritten(request, request.getfixturevalue("read_only_sqlite"))
        return fresh_sqlite(request.getfixturevalue("sqlite_template"), tmp_path)
    if shared:
        return str(request.getfixturevalue("read_only_postgres"))
    admin = request.getfixturevalue("postgres_admin")
    return _dropped_after(request, admin, fresh_postgres(admin, request.getfixturevalue("postgres_template")))


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database on each backend."""
    if backend == "sqlite":
        return fresh_sqlite(request.getfixturevalue("sqlite_empty_template"), tmp_path, "empty.db")
    admin = request.getfixturevalue("postgres_admin")
    return _dropped_after(request, admin, fresh_postgres(admin, request.getfixturevalue("postgres_empty_template")))


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    yield db
    await db.dispose()


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(make_settings(db_url)) as (_, c):
        yield c


@pytest.fixture
async def app_client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An API client on the seeded database, with the fixed secret key (sessions, CSRF)."""
    async with running(settings_for(db_url)) as (_, c):
        yield c
