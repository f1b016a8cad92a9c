"""DeFiHackLabs parser: real facts of the bundled snapshot (commit b3719ce7) and the edge cases.

Expected values below were read off the README files and poc_keyinfo.json by hand.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from kamiyo.sources import defihacklabs
from kamiyo.sources._defihacklabs_text import BLOB_URL, KeyInfo, normalise_poc_path, parse_keyinfo, parse_readme
from kamiyo.sources.base import Report
from kamiyo.sources.defihacklabs import build_reports, load_bundled
from kamiyo.vocabulary.normalise import normalise_tx_hash
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

SHARED = Path("/work/shared/data/defihacklabs")
BUNDLED = resources.files("kamiyo").joinpath("data", "defihacklabs")


@pytest.fixture(scope="module")
def reports() -> list[Report]:
    return load_bundled()


@pytest.fixture(scope="module")
def by_ref(reports: list[Report]) -> dict[str, Report]:
    return {r.source_ref: r for r in reports}


def _bundled_text(name: str) -> str:
    return BUNDLED.joinpath(name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# The bundled snapshot as a whole
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "entries", "readme", "years"),
    [
        ("README.md", 113, "README.md", {2026}),
        ("past_2025_README.md", 161, "past/2025/README.md", {2025}),
        ("past_2024_README.md", 189, "past/2024/README.md", {2024}),
        ("past_2023_README.md", 214, "past/2023/README.md", {2023}),
        ("past_2022_README.md", 129, "past/2022/README.md", {2022}),
        ("past_2021_README.md", 51, "past/2021/README.md", {2017, 2018, 2020, 2021}),
    ],
)
def test_entries_per_readme(name: str, entries: int, readme: str, years: set[int]) -> None:
    parsed = parse_readme(_bundled_text(name))
    assert len(parsed) == entries  # = the dated `###` headings in the file
    assert {e.readme for e in parsed} == {readme}
    assert {e.date.year for e in parsed} == years
    assert all(e.name and e.attack_type for e in parsed)


def test_incident_count(reports: list[Report]) -> None:
    # 857 dated headings; "20260526 SKP Token" is listed twice (SKP_exp.sol and SKP_exp2.sol, two
    # PoCs of one drain) and merged, which gives the 856 the README itself announces.
    assert "856 incidents included." in _bundled_text("README.md")
    assert len(reports) == 856
    assert len({r.source_ref for r in reports}) == 856
    assert all(not r.source_ref.startswith("readme:") for r in reports)  # every entry names a PoC


def test_coverage_shares(reports: list[Report]) -> None:
    with_tx = sum(1 for r in reports if r.tx_hash)
    with_chain = sum(1 for r in reports if r.chain)
    with_usd = sum(1 for r in reports if r.amount_usd is not None)
    with_text = sum(1 for r in reports if r.amount_text)
    other = sum(1 for r in reports if r.category == "other")
    assert with_tx == 803  # 93.8%
    assert with_chain == 844  # 98.6%; the 12 without have no key info and no explorer link
    assert with_usd == 656  # 76.6%; most of the rest are token amounts ("~15.32 ETH")
    assert with_text == 830
    assert other == 4  # 0.5%


def test_category_distribution(reports: list[Report]) -> None:
    counts: dict[str, int] = {}
    for r in reports:
        counts[str(r.category)] = counts.get(str(r.category), 0) + 1
    assert counts["logic_error"] == 329
    assert counts["price_oracle"] == 174
    assert counts["access_control"] == 159
    assert counts["reentrancy"] == 58
    assert counts["rounding"] == 45
    assert counts["arbitrary_call"] == 37
    assert counts["bridge"] == 12
    assert set(counts) <= set(CATEGORIES)


def test_chain_distribution(reports: list[Report]) -> None:
    chains = [r.chain for r in reports]
    assert chains.count("bsc") == 373
    assert chains.count("ethereum") == 329
    assert chains.count("arbitrum") == 43
    assert chains.count("base") == 37
    assert {c for c in chains if c} <= set(CHAINS)


def test_every_report_is_well_formed(reports: list[Report]) -> None:
    for r in reports:
        assert r.source == "defihacklabs"
        assert r.timestamp.tzinfo is UTC and (r.timestamp.hour, r.timestamp.minute) == (0, 0)
        assert r.category in CATEGORIES
        assert r.chain is None or r.chain in CHAINS
        assert r.tx_hash == (r.tx_hashes[0] if r.tx_hashes else None)
        assert all(normalise_tx_hash(tx, r.chain) == tx for tx in r.tx_hashes)
        assert len(set(r.tx_hashes)) == len(r.tx_hashes)
        assert r.amount_usd is None or 0 <= r.amount_usd <= 1e11
        assert r.url is not None and r.url.startswith(BLOB_URL)
        assert all(re.fullmatch(r"https?://[^\s()<>]+[\w/=#-]", ref) for ref in r.references), r.references
        assert len(set(r.references)) == len(r.references)
        assert r.description
        json.dumps(r.raw)  # JSON-able


# --------------------------------------------------------------------------------------------
# Known incidents
# --------------------------------------------------------------------------------------------

KNOWN: list[dict[str, Any]] = [
    {  # past/2021: "#### Lost: 153,037 ETH (~$30M)"; chain and tx from the PoC header's etherscan URL
        "ref": "src/test/2017-07/Parity_first_hack_exp.sol",
        "protocol": "Parity Multisig",
        "date": date(2017, 7, 19),
        "chain": "ethereum",
        "tx": "0x9dbf0326a03a2a3719c27be4fa69aacc9857fd231a8d9dcaede4bb083def75ec",
        "usd": 30_000_000.0,
        "category": "access_control",
        "attacker": "0xB3764761E297D6f121e79C32A65829Cd1dDb4D32",
    },
    {  # non-USD Lost line: no USD value, text kept; tx only in the README's link references
        "ref": "src/test/2017-11/Parity_kill_exp.sol",
        "protocol": "Parity",
        "date": date(2017, 11, 6),
        "chain": "ethereum",
        "tx": "0x05f71e1b2cb4f03e547739db15d080fd30c989eda04d37ce6264c5686e0722c9",
        "usd": None,
        "text": "514k ETH",
        "category": "access_control",
    },
    {  # BSC; past/2022 "### 20221230 - DFS - Insufficient validation + flashloan", "### Lost: $1450"
        "ref": "src/test/2022-12/DFS_exp.sol",
        "protocol": "DFS",
        "date": date(2022, 12, 30),
        "chain": "bsc",
        "tx": "0xcddcb447d64c2ce4b3ac5ebaa6d42e26d3ed0ff3831c08923c53ea998f598a7c",
        "usd": 1450.0,
        "category": "flash_loan",
        "attacker": "0xb358BfD28b02c5e925b89aD8b0Eb35913D2d0805",
    },
    {  # "### Lost: ~15.32 ETH" -> no USD
        "ref": "src/test/2022-12/JAY_exp.sol",
        "protocol": "JAY",
        "date": date(2022, 12, 29),
        "chain": "ethereum",
        "tx": "0xd4fafa1261f6e4f9c8543228a67caf9d02811e4ad3058a2714323964a8db61f6",
        "usd": None,
        "text": "~15.32 ETH",
        "category": "reentrancy",
    },
    {  # a bridge by name, "Business Logic Flaw : Incorrect acceptable merkle-root checks"
        "ref": "src/test/2022-08/NomadBridge_exp.sol",
        "protocol": "Nomad Bridge",
        "date": date(2022, 8, 2),
        "chain": "ethereum",
        "tx": None,
        "usd": 152_000_000.0,
        "category": "bridge",
    },
    {  # Euler: tx only in another comment of the PoC; chain from fork alias "mainnet"
        "ref": "src/test/2023-03/Euler_exp.sol",
        "protocol": "EulerFinance",
        "date": date(2023, 3, 13),
        "chain": "ethereum",
        "tx": "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d",
        "usd": 200_000_000.0,
        "category": "logic_error",
    },
    {  # Arbitrum; "### Lost: ~4,5M" (decimal comma); tx from an explorer.phalcon.xyz URL
        "ref": "src/test/2024-01/RadiantCapital_exp.sol",
        "protocol": "RadiantCapital",
        "date": date(2024, 1, 2),
        "chain": "arbitrum",
        "tx": "0x1ce7e9a9e3b6dd3293c9067221ac3260858ce119ecb7ca860eac28b2474c7c9b",
        "usd": 4_500_000.0,
        "category": "rounding",
        "attacker": "0x826d5f4d8084980366f975e10db6c4cf1f9dde6d",
    },
    {  # Base; "### Lost: 1M USD", "Faulty Oracle"
        "ref": "src/test/2025-11/Moonwell_exp.sol",
        "protocol": "Moonwell",
        "date": date(2025, 11, 4),
        "chain": "base",
        "tx": "0x190a491c0ef095d5447d6d813dc8e2ec11a5710e189771c24527393a2beb05ac",
        "usd": 1_000_000.0,
        "category": "price_oracle",
    },
    {  # current README format; the explicit "$118.7K" estimate beats the USDC amount; no chain known
        "ref": "src/test/2026-08/FoxLpBondsPool_exp.sol",
        "protocol": "FoxLpBondsPool",
        "date": date(2026, 8, 15),
        "chain": None,
        "tx": "0x8e1775cbfd44db29744cc6687ff1822d2c47321de6e94062f789ad6181ad5514",
        "usd": 118_700.0,
        "text": "~112,976.12 USDC (~$118.7K reported)",
        "category": "price_oracle",
    },
    {  # README path "src/test/2025-08/EverValueCoin" (no .sol) resolved to the real PoC file
        "ref": "src/test/2025-08/EverValueCoin_exp.sol",
        "protocol": "EverValueCoin",
        "date": date(2025, 8, 30),
        "chain": "arbitrum",
        "tx": "0xb13b2ab202cb902b8986cbd430d7227bf3ddca831b79786af145ccb5f00fcf3f",
        "usd": 100_000.0,
        "category": "logic_error",
    },
]


@pytest.mark.parametrize("fact", KNOWN, ids=[f["protocol"] for f in KNOWN])
def test_known_incident(fact: dict[str, Any], by_ref: dict[str, Report]) -> None:
    r = by_ref[fact["ref"]]
    assert r.protocol == fact["protocol"]
    assert r.timestamp == datetime(fact["date"].year, fact["date"].month, fact["date"].day, tzinfo=UTC)
    assert r.chain == fact["chain"]
    assert r.tx_hash == fact["tx"]
    assert r.amount_usd == fact["usd"]
    assert r.category == fact["category"]
    assert r.url == BLOB_URL + fact["ref"]
    if "text" in fact:
        assert r.amount_text == fact["text"]
    if "attacker" in fact:
        assert r.attacker_address == fact["attacker"]


def test_parity_multisig_details(by_ref: dict[str, Report]) -> None:
    r = by_ref["src/test/2017-07/Parity_first_hack_exp.sol"]
    assert r.tx_hashes == (
        "0x9dbf0326a03a2a3719c27be4fa69aacc9857fd231a8d9dcaede4bb083def75ec",
        "0xeef10fc5170f669b86c4cd0444882a96087221325f8bf2f55d6188633aa7be7c",
    )
    assert r.amount_text == "153,037 ETH (~$30M)"
    assert r.description == "delegatecall to unprotected initWallet. Lost: 153,037 ETH (~$30M)"
    assert r.references[0] == "https://www.openzeppelin.com/news/on-the-parity-wallet-multisig-hack-405a8c12e8f7"
    assert r.raw["readme"] == "past/2021/README.md"
    assert r.raw["keyinfo"][0]["fork_chain"] == "vm.envString"  # chain came from the etherscan URL


def test_skp_token_listed_twice_is_one_report(by_ref: dict[str, Report]) -> None:
    r = by_ref["src/test/2026-05/SKP_exp.sol"]
    assert "src/test/2026-05/SKP_exp2.sol" not in by_ref
    assert [m["poc_paths"] for m in r.raw["merged"]] == [["src/test/2026-05/SKP_exp2.sol"]]
    assert r.category == "rug_pull"  # "Owner Backdoor LP Burn + Price Manipulation"
    assert r.amount_usd == 212_000.0
    assert "0xadf1b6ff02a917043c816bc8bd1ed67038d64a19d06544b09ceeb872518fda37" in r.tx_hashes


def test_rescued_and_multiple_pocs(by_ref: dict[str, Report]) -> None:
    r = by_ref["src/test/2023-03/paraspace_exp.sol"]  # "### Rescued: ~2,909 ETH", two PoC links
    assert r.raw["rescued"] == "~2,909 ETH"
    assert r.raw["poc_paths"] == ["src/test/2023-03/paraspace_exp.sol", "src/test/2023-03/Paraspace_exp_2.sol"]
    assert r.amount_usd is None and r.recovered_usd is None


def test_mara_heading_without_spaces(by_ref: dict[str, Report]) -> None:
    r = by_ref["src/test/2024-09/MARA_exp.sol"]  # "### 20240924-MARA---price-manipulation"
    assert (r.protocol, r.raw["type"], r.category) == ("MARA", "price-manipulation", "price_oracle")
    assert r.amount_usd == 5_300.0  # "~8.8 WBNB (~5.3K USD)"


def test_multichain_name_kept(by_ref: dict[str, Report]) -> None:
    r = by_ref["src/test/2022-01/Anyswap_exp.sol"]
    assert r.protocol == "Multichain (Anyswap)"
    assert r.amount_usd == 1_400_000.0


# --------------------------------------------------------------------------------------------
# Parser edge cases on small inputs
# --------------------------------------------------------------------------------------------

PAST_README = """# DeFi Hacks Reproduce - Foundry

