"""Which driver errors are a database outage (503) and which are bugs (500)."""

from __future__ import annotations

import socket
import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from kamiyo.ops.dberrors import database_failure


def _sqlite(message: str, name: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorname = name
    return error


def _wrapped_asyncpg(error: Exception, cls: type[sa_exc.DBAPIError] = sa_exc.DBAPIError) -> sa_exc.DBAPIError:
    """What SQLAlchemy raises for an asyncpg error: its adapter's DBAPI error, wrapped."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(error), error)
    return cls("SELECT 1", None, adapted)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "unreachable"),
        (socket.gaierror(-2, "Name or service not known"), "unreachable"),
        (TimeoutError(), "unreachable"),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), "unreachable"),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), "unreachable"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), "unreachable"),
        (asyncpg.exceptions.InterfaceError("connection is closed"), "unreachable"),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), "busy"),
        (_wrapped_asyncpg(asyncpg.exceptions.CannotConnectNowError("starting up")), "unreachable"),
        (_wrapped_asyncpg(asyncpg.exceptions.DiskFullError("no space left")), "disk_full"),
        (_wrapped_asyncpg(asyncpg.exceptions.ReadOnlySQLTransactionError("read-only")), "read_only"),
        (
            sa_exc.OperationalError("x", None, _sqlite("attempt to write a readonly database", "SQLITE_READONLY")),
            "read_only",
        ),
        (sa_exc.OperationalError("x", None, _sqlite("database or disk is full", "SQLITE_FULL")), "disk_full"),
        (sa_exc.OperationalError("x", None, _sqlite("database is locked", "SQLITE_BUSY")), "busy"),
        (sa_exc.OperationalError("x", None, _sqlite("unable to open database file", "SQLITE_CANTOPEN")), "unreachable"),
        (sa_exc.TimeoutError("QueuePool limit reached"), "busy"),
    ],
)
def test_outages_are_classified(error: Exception, reason: str) -> None:
    failure = database_failure(error)
    assert failure is not None and failure.reason == reason


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.OperationalError("x", None, _sqlite("no such table: exploits", "SQLITE_ERROR")),
        _wrapped_asyncpg(asyncpg.exceptions.UndefinedTableError("relation does not exist"), sa_exc.ProgrammingError),
        _wrapped_asyncpg(asyncpg.exceptions.UniqueViolationError("duplicate key"), sa_exc.IntegrityError),
        FileNotFoundError("template.html"),
        ValueError("a bug"),
    ],
)
def test_bugs_are_not_outages(error: Exception) -> None:
    assert database_failure(error) is None
