from types import SimpleNamespace

import pytest

from kamiyo.kit.attrs import pick


def test_pick_copies_the_named_attributes_in_the_order_given() -> None:
    row = SimpleNamespace(id=7, name="key", prefix="kmy_ab", secret="never shown")
    picked = pick(row, "prefix", "id", "name")
    assert picked == {"prefix": "kmy_ab", "id": 7, "name": "key"}
    assert list(picked) == ["prefix", "id", "name"]


def test_pick_refuses_a_missing_attribute() -> None:
    with pytest.raises(AttributeError):
        pick(SimpleNamespace(id=1), "id", "nme")
