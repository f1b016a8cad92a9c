"""Token amounts in loss texts, and how `derive` prices them from the evidence (pure: no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from kamiyo.ingest.evidence import Evidence
from kamiyo.ingest.merge import derive
from kamiyo.ingest.token_amounts import PAR, TokenAmount, coins_to_ask, priceable, token_amounts
from kamiyo.sources.base import Report
from kamiyo.vocabulary.curation import Correction

ETH, BNB = "coingecko:ethereum", "coingecko:binancecoin"
DAY = date(2026, 3, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("~70.83 ETH", [(70.83, "ETH")]),
        ("1,603.99 WBNB", [(1603.99, "WBNB")]),
        ("2.60 ETH, 4,477.72 USDC", [(2.6, "ETH"), (4477.72, "USDC")]),
        ("~0.5453 WETH drained (28.25% of reward pool reserve); attacker net profit ~0.4285 ETH", [(0.5453, "WETH")]),
        ("158.28 WETH and 535,706 USDT", [(158.28, "WETH"), (535706.0, "USDT")]),
        ("0.25 WBTC + 0.29 wTAO + 0.02 WETH", [(0.25, "WBTC"), (0.29, "WTAO"), (0.02, "WETH")]),
        ("3.25 cbETH and 0.22 WETH", [(3.25, "CBETH"), (0.22, "WETH")]),
        ("27.6 ETH & 3450 USDC", [(27.6, "ETH"), (3450.0, "USDC")]),
        ("12BNB", [(12.0, "BNB")]),
        ("8540ETH", [(8540.0, "ETH")]),
        ("155 $ETH", [(155.0, "ETH")]),
        ("~$56.9BNB", [(56.9, "BNB")]),
        ("$~150 BNB", [(150.0, "BNB")]),
        ("~ 441 BNB", [(441.0, "BNB")]),
        ("～8 ETH", [(8.0, "ETH")]),
        ("1.7 eth", [(1.7, "ETH")]),
        ("~$3.2K MATIC", [(3200.0, "MATIC")]),
        ("~3.4 ETH (WIF token)", [(3.4, "ETH")]),
        ("127.86K mOCEAN", [(127860.0, "MOCEAN")]),
    ],
)
def test_token_amount_forms_of_the_bundled_data(text: str, expected: list[tuple[float, str]]) -> None:
    assert token_amounts(text) == [TokenAmount(amount, symbol) for amount, symbol in expected]


@pytest.mark.parametrize(
    "text",
    [
        None, "", "Unclear", "unknown", "None", "All funds returned", "9M USD", "$1.5M", "996B (CGT token)",
        "Bad Guys by RPF(400 NFTs)", "N/A (purely educational; worst-case impact would have been ~$2M)",
        "the attacker took 5 ETH from the pool and 3 BNB later", "ETH",
    ],
)  # fmt: skip
def test_texts_that_are_not_a_list_of_token_amounts(text: str | None) -> None:
    assert token_amounts(text) is None


def test_coins_natives_and_wrapped_share_a_coin_stablecoins_are_at_par_unknown_symbols_block() -> None:
    assert TokenAmount(1, "WETH").coin == TokenAmount(1, "ETH").coin == ETH
    assert TokenAmount(1, "WBNB").coin == BNB and TokenAmount(1, "WAVAX").coin == "coingecko:avalanche-2"
    assert TokenAmount(1, "USDC").coin == PAR and TokenAmount(1, "LIX").coin is None
    assert coins_to_ask(token_amounts("2.60 ETH, 4,477.72 USDC")) == {ETH}
    mixed = token_amounts("2.60 ETH, 4,477.72 USDC, 3,609.95 USDT, 24,182.56 LIX")
    assert not priceable(mixed) and coins_to_ask(mixed) == set()


def _report(text: str | None, amount_usd: float | None = None, source: str = "defihacklabs") -> Report:
    return Report(
        source=source, source_ref=f"{source}:{text}", protocol="Victim", timestamp=datetime(2026, 3, 1, tzinfo=UTC),
        chain="ethereum", amount_usd=amount_usd, amount_text=text,
    )  # fmt: skip


PRICES = Evidence(prices={(ETH, DAY): (2000.0, "2026-03-01T23:59:59Z"), (BNB, DAY): (600.0, None)})


def test_a_token_loss_is_priced_at_the_incident_day_with_its_provenance() -> None:
    facts = derive([_report("2.60 ETH, 4,477.72 USDC")], evidence=PRICES)
    assert facts["amount_usd"] == pytest.approx(2.6 * 2000 + 4477.72) and facts["amount_sort"] == facts["amount_usd"]
    assert facts["amount_status"] == "priced"
    assert facts["pricing"] == {
        "source": "defillama-coins",
        "day": "2026-03-01",
        "amounts": [
            {"symbol": "ETH", "amount": 2.6, "coin": ETH, "price_usd": 2000.0, "price_at": "2026-03-01T23:59:59Z"},
            {"symbol": "USDC", "amount": 4477.72, "coin": PAR, "price_usd": 1.0, "price_at": None},
        ],
    }


def test_no_price_that_day_or_an_unknown_token_leaves_it_unpriced_never_a_partial_sum() -> None:
    other_day = Evidence(prices={(ETH, date(2026, 3, 2)): (2000.0, None)})
    for facts in (
        derive([_report("~70.83 ETH")]),
        derive([_report("~70.83 ETH")], evidence=other_day),
        derive([_report("2.60 ETH, 4,477.72 USDC, 24,182.56 LIX")], evidence=PRICES),
        derive([_report("1.9 WBNB and 0.5 WETH")], evidence=Evidence(prices={(ETH, DAY): (2000.0, None)})),
    ):
        assert facts["amount_usd"] is None and facts["amount_status"] == "unpriced" and facts["pricing"] is None


def test_a_stated_usd_always_wins_over_a_price() -> None:
    facts = derive([_report("~70.83 ETH"), _report("$150K", 150_000.0, source="defillama")], evidence=PRICES)
    assert facts["amount_usd"] == 150_000.0 and facts["amount_status"] == "stated" and facts["pricing"] is None
    alone = derive([_report("~70.83 ETH", 140_000.0)], evidence=PRICES)
    assert alone["amount_usd"] == 140_000.0 and alone["amount_status"] == "stated"


def test_a_corrected_day_is_the_day_priced_and_a_corrected_amount_replaces_the_price() -> None:
    early = replace(_report("~70.83 ETH"), timestamp=datetime(2026, 2, 27, tzinfo=UTC))
    moved = Correction(f"defihacklabs:{early.source_ref}", "timestamp", datetime(2026, 3, 1, tzinfo=UTC), "day", None)
    assert derive([early], evidence=PRICES)["amount_status"] == "unpriced"  # no price on the stated day
    facts = derive([early], [moved], evidence=PRICES)
    assert facts["amount_usd"] == pytest.approx(70.83 * 2000) and facts["pricing"]["day"] == "2026-03-01"
    fixed = Correction(f"defihacklabs:{early.source_ref}", "amount_usd", 99_000.0, "audited", None)
    corrected = derive([_report("~70.83 ETH")], [fixed], evidence=PRICES)
    assert corrected["amount_usd"] == 99_000.0 and corrected["amount_status"] == "stated"
    assert corrected["pricing"] is None
