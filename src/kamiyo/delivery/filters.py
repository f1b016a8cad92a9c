"""Subscription filters: what a webhook endpoint or channel wants to hear about.

Validated strictly (unknown keys, unknown chain/category slugs, oversized lists or values are 422)
and normalised (lower-case, deduplicated, sorted) so the matcher compares plain strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kamiyo.vocabulary.normalise import protocol_key
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

MAX_LIST = 50
MAX_PROTOCOL = 200


def _slugs(values: list[str], allowed: dict[str, Any], what: str) -> list[str]:
    out = sorted({v.strip().lower() for v in values if v.strip()})
    unknown = [v for v in out if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}")
    return out


class SubscriptionFilters(BaseModel):
    """`min_amount_usd`: only incidents with a known USD loss at least this; empty lists mean any."""

    model_config = ConfigDict(extra="forbid")

    min_amount_usd: float | None = Field(default=None, ge=0, le=1e13, allow_inf_nan=False)
    chains: list[str] = Field(default_factory=list, max_length=MAX_LIST, description="Canonical chain slugs.")
    protocols: list[str] = Field(default_factory=list, max_length=MAX_LIST, description="Protocol names, any case.")
    categories: list[str] = Field(default_factory=list, max_length=MAX_LIST, description="Canonical category slugs.")

    @field_validator("chains")
    @classmethod
    def _chains(cls, value: list[str]) -> list[str]:
        return _slugs(value, CHAINS, "chain")

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        return _slugs(value, CATEGORIES, "category")

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, value: list[str]) -> list[str]:
        if any(len(v) > MAX_PROTOCOL for v in value):
            raise ValueError(f"protocol names are at most {MAX_PROTOCOL} characters")
        return sorted({protocol_key(v) for v in value if v.strip()})

    def stored(self) -> dict[str, Any]:
        return self.model_dump()


def load_filters(stored: dict[str, Any] | None) -> SubscriptionFilters:
    """Filters as stored (already normalised); tolerant of older rows missing keys."""
    return SubscriptionFilters.model_validate(stored or {})
