"""The `/exploits` filters applied in memory to one exploit (the stream filters events as they come)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from kamiyo.exploits.filters import ExploitFilters, search_words
from kamiyo.kit.timeutil import parse_when
from kamiyo.vocabulary.normalise import protocol_key

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def matches(filters: ExploitFilters, exploit: dict[str, Any]) -> bool:
    """Same meaning as the SQL conditions of `GET /exploits` (see ExploitFilters.conditions)."""
    if filters.chains and not {exploit.get("chain"), *(exploit.get("chains") or ())} & set(filters.chains):
        return False
    if filters.target_types and exploit.get("target_type") not in filters.target_types:
        return False
    if filters.categories and exploit.get("category") not in filters.categories:
        return False
    if filters.protocol and protocol_key(str(exploit.get("protocol") or "")) != protocol_key(filters.protocol):
        return False
    amount = exploit.get("amount_usd")
    if filters.min_amount is not None and (amount is None or amount < filters.min_amount):
        return False
    if filters.max_amount is not None and (amount is None or amount > filters.max_amount):
        return False
    if filters.since is not None or filters.until is not None:
        when: datetime = parse_when(str(exploit["timestamp"]))
        if (filters.since and when < filters.since) or (filters.until and when > filters.until):
            return False
    if filters.source and filters.source not in {s.get("source") for s in exploit.get("sources") or ()}:
        return False
    if filters.q:
        wanted = search_words(filters.q)
        names = [exploit.get("protocol"), exploit.get("name"), *(exploit.get("aliases") or ())]
        have = _words(" ".join(str(v) for v in [*names, exploit.get("description")] if v))
        if not wanted or not all(any(h.startswith(w) for h in have) for w in wanted):
            return False
    return True
