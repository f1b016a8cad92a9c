"""Address labels from enrichment feeds (sanctions lists, scam databases)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kamiyo.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AddressLabel(Base):
    """One list's label for one address. EVM addresses are stored lower-cased; others as written.

    The unique (address, source) index also serves lookups by address (its leading column).
    """

    __tablename__ = "address_labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("address", "source", name="uq_address_labels_address_source"),)
