"""Per-source run state and run log, HTTP validators, and the merge-key index of exploits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kamiyo.db import Base, UTCDateTime
from kamiyo.exploits.models import BigId


class SourceState(Base):
    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))


class SourceRun(Base):
    """One fetch round of one source: the log behind uptime in the rankings and the CLI summary."""

    __tablename__ = "source_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    items: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_source_runs_source_started_at", "source", "started_at"),)


class SourceHttpCache(Base):
    """Validators (ETag / Last-Modified) of each URL a source fetched, for conditional requests."""

    __tablename__ = "source_http_cache"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(1000), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))


class MergeKey(Base):
    """Loose protocol keys of each exploit (`protocol_match_key` of its reports' names), with its
    incident time (unix seconds, so both engines can do arithmetic on it) and derived USD loss.

    Lets the fuzzy merge find candidate incidents with one indexed range query per batch.
    """

    __tablename__ = "exploit_merge_keys"

    exploit_id: Mapped[int] = mapped_column(ForeignKey("exploits.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    ts: Mapped[float] = mapped_column(Float)
    amount: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_exploit_merge_keys_key_ts", "key", "ts"),)
