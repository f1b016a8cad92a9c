"""Webhook and channel forms: submitted fields → the API's own request models, with errors kept per field.

The pages validate with exactly the pydantic bodies of the JSON API (`WebhookCreate`, `ChannelUpdate`, …)
and then call the same services, so what the API refuses with 422 is refused here too, shown next to
its field instead of as an error body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from kamiyo.errors import KamiyoError
from kamiyo.web.form_messages import field_message, sentence

M = TypeVar("M", bound=BaseModel)
FILTER_LISTS = ("chains", "categories")
FILTER_FIELDS = ("min_amount_usd", "chains", "protocols", "categories")
_AMOUNT_NOISE = re.compile(r"[\s$,_]")


@dataclass(slots=True)
class SubscriptionForm:
    """What a webhook or channel form shows back: the submitted text, and an error per field (or "form")."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value)

    def chosen(self, name: str) -> list[str]:
        return list(self.values.get(name) or [])

    @property
    def enabled(self) -> bool:
        return bool(self.values.get("enabled", True))


def read_form(form: FormData, text_fields: Iterable[str]) -> SubscriptionForm:
    """The fields of a submitted webhook or channel form, as typed (trimmed)."""
    values: dict[str, Any] = {}
    for name in (*text_fields, "min_amount_usd", "protocols"):
        raw = form.get(name)
        values[name] = raw.strip() if isinstance(raw, str) else ""
    for name in FILTER_LISTS:
        values[name] = [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]
    values["enabled"] = form.get("enabled") is not None
    return SubscriptionForm(values)


def stored_form(filters: Mapping[str, Any], **texts: Any) -> SubscriptionForm:
    """A form pre-filled from a stored subscription (its normalised filters and text fields)."""
    amount = filters.get("min_amount_usd")
    values: dict[str, Any] = {
        **texts,
        "min_amount_usd": "" if amount is None else (f"{amount:.0f}" if float(amount).is_integer() else str(amount)),
        "chains": list(filters.get("chains") or []),
        "categories": list(filters.get("categories") or []),
        "protocols": ", ".join(filters.get("protocols") or []),
    }
    return SubscriptionForm(values)


def filters_payload(form: SubscriptionForm) -> dict[str, Any]:
    """The `filters` object of the API body; the amount may be typed as "$1,000,000"."""
    amount = _AMOUNT_NOISE.sub("", form.text("min_amount_usd"))
    protocols = [p.strip() for p in re.split(r"[,\n]", form.text("protocols")) if p.strip()]
    return {
        "min_amount_usd": amount or None,
        "chains": form.chosen("chains"),
        "protocols": protocols,
        "categories": form.chosen("categories"),
    }


def validate(model: type[M], payload: dict[str, Any], form: SubscriptionForm) -> M | None:
    """The request model, or None with the form's errors filled in from pydantic's."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        for error in exc.errors():
            form.errors.setdefault(_field(error.get("loc", ()), form), field_message(error))
        return None


def service_error(exc: KamiyoError, form: SubscriptionForm) -> None:
    """`"url: only https:// URLs are allowed"` → next to the url field; anything else above the form."""
    name, _, rest = exc.message.partition(": ")
    if rest and name in form.values:
        form.errors[name] = sentence(rest)
    else:
        form.errors["form"] = sentence(exc.message)


def _field(loc: Iterable[Any], form: SubscriptionForm) -> str:
    named = [part for part in loc if isinstance(part, str) and part in form.values]
    return named[-1] if named else "form"
