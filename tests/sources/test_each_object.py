"""`each_object`: the JSON list of a source's answer, one report per object, the rest passed over."""

from datetime import UTC, datetime
from typing import Any

import pytest

from kamiyo.sources.base import ParseError, Report, each_object

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def _build(item: dict[str, Any]) -> Report | None:
    if item.get("skip"):
        return None
    return Report(source="test", source_ref=str(item["id"]), protocol=str(item["name"]), timestamp=WHEN)


def test_builds_each_object_and_passes_over_the_rest() -> None:
    items = [
        {"id": 1, "name": "A"},
        "noise",
        7,
        None,
        {"id": 2, "skip": True},
        {"name": "no id"},
        {"id": 3, "name": "C"},
    ]
    reports = each_object(items, _build, "test", error="unused")
    assert [(r.source_ref, r.protocol) for r in reports] == [("1", "A"), ("3", "C")]


@pytest.mark.parametrize("answer", [None, {"id": 1, "name": "A"}, "[]", 3])
def test_an_answer_without_a_list_is_a_parse_error(answer: Any) -> None:
    with pytest.raises(ParseError, match="expected a list of hacks"):
        each_object(answer, _build, "test", error="expected a list of hacks")
