"""A community submission: one user's report of an incident (new) or of a fix to a stored one (correction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kamiyo.db import Base, UTCDateTime
from kamiyo.exploits.models import BigId

STATUSES = ("pending", "approved", "rejected")
KINDS = ("new", "correction")


class Submission(Base):
    """Held for review; approval stores it as a report from source `community` (see `service.decide`).

    `exploit_id` is the incident a correction proposes to change, and, once approved, the incident the
    report was stored on. Text is kept exactly as sent (plain text; pages escape it when they render it).
    """

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    kind: Mapped[str] = mapped_column(String(16), default="new")
    exploit_id: Mapped[int | None] = mapped_column(ForeignKey("exploits.id", ondelete="SET NULL"))
    tx_hash: Mapped[str | None] = mapped_column(String(128))
    chain: Mapped[str] = mapped_column(String(32))
    protocol: Mapped[str] = mapped_column(String(200))
    amount_usd: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    category: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    attacker_address: Mapped[str | None] = mapped_column(String(128))
    evidence_urls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    review_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_submissions_status_id", "status", "id"),
        Index("ix_submissions_user_id_created_at", "user_id", "created_at"),
        Index("ix_submissions_exploit_id", "exploit_id"),
        Index("ix_submissions_tx_hash", "tx_hash"),
    )
