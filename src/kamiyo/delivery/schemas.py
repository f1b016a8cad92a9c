"""API shapes of the delivery log, shared by webhook endpoints and alert channels (CONTRACT §5, §6)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeliveryOut(BaseModel):
    id: int
    message_id: str = Field(description="The `webhook-id` header: the same on every attempt of this delivery.")
    event_type: str
    exploit_id: int | None
    status: str = Field(description="pending | succeeded | failed")
    attempts: int
    next_attempt_at: datetime | None
    response_status: int | None
    latency_ms: float | None
    error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    response_status: int | None
    latency_ms: float | None
    response_excerpt: str | None
    error: str | None


class DeliveryDetail(DeliveryOut):
    attempts_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for older deliveries.")


class TestOutcome(BaseModel):
    success: bool
    delivery: DeliveryOut
