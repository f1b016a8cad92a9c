"""Which exceptions mean "the database cannot serve this now" (answered 503), and why.

Covers SQLAlchemy-wrapped driver errors (SQLite result codes, PostgreSQL SQLSTATEs), the raw errors
asyncpg raises while connecting (refused, DNS, timeouts, "the database system is starting up"), and
an exhausted connection pool. Anything else is a bug and stays a 500.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import asyncpg
from sqlalchemy import exc as sa_exc

UNREACHABLE = "unreachable"
READ_ONLY = "read_only"
DISK_FULL = "disk_full"
BUSY = "busy"

MESSAGES = {
    UNREACHABLE: "the database is unavailable; try again shortly",
    READ_ONLY: "the database is read-only: this change cannot be stored now",
    DISK_FULL: "the database's storage is full: this change cannot be stored now",
    BUSY: "the database is overloaded; try again shortly",
}
# Exception classes worth a handler of their own (a subset of these is a database failure).
CANDIDATES: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


@dataclass(frozen=True)
class DatabaseFailure:
    reason: str

    @property
    def message(self) -> str:
        return MESSAGES[self.reason]

    @property
    def retryable(self) -> bool:
        return self.reason in (UNREACHABLE, BUSY)


def _from_sqlstate(sqlstate: str) -> str | None:
    if sqlstate.startswith(("08", "57P")):  # connection exception; admin shutdown, starting up
        return UNREACHABLE
    if sqlstate == "53100":
        return DISK_FULL
    if sqlstate.startswith("53"):  # too many connections, out of memory
        return BUSY
    if sqlstate == "25006":  # read-only transaction (e.g. a standby)
        return READ_ONLY
    return None


def _from_sqlite(name: str, message: str) -> str | None:
    if name.startswith("SQLITE_READONLY") or "readonly database" in message:
        return READ_ONLY
    if name == "SQLITE_FULL" or "database or disk is full" in message:
        return DISK_FULL
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in message:
        return BUSY
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_PERM")):
        return UNREACHABLE
    return None


_UNKNOWN = "unknown"


def _from_driver(orig: BaseException | None) -> str | None:
    """The reason the driver's own error code gives; None for a code that is no outage; _UNKNOWN without a code."""
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate:
        return _from_sqlstate(sqlstate)
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str) and name:
        return _from_sqlite(name, str(orig).lower())
    return _UNKNOWN


def database_failure(exc: BaseException) -> DatabaseFailure | None:
    """The failure `exc` stands for, or None when it is not the database being unavailable."""
    reason: str | None = None
    if isinstance(exc, sa_exc.TimeoutError):  # pool exhausted: every connection is busy
        reason = BUSY
    elif isinstance(exc, sa_exc.DBAPIError):
        reason = _from_driver(exc.orig)
        if reason == _UNKNOWN:
            generic = isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            reason = UNREACHABLE if generic or exc.connection_invalidated else None
        elif reason is None and exc.connection_invalidated:
            reason = UNREACHABLE
    elif isinstance(exc, asyncpg.PostgresError):
        reason = _from_sqlstate(str(getattr(exc, "sqlstate", "") or ""))
    elif isinstance(exc, asyncpg.InterfaceError | ConnectionError | TimeoutError | socket.gaierror):
        reason = UNREACHABLE
    return DatabaseFailure(reason) if reason else None


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


_CONNECT_SQLSTATES = ("08", "28", "3D", "57P", "53300")  # connection, login, no such database, shutdown, too many


def unusable_database(exc: BaseException) -> str | None:
    """One line on why the database cannot be used at all (a URL Kamiyo cannot use, a server that cannot be
    reached, a refused login, a missing database), or None when `exc` is anything else (a bug keeps its
    traceback)."""
    from kamiyo.db import DatabaseConfigError

    for cause in _chain(exc):
        if isinstance(cause, DatabaseConfigError):
            return str(cause)
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the database host ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused: is the database server running, on that host and port?"
        if isinstance(cause, ConnectionError | TimeoutError):
            return f"cannot connect ({type(cause).__name__}: {_first_line(cause) or 'no answer'})"
        if isinstance(cause, asyncpg.PostgresError) and str(cause.sqlstate or "").startswith(_CONNECT_SQLSTATES):
            return f"the server refused: {_first_line(cause)}"
        if isinstance(cause, OSError) and "Connect call failed" in str(cause):
            return f"cannot connect ({_first_line(cause)})"
    failure = database_failure(exc)
    if failure is not None and failure.reason == UNREACHABLE:
        return failure.message
    return None
