"""Enrichment data: address labels from feeds (sanctions lists, scam databases) and the price cache."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Float, Integer, String, UniqueConstraint
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


class PriceQuote(Base):
    """One coin's USD price on one day as the price API answered it, asked once and kept.

    `coin` is the price API's id (`coingecko:ethereum`, `bsc:0x...`); `price_usd` is null when the API had no
    price for that day (asked, so not asked again until the entry is cleared). `quoted_at` is the time of the
    price point the API returned, which may differ from the asked time by its search width.
    """

    __tablename__ = "price_quotes"

    coin: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    price_usd: Mapped[float | None] = mapped_column(Float)
    symbol: Mapped[str | None] = mapped_column(String(32))
    quoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confidence: Mapped[float | None] = mapped_column(Float)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
