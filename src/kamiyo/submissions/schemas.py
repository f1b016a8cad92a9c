"""API shapes of community submissions (CONTRACT §8): the exploit's own field names, plus `evidence_urls`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from kamiyo.exploits.schemas import CATEGORY_DOC, CHAIN_DOC
from kamiyo.submissions import rules

EXAMPLE: dict[str, Any] = {
    "tx_hash": "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d",
    "chain": "ethereum",
    "protocol": "Euler Finance",
    "amount_usd": 197000000,
    "timestamp": "2023-03-13T08:50:35Z",
    "category": "flash_loan",
    "description": "Donation to the reserve let the attacker liquidate its own under-collateralised position.",
    "attacker_address": "0xb66cd966670d962c227b3eaba30a872dbfb995db",
    "evidence_urls": ["https://example.org/euler-post-mortem"],
}


class SubmissionIn(BaseModel):
    """A report of an incident. If it matches a stored exploit (same tx hash, or same protocol within
    ±3 days and a compatible loss, or the `exploit_id` you name) it becomes a correction of that exploit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    chain: str = Field(max_length=64, description=CHAIN_DOC + ". Aliases and chain ids are accepted.")
    tx_hash: str | None = Field(
        None,
        max_length=300,
        description="Main attack transaction, in the chain's format (EVM: 0x + 64 hex); an explorer link works.",
    )
    protocol: str = Field(min_length=1, max_length=200, description="Name of the attacked protocol.")
    amount_usd: float | None = Field(
        None, ge=0, le=rules.MAX_AMOUNT_USD, allow_inf_nan=False, description="Loss in US dollars, if known."
    )
    timestamp: datetime = Field(description="Incident time: ISO-8601 date or datetime (UTC if no offset).")
    category: str | None = Field(None, max_length=32, description=CATEGORY_DOC)
    description: str = Field("", max_length=5000, description="What happened, as plain text (no HTML rendering).")
    attacker_address: str | None = Field(None, max_length=128, description="Attacker's address, if known.")
    evidence_urls: list[str] = Field(
        min_length=1,
        max_length=rules.MAX_URLS,
        description="1-10 http(s) links that show the incident: post-mortem, explorer, analysis.",
    )
    exploit_id: int | None = Field(
        None, ge=1, le=2**53, description="The stored exploit this corrects, when you know it (else it is matched)."
    )

    @field_validator("chain")
    @classmethod
    def _chain(cls, value: str) -> str:
        return rules.chain_slug(value)

    @field_validator("tx_hash")
    @classmethod
    def _tx_hash(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        return rules.tx_hash_for(value, info.data.get("chain"))

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        return rules.plain_line(value, "protocol")

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: object) -> datetime:
        return rules.incident_time(value)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        return rules.category_slug(value) if value and value.strip() else None

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return rules.plain_text(value)

    @field_validator("attacker_address")
    @classmethod
    def _attacker(cls, value: str | None) -> str | None:
        return rules.address(value) if value and value.strip() else None

    @field_validator("evidence_urls")
    @classmethod
    def _evidence(cls, value: list[str]) -> list[str]:
        return rules.evidence_urls(value)


class SubmissionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: Literal["pending", "approved", "rejected"] = Field(description="Review state.")
    kind: Literal["new", "correction"] = Field(
        description="`correction` when it matched a stored exploit (`exploit_id`), else `new`."
    )
    exploit_id: int | None = Field(
        description="The exploit a correction applies to; once approved, the exploit the report was stored on."
    )
    tx_hash: str | None
    chain: str
    protocol: str
    amount_usd: float | None
    timestamp: datetime
    category: str | None
    description: str
    attacker_address: str | None
    evidence_urls: list[str]
    review_note: str | None = Field(description="The reviewer's note, once reviewed.")
    created_at: datetime
    reviewed_at: datetime | None


class SubmissionList(BaseModel):
    data: list[SubmissionOut] = Field(description="Your submissions, newest first (up to 100).")
    daily_limit: int = Field(description="Submissions your tier may make per UTC day.")
    used_today: int = Field(description="Submissions you made today (UTC).")
