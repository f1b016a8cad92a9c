"""Robustness against bad input: schemathesis drives every documented operation of a live server.

A bounded, derandomised run (25 examples per operation, valid and invalid inputs) against a real
uvicorn on loopback over SQLite, once anonymously and once with an API key. Every answer must be
documented by `/openapi.json` and match its schema, and none may be a server error — except a
documented `503 *_not_configured` (e.g. billing without Stripe settings), which is the contract.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from kamiyo.db import Database
from tests.support.app import make_settings
from tests.support.live import LiveServer

EXAMPLES = 25
KEY_DESTROYING = frozenset({("DELETE", "/api/v1/keys/{key_id}"), ("POST", "/api/v1/auth/logout")})


@pytest.fixture(scope="module")
def live_db(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("schemathesis") / "kamiyo.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def live(live_db: str) -> Iterator[LiveServer]:
    with LiveServer(live_db, access_log=False, KAMIYO_RATE_LIMITS="off") as server:
        yield server


@pytest.fixture(scope="module")
def api_key(live_db: str) -> str:
    """A key of an enterprise user, made through the accounts service (skipped until accounts exist)."""
    service = pytest.importorskip("kamiyo.accounts.service")

    async def make() -> str:
        db = Database(live_db)
        try:
            async with db.session() as session:
                user = await service.create_user(session, "fuzz@example.com", "fuzz-password-123", tier="enterprise")
                _, raw = await service.create_key(session, user.id, "schemathesis")
                return str(raw)
        finally:
            await db.dispose()

    return asyncio.run(make())


def _openapi() -> dict[str, Any]:
    """The app's OpenAPI document, built at collection (no server or database needed for it)."""
    from kamiyo.app import create_app

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        return create_app(make_settings("sqlite:///unused.db")).openapi()
    finally:
        root.handlers[:], root.level = saved


SCHEMA = schemathesis.openapi.from_dict(_openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Bounded and reproducible: EXAMPLES per operation, valid and invalid inputs, a fixed seed, no example
# database. (schemathesis' own pytest plugin is not used: with pytest 9 it reruns every operation per item.)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def _check(case: Any, live: LiveServer, headers: dict[str, str] | None) -> None:
    response = case.call(base_url=live.base_url, headers=headers, timeout=30)
    if response.status_code == 503:
        code = response.json().get("error", {}).get("code", "")
        assert code.endswith("_not_configured"), f"{case.operation.label}: 503 {response.text[:300]}"
        checks = [response_schema_conformance]
    else:
        checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks, headers=headers)


def _is_event_stream(operation: Any) -> bool:
    """Server-sent event streams never end: they are tested by their own suite, not request by request."""
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


def _fuzz_all(live: LiveServer, headers: dict[str, str] | None, skip: frozenset[tuple[str, str]] = frozenset()) -> None:
    failures: list[str] = []
    for operation in OPERATIONS:
        if (operation.method.upper(), operation.path) in skip or _is_event_stream(operation):
            continue
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @FUZZ
        @given(case=cases)
        def run(case: Any) -> None:
            _check(case, live, headers)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_anonymous_requests_never_fail_and_match_the_schema(live: LiveServer) -> None:
    _fuzz_all(live, None)


def test_keyed_requests_never_fail_and_match_the_schema(live: LiveServer, api_key: str) -> None:
    _fuzz_all(live, {"Authorization": f"Bearer {api_key}"}, skip=KEY_DESTROYING)
