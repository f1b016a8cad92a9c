"""Opaque keyset-paging cursors: base64url of the sort key and the last row's (value, id)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from kamiyo.errors import InvalidInput

MAX_ROW_ID = 2**63 - 1  # the largest row id either engine stores (a signed 64-bit integer)


def encode_cursor(sort: str, value: Any, row_id: int) -> str:
    raw = orjson.dumps([sort, value, row_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[str, Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort, value, row_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(sort, str) or not isinstance(row_id, int) or not 0 <= row_id <= MAX_ROW_ID:
            raise ValueError("bad cursor shape")
        return sort, value, row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor: not a cursor issued by this API", details=[{"field": "cursor"}]) from exc
