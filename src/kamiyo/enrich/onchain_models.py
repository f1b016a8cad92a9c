"""What the on-chain check of an exploit's transaction found (one row per checked exploit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kamiyo.db import Base, UTCDateTime

CHECK_STATUSES = ("verified", "not_found", "reverted", "pending", "failed")


class OnchainCheck(Base):
    """The last JSON-RPC look-up of an exploit's tx hash, and when to look again if it did not verify.

    `to_address` is the contract the transaction called (or created), kept here as on-chain evidence.
    """

    __tablename__ = "onchain_checks"

    exploit_id: Mapped[int] = mapped_column(ForeignKey("exploits.id", ondelete="CASCADE"), primary_key=True)
    tx_hash: Mapped[str] = mapped_column(String(128))
    chain: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    from_address: Mapped[str | None] = mapped_column(String(64))
    to_address: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))


class BlockTime(Base):
    """A block's timestamp as the chain's node gave it, asked once (`eth_getBlockByNumber`) and kept: blocks
    never change, and one block serves every exploit whose transaction (or PoC fork) falls in it."""

    __tablename__ = "block_times"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