## 2022 - List of Past DeFi Incidents

[20221230 DFS](#20221230---dfs---insufficient-validation--flashloan)

### 20221230 - DFS - Insufficient validation + flashloan

### Lost: $1450

```sh
forge test --contracts ./src/test/2022-12/DFS_exp.sol -vvv
# MUST use evm >= cancun
```

#### Contract

[DFS_exp.sol](../../src/test/2022-12/DFS_exp.sol)

#### Link reference

https://twitter.com/CertiKAlert/status/1608788290785665024

- https://bscscan.com/tx/0xcddcb447d64c2ce4b3ac5ebaa6d42e26d3ed0ff3831c08923c53ea998f598a7c (attack).

#### Fix

See https://example.com/not-a-reference

---

### 20220118 Multichain (Anyswap) - Insufficient Token Validation

#### Lost: $1.4 million

### 20240924-MARA---price-manipulation

### Lost: ~8.8 WBNB (~5.3K USD)

[MARA_exp.sol](/../../src/test/2024-09//MARA_exp.sol)

### Transaction debugging tools

https://example.com/tools
"""

CURRENT_README = """## List of Past DeFi Incidents
### OnChain transaction debugging
### 20260815 FoxLpBondsPool - Stale _stakeAmount from manipulable AMM spot quote
### Lost: ~112,976.12 USDC (~$118.7K reported)
```sh
forge test --contracts src/test/2026-08/FoxLpBondsPool_exp.sol --evm-version cancun -vvv
```
#### Contract
[FoxLpBondsPool_exp.sol](src/test/2026-08/FoxLpBondsPool_exp.sol)
"""


def test_parse_past_readme_format() -> None:
    dfs, multichain, mara = parse_readme(PAST_README)
    assert (dfs.date, dfs.name, dfs.attack_type, dfs.lost) == (
        date(2022, 12, 30),
        "DFS",
        "Insufficient validation + flashloan",
        "$1450",
    )
    assert dfs.poc_paths == ("src/test/2022-12/DFS_exp.sol",)
    assert dfs.references == (
        "https://twitter.com/CertiKAlert/status/1608788290785665024",
        "https://bscscan.com/tx/0xcddcb447d64c2ce4b3ac5ebaa6d42e26d3ed0ff3831c08923c53ea998f598a7c",
    )
    assert dfs.readme == "past/2022/README.md"
    assert dfs.anchor_url == BLOB_URL + "past/2022/README.md#20221230---dfs---insufficient-validation--flashloan"
    assert (multichain.name, multichain.lost, multichain.poc_paths) == ("Multichain (Anyswap)", "$1.4 million", ())
    assert (mara.name, mara.attack_type) == ("MARA", "price-manipulation")
    assert mara.poc_paths == ("src/test/2024-09/MARA_exp.sol",)
    assert mara.references == ()  # the "### Transaction debugging tools" link is not MARA's


def test_parse_current_readme_format() -> None:
    (entry,) = parse_readme(CURRENT_README)
    assert (entry.date, entry.name) == (date(2026, 8, 15), "FoxLpBondsPool")
    assert entry.attack_type == "Stale _stakeAmount from manipulable AMM spot quote"
    assert entry.lost == "~112,976.12 USDC (~$118.7K reported)"
    assert entry.poc_paths == ("src/test/2026-08/FoxLpBondsPool_exp.sol",)
    assert entry.readme == "README.md"


def test_parse_readme_skips_bad_dates_and_non_incidents() -> None:
    text = "### 20231345 Nope - Bad date\n### Lost: $1\n---\n### Useful tools\n### Hacks Dashboard\n"
    assert parse_readme(text) == []
    assert parse_readme("") == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../src/test/2023-06//BUNN_exp.sol", "src/test/2023-06/BUNN_exp.sol"),
        ("./src/test/2026-07/ExchangeIssuance_exp.sol", "src/test/2026-07/ExchangeIssuance_exp.sol"),
        ("/../../src/test/2024-09/MARA_exp.sol", "src/test/2024-09/MARA_exp.sol"),
        ("src/test/2023-11/KyberSwap_exp.eth.1.sol", "src/test/2023-11/KyberSwap_exp.eth.1.sol"),
        ("./src/test/2025-08/EverValueCoin", "src/test/2025-08/EverValueCoin"),
        ("README.md", None),
    ],
)
def test_normalise_poc_path(raw: str, expected: str | None) -> None:
    assert normalise_poc_path(raw) == expected


KEYINFO_DOC = {
    "source": "SunWeb3Sec/DeFiHackLabs",
    "records": [
        {
            "file": "src/test/2022-12/DFS_exp.sol",
            "month": "2022-12",
            "total_lost": "~1,450 US$",
            "attacker": ["0xb358BfD28b02c5e925b89aD8b0Eb35913D2d0805"],
            "attack_contract": [],
            "vulnerable_contract": [],
            "attack_tx": ["0xcddcb447d64c2ce4b3ac5ebaa6d42e26d3ed0ff3831c08923c53ea998f598a7c"],
            "attack_tx_urls": [
                "https://bscscan.com/tx/0xcddcb447d64c2ce4b3ac5ebaa6d42e26d3ed0ff3831c08923c53ea998f598a7c"
            ],
            "analysis_links": ["https://twitter.com/CertiKAlert/status/1608788290785665024"],
            "fork_chain": "bsc",
            "fork_block": 24349821,
        },
        {"file": "./src/test/2024-09/MARA_exp.sol", "fork_chain": "BSC_ARCHIVE", "fork_block": None},
        {"file": None},
        "not a record",
    ],
}


def test_parse_keyinfo() -> None:
    info = parse_keyinfo(KEYINFO_DOC)
    assert set(info) == {"src/test/2022-12/DFS_exp.sol", "src/test/2024-09/MARA_exp.sol"}
    dfs = info["src/test/2022-12/DFS_exp.sol"]
    assert dfs.attack_tx == ("0xcddcb447d64c2ce4b3ac5ebaa6d42e26d3ed0ff3831c08923c53ea998f598a7c",)
    assert (dfs.total_lost, dfs.fork_chain, dfs.fork_block) == ("~1,450 US$", "bsc", 24349821)
    assert info["src/test/2024-09/MARA_exp.sol"] == KeyInfo(
        file="src/test/2024-09/MARA_exp.sol", fork_chain="BSC_ARCHIVE"
    )
    assert parse_keyinfo(KEYINFO_DOC["records"]) == info  # the bare list works too


def test_bundled_keyinfo() -> None:
    info = parse_keyinfo(json.loads(_bundled_text("poc_keyinfo.json")))
    assert len(info) == 848
    assert sum(1 for i in info.values() if i.attack_tx) == 638


def test_build_reports_joins_and_falls_back() -> None:
    keyinfo = parse_keyinfo(KEYINFO_DOC)
    reports = build_reports([PAST_README, CURRENT_README, PAST_README], keyinfo)  # PAST twice: no dupes
    refs = [r.source_ref for r in reports]
    assert refs == [
        "src/test/2022-12/DFS_exp.sol",
        "readme:2022-01-18:Multichain (Anyswap)",
        "src/test/2024-09/MARA_exp.sol",
        "src/test/2026-08/FoxLpBondsPool_exp.sol",
    ]
    dfs, multichain, mara, fox = reports
    assert (dfs.chain, dfs.amount_usd, dfs.category) == ("bsc", 1450.0, "flash_loan")
    assert dfs.attacker_address == "0xb358BfD28b02c5e925b89aD8b0Eb35913D2d0805"
    assert dfs.references == ("https://twitter.com/CertiKAlert/status/1608788290785665024", dfs.references[1])
    anchor = "#20220118-multichain-anyswap---insufficient-token-validation"
    assert multichain.url == f"{BLOB_URL}past/2022/README.md{anchor}"
    assert (multichain.chain, multichain.tx_hash, multichain.amount_usd) == (None, None, 1_400_000.0)
    assert mara.chain == "bsc"  # fork alias BSC_ARCHIVE
    assert (fox.chain, fox.tx_hash, fox.amount_usd) == (None, None, 118_700.0)  # no key info given


def test_amount_falls_back_to_keyinfo_total_lost() -> None:
    text = "### 20221230 - DFS - Insufficient validation + flashloan\n[x](src/test/2022-12/DFS_exp.sol)\n"
    (report,) = build_reports([text], parse_keyinfo(KEYINFO_DOC))
    assert (report.amount_text, report.amount_usd) == ("~1,450 US$", 1450.0)
    assert report.description == "Insufficient validation + flashloan. Lost: ~1,450 US$"


# --------------------------------------------------------------------------------------------
# Bundled files and their provenance
# --------------------------------------------------------------------------------------------


def test_bundled_files_and_notice() -> None:
    names = sorted(p.name for p in BUNDLED.iterdir())
    assert names == sorted(["LICENSE", "NOTICE", "poc_keyinfo.json", *defihacklabs.README_FILES])
    notice = _bundled_text("NOTICE")
    assert "SunWeb3Sec/DeFiHackLabs" in notice
    assert "b3719ce7fb93ee6f743853ede9471e1a8bed1de0" in notice
    assert "Apache License" in notice and "poc_keyinfo.json" in notice
    assert _bundled_text("LICENSE").lstrip().startswith("Apache License")


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data copy not present")
def test_bundled_copy_matches_shared_data(reports: list[Report]) -> None:
    for name in (*defihacklabs.README_FILES, "poc_keyinfo.json", "LICENSE"):
        assert (SHARED / name).read_bytes() == BUNDLED.joinpath(name).read_bytes(), name
    texts = [(SHARED / name).read_text(encoding="utf-8") for name in defihacklabs.README_FILES]
    keyinfo = parse_keyinfo(json.loads((SHARED / "poc_keyinfo.json").read_text(encoding="utf-8")))
    assert build_reports(texts, keyinfo) == reports


def test_the_pocs_fork_block_is_kept_on_its_chain(reports: list[Report], by_ref: dict[str, Report]) -> None:
    assert by_ref["src/test/2018-04/BEC_exp.sol"].fork_block == ("ethereum", 5_483_642)  # "mainnet"
    assert by_ref["src/test/2018-04/BEC_exp.sol"].details["fork_block"] == ["ethereum", 5_483_642]
    assert by_ref["src/test/2017-07/Parity_first_hack_exp.sol"].fork_block is None  # no literal block
    forked = [r.fork_block for r in reports if r.fork_block]
    assert len(forked) > 500 and all(CHAINS[chain].family == "evm" and block > 0 for chain, block in forked)
