"""How an exploit's facts are derived from its reports, then corrected.

Rule (documented in the README's merge section): each fact comes from the most trusted report that
states it, never from a blend of several (a median is a number no source said):
- the USD loss (and the text it was written as, and what was returned) from AMOUNT_TRUST: sources whose
  analysts value a loss in dollars at the time (the Chronicle, DeFiLlama, SlowMist) before PoC headers,
  whose "Lost" lines are often token counts or nominal values; where no report states USD, a token amount
  is priced at the incident day from the cached quotes (`_priced`, `amount_status` "priced");
- tx hash, chain, protocol, category, description and attacker from SOURCE_TRUST: PoC-backed sources first;
  the chain is the most trusted specific one (a "multichain" list loses to a named chain);
- the display name and aliases as `kamiyo.ingest.names` decides (a reviewed name, else an analyst's over a PoC
  file name); the technique, classification and target type from the most trusted report stating them;
- the incident time is the attack transaction's block time where the on-chain job read it (else the time
  of the block after a PoC's fork block), else the most trusted precise time (not midnight), else the earliest
  stated day (a disclosure or article is dated after the attack, never before).
`disputed` is set when stated facts disagree beyond DISPUTE tolerances. Curated corrections
(`kamiyo.vocabulary.curation`) and approved community corrections are applied last and listed in `corrections`.
Material facts, whose change emits `exploit.updated`: amount, chain, tx hash.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from kamiyo.ingest.evidence import NONE, Evidence, fork_block
from kamiyo.ingest.names import display_name
from kamiyo.ingest.token_amounts import PAR, priceable, token_amounts
from kamiyo.vocabulary import curation
from kamiyo.vocabulary.curation import Correction, report_key
from kamiyo.vocabulary.normalise import MAX_USD, protocol_key
from kamiyo.vocabulary.taxonomy import CHAINS

MATERIAL_FACTS = ("amount_usd", "chain", "tx_hash")
DERIVED_FIELDS = (
    "tx_hash", "chain", "protocol", "protocol_key", "amount_usd", "amount_sort", "amount_text", "recovered_usd",
    "returned_usd", "loss_kind", "disputed", "corrections", "timestamp", "category", "description",
    "attacker_address", "explorer_url", "is_test", "name", "aliases", "chains", "tx_hashes", "technique",
    "classification", "target_type", "attack_contracts", "vulnerable_contracts", "links", "time_precision",
    "amount_status", "pricing",
)  # fmt: skip

# Higher is more trusted for exact on-chain facts. Unknown sources get DEFAULT_TRUST.
SOURCE_TRUST: dict[str, int] = {
    "defihacklabs": 90,
    "defihack_chronicle": 85,
    "community": 40,
    "import": 60,
}
DEFAULT_TRUST = 50
# Higher is more trusted for the USD loss.
AMOUNT_TRUST: dict[str, int] = {
    "defihack_chronicle": 95,
    "defillama": 90,
    "slowmist": 80,
    "defihacklabs": 70,
    "import": 60,
    "community": 40,
}
# Sources disagree (`disputed`) when stated amounts differ by more than both of these, when two name
# different specific chains, or when their incident days are more than DISPUTE_DAYS apart.
DISPUTE_RATIO = 1.5
DISPUTE_USD = 100_000.0
DISPUTE_DAYS = timedelta(days=3)
GENERAL_CHAINS = (None, "", "other", "multichain")


class ReportFacts(Protocol):
    source: str
    source_ref: str
    protocol: str
    timestamp: datetime
    chain: str | None
    tx_hash: str | None
    amount_usd: float | None
    amount_text: str | None
    recovered_usd: float | None
    category: str | None
    description: str | None
    attacker_address: str | None

    @property
    def details(self) -> dict[str, Any]: ...


def _trust(report: ReportFacts) -> int:
    return SOURCE_TRUST.get(report.source, DEFAULT_TRUST)


def _amount_trust(report: ReportFacts) -> int:
    return AMOUNT_TRUST.get(report.source, DEFAULT_TRUST)


def explorer_url(chain: str, tx_hash: str | None) -> str | None:
    meta = CHAINS.get(chain)
    if not tx_hash or meta is None or meta.explorer is None:
        return None
    return f"{meta.explorer}/tx/{tx_hash}"


def _first(ranked: Sequence[ReportFacts], attr: str) -> Any:
    for report in ranked:
        value = getattr(report, attr)
        if value not in (None, "", "other"):
            return value
    return None


def _is_precise(ts: datetime) -> bool:
    return (ts.hour, ts.minute, ts.second) != (0, 0, 0)


def _chain(ranked: Sequence[ReportFacts]) -> str:
    specific = next((r.chain for r in ranked if r.chain not in GENERAL_CHAINS), None)
    if specific:
        return specific
    return "multichain" if any(r.chain == "multichain" for r in ranked) else "other"


def is_disputed(reports: Sequence[ReportFacts]) -> bool:
    """Whether the sources' own words disagree beyond the documented tolerances."""
    amounts = [r.amount_usd for r in reports if r.amount_usd]
    if amounts:
        low, high = min(amounts), max(amounts)
        if high > low * DISPUTE_RATIO and high - low > DISPUTE_USD:
            return True
    if len({r.chain for r in reports if r.chain not in GENERAL_CHAINS}) > 1:
        return True
    days = [r.timestamp for r in reports]
    return max(days) - min(days) > DISPUTE_DAYS


