"""Record facts from the sources (CONTRACT §12): chains, technique, classification, target type, contracts, fork
block, links, and an honest display name with its aliases, on the real bundled and recorded data."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kamiyo.db import Database
from kamiyo.exploits.models import Exploit, ReportRow
from kamiyo.ingest import validate
from kamiyo.ingest.merge import derive
from kamiyo.ingest.names import clean_poc_name, display_name
from kamiyo.ingest.store import store_reports
from kamiyo.sources import defihack_chronicle, defihacklabs, defillama
from kamiyo.sources.base import Document, Report
from kamiyo.vocabulary import curation
from kamiyo.vocabulary.curation import Correction, joined

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


# --- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("poc", "shown"),
    [
        ("Penpiexyz_io", "Penpie"),
        ("Bedrock_DeFi", "Bedrock"),
        ("Raft_fi", "Raft"),
        ("MidasCapitalXYZ", "MidasCapital"),
        ("AIRBTC_exp", "AIRBTC"),
        ("Caterpillar_Coin_CUT", "Caterpillar Coin CUT"),
        ("Unverified_16d0", "Unverified_16d0"),  # an address part: an identifier, nothing better to say
        ("MEVbot_0xdd7c", "MEVbot_0xdd7c"),
        ("PancakeBunny", "PancakeBunny"),  # CamelCase is a name, never split
        ("Nomad Bridge", "Nomad Bridge"),
    ],
)
def test_poc_file_names_are_cleaned_conservatively(poc: str, shown: str) -> None:
    assert clean_poc_name(poc) == shown


def test_an_analysts_name_outranks_a_poc_file_name_and_a_curated_name_outranks_both() -> None:
    poc, llama, rekt = (
        _report("defihacklabs", "Penpiexyz_io"),
        _report("defillama", "Penpie"),
        _report("rekt", "PENPIE"),
    )
    assert display_name([poc, llama, rekt]) == ("Penpie", ["Penpiexyz_io"])  # PENPIE folds onto Penpie
    assert display_name([poc]) == ("Penpie", ["Penpiexyz_io"])
    assert display_name([_report("defihacklabs", "Unverified_16d0")]) == ("Unverified_16d0", [])
    assert display_name([_report("slowmist", "Acme"), _report("cointelegraph", "Acme Exchange")])[0] == "Acme"
    name, aliases = display_name([_report("defillama", "Portal"), _report("defihacklabs", "Wormhole")])
    assert name == "Wormhole" and aliases[0] == "Portal"
    assert {"Portal Bridge", "Wormhole Bridge"} <= set(aliases) and "Wormhole" not in aliases
    facts = derive([_report("defillama", "Portal", chain="solana"), _report("defihacklabs", "Wormhole")])
    assert facts["name"] == "Wormhole" and "Portal" in facts["aliases"]


def test_a_curated_display_name_must_be_one_of_its_names() -> None:
    entry = {"key": "acme", "names": ["Acme", "Acme Swap"], "reason": "one project", "name": "Acme"}
    assert curation.parse_aliases({"alias": [entry]})["acme"].name == "Acme"
    with pytest.raises(curation.CurationError):
        curation.parse_aliases({"alias": [entry | {"name": "Acme Finance"}]})
    with pytest.raises(curation.CurationError):
        curation.parse_aliases({"alias": [entry, entry]})
    named = [g for g in curation.alias_groups().values() if g.name]
    assert named and all(g.name in g.names for g in named)


def test_the_primary_chain_even_a_corrected_one_leads_the_chain_list() -> None:
    llama = _report("defillama", "Acme", chain="multichain", chains=("ethereum", "bsc"))
    facts = derive([llama])
    assert (facts["chain"], facts["chains"]) == ("multichain", ["ethereum", "bsc"])
    facts = derive([_report("defihacklabs", "Acme", chain="bsc"), llama])
    assert (facts["chain"], facts["chains"]) == ("bsc", ["bsc", "ethereum"])
    fix = Correction("defillama:defillama:Acme", "chain", "ethereum", "the PoC forks Ethereum", "https://e.org")
    facts = derive([_report("defihacklabs", "Acme", chain="bsc"), llama], extra=[fix])
    assert (facts["chain"], facts["chains"]) == ("ethereum", ["ethereum", "bsc"])


# --- merged records ----------------------------------------------------------------------------------------


async def _merged(url: str) -> tuple[list[Exploit], dict[int, list[ReportRow]]]:
    db = Database(url)
    async with db.session() as session:
        await store_reports(session, defihacklabs.load_bundled())
    async with db.session() as session:
        await store_reports(session, _llama())
    async with db.session() as session:
        exploits = list((await session.execute(select(Exploit))).scalars())
        reports: dict[int, list[ReportRow]] = defaultdict(list)
        for row in (await session.execute(select(ReportRow))).scalars():
            reports[row.exploit_id].append(row)
    await db.dispose()
    return exploits, reports


async def test_merged_records_carry_the_sources_facts_and_honest_names(empty_db_url: str) -> None:
    exploits, reports = await _merged(empty_db_url)
    by_name = {e.name: e for e in exploits}
    wormhole = by_name["Wormhole"]
    assert [r.protocol for r in reports[wormhole.id]] == ["Portal"]  # DeFiLlama's name; DeFiHackLabs has no PoC
    assert "Portal" in wormhole.aliases and wormhole.target_type == "bridge"
    balancer = next(e for e in exploits if any(r.source_ref == "Balancer V2|2025-11-03" for r in reports[e.id]))
    assert {r.source for r in reports[balancer.id]} == {"defihacklabs", "defillama"}
    assert balancer.chain == balancer.chains[0] != "multichain"  # the PoC's chain is the primary one
    assert set(balancer.chains) == {"ethereum", "arbitrum", "base", "polygon", "sonic", "optimism"}
    assert (balancer.technique, balancer.classification, balancer.target_type) == (
        "Composable Stable Pools Exploit",
        "Protocol Logic",
        "defi",
    )
    assert balancer.name == "Balancer V2" and balancer.tx_hash in balancer.tx_hashes
    assert balancer.attack_contracts and balancer.links
    penpie = by_name["Penpie"]
    assert "Penpiexyz_io" in penpie.aliases
    qixi = by_name["Qixi"]  # DeFiHackLabs only
    assert {r.source for r in reports[qixi.id]} == {"defihacklabs"}
    assert qixi.attack_contracts == ["0xb7b0fe129fefa222efd4eb1f6bef9de339339bbb"]
    assert qixi.links == ["https://x.com/8olidity/status/1555366421693345792"]
    assert next(r for r in reports[qixi.id]).details["fork_block"] == ["bsc", 20120884]
    assert qixi.technique is None and qixi.target_type is None  # nothing stated, nothing invented


async def test_no_record_shows_a_poc_file_name_where_a_better_name_is_known(empty_db_url: str) -> None:
    """Measured on the bundled DeFiHackLabs list merged with DeFiLlama's snapshot."""
    exploits, reports = await _merged(empty_db_url)
    named_by_poc = worse = differing = 0
    for exploit in exploits:
        pocs = {r.protocol for r in reports[exploit.id] if r.source == "defihacklabs"}
        better = {joined(r.protocol) for r in reports[exploit.id] if r.source != "defihacklabs"}
        differing += bool(pocs and better and not better & {joined(p) for p in pocs})
        shown_poc = exploit.name in pocs | {clean_poc_name(p) for p in pocs}
        named_by_poc += shown_poc
        worse += bool(shown_poc and better and joined(exploit.name) not in better and exploit.name not in _curated())
    print(f"records {len(exploits)}, PoC and DeFiLlama names differ {differing}, named by a PoC {named_by_poc}, "
          f"PoC name shown while a better one is known {worse}")  # fmt: skip
    # 97 records where DeFiLlama names the incident otherwise than the PoC: the first cut showed the PoC name on each
    assert differing >= 90 and named_by_poc >= 600
    assert worse == 0


def _curated() -> set[str]:
    return {g.name for g in curation.alias_groups().values() if g.name}


async def test_a_report_stored_before_its_facts_were_read_gains_them_when_read_again(empty_db_url: str) -> None:
    portal = _by_name(_llama(), "Portal")
    old = replace(portal, chains=(), technique=None, classification=None, target_type=None)
    db = Database(empty_db_url)
    for report in (old, portal):  # the older parser's report, then the same item read in full after an upgrade
        async with db.session() as session:
            await store_reports(session, [report])
    async with db.session() as session:
        exploit = (await session.execute(select(Exploit))).scalar_one()
    await db.dispose()
    assert (exploit.technique, exploit.target_type, exploit.chains) == ("Signature Exploit", "bridge", ["solana"])
