"""Record facts from the sources (CONTRACT §12): chains, technique, classification, target type, contracts, fork
block, links, on the real bundled and recorded data."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kamiyo.ingest import validate
from kamiyo.sources import defihack_chronicle, defihacklabs, defillama
from kamiyo.sources.base import Document, Report

SOURCES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
LLAMA = SOURCES / "defillama" / "hacks"  # the real DeFiLlama snapshot (/work/shared/data/defillama-hacks)
DAY = datetime(2024, 9, 3, tzinfo=UTC)


def _llama() -> list[Report]:
    return defillama.parse(Document(url="f", status=200, content=LLAMA.read_bytes()))


def _report(source: str, name: str, **facts: Any) -> Report:
    return Report(source=source, source_ref=f"{source}:{name}", protocol=name, timestamp=DAY, **facts)


def _by_name(reports: list[Report], name: str) -> Report:
    return next(r for r in reports if r.protocol == name)


# --- sources -----------------------------------------------------------------------------------------------


def test_defillama_keeps_its_chain_list_technique_classification_and_target_type() -> None:
    reports = _llama()
    balancer = _by_name(reports, "Balancer V2")
    assert balancer.chain == "multichain"  # no primary chain stated: the list is kept beside it
    assert balancer.chains == ("ethereum", "arbitrum", "base", "polygon", "sonic", "optimism")
    assert (balancer.technique, balancer.classification) == ("Composable Stable Pools Exploit", "Protocol Logic")
    assert balancer.target_type == "defi"
    assert _by_name(reports, "Portal").target_type == "bridge"  # bridgeHack outranks targetType "DeFi Protocol"
    assert _by_name(reports, "Poloniex").target_type == "cefi"
    assert _by_name(reports, "Atomic Wallet").target_type == "wallet"
    # Names no canonical chain answers to (XRP, Dagger, Kadena, ...) are left out, not guessed.
    assert _by_name(reports, "CoinEx").chains[:4] == ("ethereum", "bsc", "bitcoin", "tron")
    assert all(
        c in {"ethereum", "bsc", "bitcoin", "tron", "solana", "polygon", "arbitrum"}
        for c in _by_name(reports, "CoinEx").chains
    )
    items = json.loads(LLAMA.read_bytes())
    # 403 of 448: 13 items name no chain, 32 only chains outside Kamiyo's vocabulary (Hyperliquid L1, XRP, ...)
    assert sum(bool(r.chains) for r in reports) >= 400
    assert sum(r.target_type is not None for r in reports) >= 0.9 * len(items)
    assert {r.details.get("technique") for r in reports} >= {"Reentrancy", "Signature Exploit"}


def test_defihacklabs_reports_carry_contracts_fork_block_every_attack_tx_and_analysis_links() -> None:
    reports = {r.protocol: r for r in defihacklabs.load_bundled()}
    qixi = reports["Qixi"]  # header: attack contract as a bscscan URL, one attack tx, one analysis link
    assert qixi.attack_contracts == ("0xb7b0fe129fefa222efd4eb1f6bef9de339339bbb",)
    assert qixi.fork_block == ("bsc", 20120884)
    assert "https://x.com/8olidity/status/1555366421693345792" in qixi.details["links"]
    assert qixi.details["fork_block"] == ["bsc", 20120884]
    assert reports["Penpiexyz_io"].fork_block == ("ethereum", 20671878)  # fork_chain "mainnet"
    keyinfo = defihacklabs.bundled_keyinfo()
    annotated = [i for i in keyinfo.values() if any("(Proxy)" in v for v in i.vulnerable_contract)]
    assert annotated
    proxy = next(r for r in reports.values() if r.source_ref == annotated[0].file)
    assert all(a.startswith("0x") and len(a) == 42 for a in proxy.vulnerable_contracts)
    assert len(proxy.vulnerable_contracts) >= 2  # "0x... (Proxy)" and "0x... (Logic)"
    many = [r for r in reports.values() if len(r.tx_hashes) > 1]
    assert len(many) >= 40 and all(r.details["tx_hashes"] == list(r.tx_hashes) for r in many)
    assert sum(bool(r.attack_contracts) for r in reports.values()) >= 500
    assert sum(bool(r.vulnerable_contracts) for r in reports.values()) >= 400
    assert sum(r.fork_block is not None for r in reports.values()) >= 550
    assert all("N/A" not in r.attack_contracts for r in reports.values())


def test_chronicle_lists_every_chain_and_every_attack_transaction_but_not_laundering() -> None:
    path = SOURCES / "defihack_chronicle" / "hacks"
    file = next(f for f in path.iterdir() if "Penpie" in f.name)
    report = defihack_chronicle.parse_incident(Document(url="f", status=200, content=file.read_bytes()), file.name)
    doc = json.loads(file.read_bytes())
    assert report.chains[0] == report.chain == "ethereum" and "arbitrum" in report.chains
    attack = {t["txHash"].lower() for t in doc["transactions"] if t["role"] in defihack_chronicle.ATTACK_ROLES}
    elsewhere = {t["txHash"].lower() for t in doc["transactions"] if t["blockchain"] != "ethereum"} & attack
    assert elsewhere and elsewhere <= set(report.tx_hashes)
    laundering = {t["txHash"].lower() for t in doc["transactions"] if t["role"] == "laundering"}
    assert laundering and not laundering & set(report.tx_hashes) - {
        t["txHash"].lower() for t in doc["transactions"] if t["blockchain"] == report.chain
    }
    assert report.details["links"] == list(report.references) and len(report.references) >= 10
    assert report.technique is None and report.classification is None  # the Chronicle states neither


def test_a_transaction_is_valid_on_any_chain_the_report_lists() -> None:
    tron_tx, evm_tx = "ab" * 32, "0x" + "cd" * 32
    both = _report("defihack_chronicle", "Transit", chain="tron", chains=("tron", "ethereum"), tx_hash=tron_tx)
    assert validate.problems(replace(both, tx_hashes=(tron_tx, evm_tx))) == []
    assert validate.problems(replace(both, chains=("tron",), tx_hashes=(tron_tx, evm_tx)))  # not on a listed chain
    assert validate.problems(replace(both, chains=("tron", "hyperliquid_l1"), tx_hashes=(tron_tx,)))