def corrections_for(reports: Iterable[ReportFacts]) -> list[Correction]:
    """Curated corrections that target any of these reports, in file order."""
    curated = curation.corrections()
    return [c for r in reports for c in curated.get(report_key(r.source, r.source_ref), ())]


def derive(
    reports: Sequence[ReportFacts], extra: Sequence[Correction] = (), evidence: Evidence = NONE
) -> dict[str, Any]:
    """The exploit row's facts from all reports of one incident and the evidence found beside them (block
    time, prices), then its corrections (curated, then `extra`)."""
    ranked = sorted(reports, key=lambda r: -_trust(r))
    by_amount = sorted(reports, key=lambda r: -_amount_trust(r))
    stated = next((r for r in by_amount if r.amount_usd is not None), None)
    worded = stated if stated is not None and stated.amount_text else next((r for r in ranked if r.amount_text), None)
    returned = next((r.recovered_usd for r in by_amount if r.recovered_usd is not None), None)
    precise = [r.timestamp for r in ranked if _is_precise(r.timestamp)]
    facts: dict[str, Any] = {
        "tx_hash": _first(ranked, "tx_hash"),
        "chain": _chain(ranked),
        "protocol": ranked[0].protocol,
        "amount_usd": None if stated is None else float(stated.amount_usd or 0.0),
        "amount_text": worded.amount_text if worded is not None else None,
        "returned_usd": returned,
        "loss_kind": "realised",
        "disputed": is_disputed(reports),
        "timestamp": precise[0] if precise else min(r.timestamp for r in ranked),
        "category": _first(ranked, "category") or "other",
        "description": _first(ranked, "description") or "",
        "attacker_address": _first(ranked, "attacker_address"),
        **_details(ranked),
    }
    _timed(facts, ranked, evidence)
    timed = facts["timestamp"]
    applied = [*corrections_for(ranked), *extra]
    moved = [c.value for c in applied if c.field == "timestamp" and isinstance(c.value, datetime)]
    _priced(facts, ranked, evidence, (moved[-1] if moved else facts["timestamp"]).date())
    for correction in applied:
        facts[correction.field] = correction.value
    if facts["timestamp"] != timed:  # a corrected time is the day its reviewer gives, not a block's
        facts["time_precision"] = "day"
    return _complete(facts, applied)


def _listed(ranked: Sequence[ReportFacts], attr: str, detail: str) -> list[str]:
    """Every value the reports give, most trusted first, each once: the primary `attr`, then their `detail` lists."""
    values = [getattr(r, attr) for r in ranked] + [v for r in ranked for v in r.details.get(detail, ())]
    return list(dict.fromkeys(v for v in values if v not in GENERAL_CHAINS))


def _stated(ranked: Sequence[ReportFacts], detail: str) -> Any:
    return next((r.details[detail] for r in ranked if r.details.get(detail)), None)


def _details(ranked: Sequence[ReportFacts]) -> dict[str, Any]:
    """The further facts (CONTRACT §12), each from the most trusted report that states it."""
    name, aliases = display_name(ranked)
    return {
        "name": name,
        "aliases": aliases,
        "chains": _listed(ranked, "chain", "chains"),
        "tx_hashes": _listed(ranked, "tx_hash", "tx_hashes"),
        "technique": _stated(ranked, "technique"),
        "classification": _stated(ranked, "classification"),
        "target_type": _stated(ranked, "target_type"),
        "attack_contracts": list(dict.fromkeys(a for r in ranked for a in r.details.get("attack_contracts", ()))),
        "vulnerable_contracts": list(
            dict.fromkeys(a for r in ranked for a in r.details.get("vulnerable_contracts", ()))
        ),
        "links": list(dict.fromkeys(u for r in ranked for u in r.details.get("links", ()))),
        "time_precision": "day",
        "pricing": None,
    }


