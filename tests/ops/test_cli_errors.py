"""A database the CLI cannot use is one line on standard error and a non-zero exit, for every command that
needs it: an unreachable PostgreSQL (a loopback port nobody listens on), a `mysql://` URL, a URL that is not
one, a missing PostgreSQL database. Passwords in the URL are never shown."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kamiyo.cli import app
from kamiyo.config import get_settings
from tests.support.services import free_port

KAMIYO = Path(sys.executable).parent / "kamiyo"
PASSWORD = "s3cret-pw"


def _unreachable() -> str:
    return f"postgresql://kamiyo:{PASSWORD}@127.0.0.1:{free_port()}/kamiyo"


URLS = {
    "unreachable": (_unreachable, "connection refused"),
    "mysql": (lambda: f"mysql://kamiyo:{PASSWORD}@127.0.0.1/kamiyo", "unsupported database URL scheme: mysql"),
    "not-a-url": (lambda: "not a url at all", "not a database URL"),
}


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    rows = tmp_path / "rows.jsonl"
    return {
        "serve": ["serve", "--host", "127.0.0.1", "--port", str(free_port())],
        "worker": ["worker"],
        "db upgrade": ["db", "upgrade"],
        "import": ["import", str(rows)],
        "export": ["export", "--out", str(tmp_path / "out.jsonl")],
        "ingest": ["ingest"],
        "sources": ["sources"],
        "users create": ["users", "create", "op@example.com"],
        "keys create": ["keys", "create", "op@example.com"],
        "submissions review": ["submissions", "review"],
        "backup": ["backup", "--out", str(tmp_path / "backups")],
        "verify": ["verify"],
        "prices": ["prices"],
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KAMIYO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAMIYO_SEED", "0")
    monkeypatch.delenv("KAMIYO_OFFLINE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert PASSWORD not in lines[0] and "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("kind", sorted(URLS))
@pytest.mark.parametrize("command", sorted(_commands(Path("/unused"))))
def test_every_command_says_in_one_line_that_the_database_cannot_be_used(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, command: str
) -> None:
    make_url, expected = URLS[kind]
    monkeypatch.setenv("KAMIYO_DATABASE_URL", make_url())
    get_settings.cache_clear()
    (tmp_path / "rows.jsonl").write_text('{"protocol": "P", "chain": "ethereum", "timestamp": "2024-01-01"}\n')
    result = CliRunner().invoke(app, _commands(tmp_path)[command])
    assert result.exit_code != 0
    line = _one_line(result.output)
    assert line.startswith("kamiyo: ") and expected.lower() in line.lower(), line


@pytest.mark.parametrize("kind", ["unreachable", "mysql"])
def test_the_console_script_exits_non_zero_with_one_line(tmp_path: Path, kind: str) -> None:
    """The installed `kamiyo` itself, as an operator runs it (the issue's 550- and 144-line tracebacks)."""
    environ = dict(os.environ, KAMIYO_DATABASE_URL=URLS[kind][0](), KAMIYO_DATA_DIR=str(tmp_path), KAMIYO_SEED="0")
    for args in (["serve", "--port", str(free_port())], ["db", "upgrade"]):
        done = subprocess.run(
            [str(KAMIYO), *args], env=environ, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert URLS[kind][1] in _one_line(done.stderr)


def test_a_missing_postgresql_database_is_one_line(
    env: None, postgres_admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAMIYO_DATABASE_URL", f"{postgres_admin}/kamiyo_no_such_database")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert "kamiyo_no_such_database" in line and "does not exist" in line


def test_a_sqlite_file_that_cannot_be_created_is_one_line(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAMIYO_DATABASE_URL", "sqlite:////proc/kamiyo/kamiyo.db")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "cannot create the SQLite database /proc/kamiyo/kamiyo.db" in _one_line(result.output)


def test_an_invalid_setting_is_one_line(env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAMIYO_DATABASE_URL", f"sqlite:///{tmp_path / 'k.db'}")
    monkeypatch.setenv("KAMIYO_PUBLIC_URL", "javascript:alert(1)")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "KAMIYO_PUBLIC_URL" in _one_line(result.output)


def test_a_working_database_is_unaffected(env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAMIYO_DATABASE_URL", f"sqlite:///{tmp_path / 'k.db'}")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and "database at" in result.output
