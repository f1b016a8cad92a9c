"""Plain dicts of an object's attributes, for answers that pass stored values through unchanged."""

from __future__ import annotations

from typing import Any


def pick(obj: Any, *names: str) -> dict[str, Any]:
    """`{name: obj.name}` for each name, in the order given (the order of the answer's keys)."""
    return {name: getattr(obj, name) for name in names}