def _timed(facts: dict[str, Any], ranked: Sequence[ReportFacts], evidence: Evidence) -> None:
    """The attack transaction's block time, where it is known, is the incident time (`time_precision` block),
    and its sender the attacker when no source names one. Without it, the block after the most trusted PoC
    fork block, when its time is within DISPUTE_DAYS of the stated time (a PoC forking weeks earlier to set
    up state does not date the attack)."""
    tx_hash = facts["tx_hash"] or ""
    at = evidence.block_times.get(tx_hash)
    if at is not None:
        facts["attacker_address"] = facts["attacker_address"] or evidence.senders.get(tx_hash)
    else:
        fork = next((f for r in ranked if (f := fork_block(r.details))), None)
        at = evidence.fork_times.get(fork) if fork else None
        if at is not None and abs(at - facts["timestamp"]) > DISPUTE_DAYS:
            at = None
    if at is not None:
        facts["timestamp"], facts["time_precision"] = at, "block"


PRICE_SOURCE = "defillama-coins"


def priced_text(facts: dict[str, Any], ranked: Sequence[ReportFacts]) -> str | None:
    """The loss text to price: the record's own, else the most trusted report's that is a token amount."""
    texts = [facts["amount_text"], *(r.amount_text for r in ranked)]
    return next((t for t in texts if token_amounts(t)), None)


def _priced(facts: dict[str, Any], ranked: Sequence[ReportFacts], evidence: Evidence, day: date) -> None:
    """A loss no source states in USD, but some source states in tokens, priced at the incident day (`day`,
    as corrected).

    Only when every token of the text has a price that day (stablecoins at par): a partial sum is never
    shown as the loss. The price and the time of its price point are kept in `pricing`."""
    if facts["amount_usd"] is not None:
        return
    text = priced_text(facts, ranked)
    amounts = token_amounts(text)
    if amounts is None or not priceable(amounts):
        return
    lines: list[dict[str, Any]] = []
    total = 0.0
    for a in amounts:
        coin = a.coin
        quote = None if coin == PAR else evidence.prices.get((coin or "", day))
        if coin != PAR and quote is None:
            return
        price, at = (1.0, None) if quote is None else quote
        lines.append({"symbol": a.symbol, "amount": a.amount, "coin": coin, "price_usd": price, "price_at": at})
        total += a.amount * price
    total = round(total, 2)
    if not 0 < total <= MAX_USD:
        return
    facts["amount_usd"] = total
    facts["amount_text"] = text
    facts["pricing"] = {"source": PRICE_SOURCE, "day": day.isoformat(), "amounts": lines}


def _complete(facts: dict[str, Any], applied: Sequence[Correction]) -> dict[str, Any]:
    """Columns that follow from the facts. What was returned is never more than was lost unless a correction
    says so (a source that counts compensation or a refill as returned overstates it); the primary chain (a
    corrected one too) leads `chains`."""
    amount, returned = facts["amount_usd"], facts["returned_usd"]
    capped = not any(c.field == "returned_usd" for c in applied)
    if any(c.field == "amount_usd" for c in applied):  # a curated amount replaces a priced one
        facts["pricing"] = None
    if capped and returned is not None and amount is not None and returned > amount:
        returned = facts["returned_usd"] = amount
    key = protocol_key(facts["protocol"])
    chain, chains = facts["chain"], facts["chains"]
    return facts | {
        "chains": chains if chain in GENERAL_CHAINS else [chain, *(c for c in chains if c != chain)],
        "protocol_key": key,
        "amount_sort": amount if amount is not None else -1.0,
        "recovered_usd": returned,
        "amount_status": "unpriced" if amount is None else "priced" if facts["pricing"] else "stated",
        "corrections": [c.shown() for c in applied],
        "explorer_url": explorer_url(facts["chain"], facts["tx_hash"]),
        "is_test": key == "test",
    }


def counted_loss(facts: dict[str, Any]) -> float:
    """The USD loss that headline totals count: realised losses only."""
    return float(facts["amount_usd"] or 0.0) if facts.get("loss_kind", "realised") == "realised" else 0.0


def material_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), after.get(k)] for k in MATERIAL_FACTS if before.get(k) != after.get(k)}
