"""The hack classifier: which titles are incidents (and of which project), and the facts it extracts.

Titles are written in the style of the feeds Kamiyo reads (Cointelegraph, The Block, CryptoSlate,
Decrypt, Chainalysis, TRM, Immunefi, DOJ, Telegram and X alert accounts). Precision over recall: a
kept title must name the attacked project; anything else is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kamiyo.sources._classify import (
    chains_named,
    extract,
    extract_amount,
    extract_chain,
    incident_report,
    is_incident,
    stated_date,
)
from kamiyo.sources._protocol_names import extract_protocol

INCIDENTS = [
    ("Cetus Protocol exploited for $223M on Sui, $162M frozen by validators", "Cetus Protocol"),
    ("Bybit suffers $1.4 billion hack in largest crypto exploit ever", "Bybit"),
    ("North Korean hackers drain $1.5 billion from crypto exchange Bybit", "Bybit"),
    ("#PeckShieldAlert #Abracadabra has been exploited, ~$13M lost", "Abracadabra"),
    ("Attackers drain $12M from Radiant Capital", "Radiant Capital"),
    ("UPCX hacked for $70 million after management account compromise", "UPCX"),
    ("DeFi lender Moonwell hit by $1M oracle exploit", "Moonwell"),
    ("Solana-based DEX Loopscale loses $5.8M in exploit", "Loopscale"),
    ("Zoth exploited for $8.4M after admin key compromise", "Zoth"),
    ("Infini neobank drained of $49.5 million by former developer", "Infini"),
    ("KiloEx loses $7.5M in oracle manipulation attack on Base, BNB Chain and Taiko", "KiloEx"),
    ("GMX V1 Exploited for $42 Million on Arbitrum", "GMX V1"),
    ("BigONE Exchange Hacked for $27 Million in Supply Chain Attack", "BigONE Exchange"),
    ("CoinDCX Loses $44 Million in Hot Wallet Breach", "CoinDCX"),
    ("Cork Protocol hit by $12M exploit on Ethereum", "Cork Protocol"),
    ("zkLend exploited for $9.5 million on Starknet through rounding flaw", "zkLend"),
    ("Hack Analysis: Euler Finance, March 2023", "Euler Finance"),
    ("Hack Analysis: Platypus Finance, February 2023", "Platypus Finance"),
    ("Bybit Hack: $1.46 Billion Stolen by North Korean Hackers", "Bybit"),
    ("Nobitex Hack: $90 Million Burned by Israel-Linked Hackers", "Nobitex"),
    ("🚨 #MetaTrustAlert: #Cork Protocol on #Ethereum was exploited for ~$12M", "Cork Protocol"),
    ("🚨 Our system has detected an attack against @KiloEx_perp on #Base, with an estimated loss of $7.5M", "KiloEx"),
    ("🚨TenArmor Alert🚨 Our system detected a suspicious attack involving #Zoth on #Ethereum", "Zoth"),
    ("#CertiKAlert 🚨 We have seen an exploit on #zkLend on #Starknet resulting in ~$9.5M loss", "zkLend"),
    ("Phemex hot wallets were drained of $70M+ across multiple chains", "Phemex"),
    ("Hackers steal $3.2M from Solana lending protocol Loopscale", "Loopscale"),
    ("WOO X suspends withdrawals after $14M hack", "WOO X"),
    ("Bedrock's uniBTC exploited for $2M through minting flaw", "Bedrock uniBTC"),
    ("Thala recovers after $25M exploit", None),  # "recovers": an update, dropped
    ("Ronin Bridge hacked again, $12M drained", "Ronin Bridge"),
    ("SIR.trading drained of its entire $355K TVL", "SIR.trading"),
    ("Texture suffers $2.2M exploit on Solana", "Texture"),
    ("Four.meme exploited for $183K in sandwich attack", "Four.meme"),
    ("Hyperliquid's JELLY incident: exploiter nets $700K", "JELLY"),
    ("Bitget user lost $2M in address poisoning; exploit traced to ZKsync airdrop contract", None),
]
# Items the classifier must drop (plus the None rows above, dropped for want of a name or as updates).
NOT_INCIDENTS = [
    "Bitcoin price hits new high as ETF inflows surge",
    "Crypto hacks cost $1.6B in Q1 2025 as Bybit breach dominates, CertiK says",
    "Hacker returns $5.4M to Zoth after on-chain negotiation",
    "Mango Markets exploiter Avi Eisenberg sentenced to prison",
    "How to protect your wallet from drainers in 2025",
    "Immunefi launches $10M bug bounty for Sui",
    "Ethereum's Pectra upgrade goes live on mainnet",
    "2025 Crypto Crime Mid-year Update: Stolen Funds Surge",
    "The 2025 Crypto Crime Report: Illicit Volume Falls",
    "Coinbase users have lost $46M+ to social engineering scams in the past month",
    "DeFi exploits fell 40% in October, PeckShield data shows",
    "Top 10 biggest crypto hacks of all time",
    "Solana Meme Coin Mania Cools as Volumes Drop",
    "Weekly security roundup: hacks and exploits this week",
    "Ethereum developers discuss exploit mitigation in the next hard fork",
    "XRP price prediction: analysts see $5 after SEC case ends",
    "Bybit hacker launders $200M through THORChain, analysts say",
    "Is Aave safe to use after all these hacks?",
    "My wallet got drained after signing a permit, what can I do?",
    "Lazarus Group behind $1.3B of 2024 thefts, Chainalysis says",
    "Radiant Capital compensates users after October exploit",
    "Cetus relaunches pools after exploit, reimburses LPs",
    "Exchange hack rumors send Bitcoin lower",
    "Introducing Chainalysis Hexagate integrations for exchanges",
    "Thanks to everyone who joined our AMA on wallet security today!",
    "US charges two men over $25M Ethereum MEV exploit",
]


@pytest.mark.parametrize(("title", "protocol"), INCIDENTS)
def test_incident_titles_name_the_attacked_project(title: str, protocol: str | None) -> None:
    kept = is_incident(title) and extract_protocol(title) is not None
    if protocol is None:
        assert not kept, title
    else:
        assert is_incident(title), title
        assert extract_protocol(title) == protocol


@pytest.mark.parametrize("title", NOT_INCIDENTS)
def test_other_titles_are_dropped(title: str) -> None:
    kept = is_incident(title) and extract_protocol(title) is not None
    assert not kept, title


def test_the_title_lists_are_large_enough() -> None:
    assert len(INCIDENTS) + len(NOT_INCIDENTS) >= 40
    assert sum(p is not None for _, p in INCIDENTS) >= 25 and len(NOT_INCIDENTS) >= 20


def test_court_titles_are_kept_only_for_court_sources_and_need_a_crypto_word() -> None:
    title = "Hacker Charged With Exploiting Mango Markets In $110 Million Scheme"
    assert not is_incident(title)
    assert is_incident(title, "a decentralized cryptocurrency exchange", legal_ok=True)
    assert not is_incident("Pharmacist Charged With Hacking Hospital Records", "patients", legal_ok=True)
    assert extract_protocol(title) == "Mango Markets"


@pytest.mark.parametrize(
    ("text", "usd", "written"),
    [
        ("Cetus exploited for $223M", 223e6, "$223M"),
        ("lost about $1.46 billion in ETH", 1.46e9, "$1.46 billion"),
        ("~$9.5M loss", 9.5e6, "$9.5M"),
        ("drained 4,200,000 USDC from the vault", 4.2e6, "4,200,000 USDC"),
        ("stole 3,761 wstETH", None, None),  # a token amount is not priced here
        ("a $500 test", None, None),  # below $1,000 is noise (fees, examples)
    ],
)
def test_amount_is_the_first_usd_figure(text: str, usd: float | None, written: str | None) -> None:
    assert extract_amount(text) == (usd, written)


def test_chain_comes_from_explorer_links_then_one_unambiguous_mention() -> None:
    assert extract_chain("exploited on Ethereum", ["https://arbiscan.io/tx/0x" + "a" * 64]) == "arbitrum"
    assert extract_chain("The lending protocol lost funds on Arbitrum") == "arbitrum"
    assert extract_chain("Protocol: KiloEx\nChain: Base\nLoss: $7.5M") == "base"
    assert extract_chain("drained on the Base network") == "base"
    assert extract_chain("the base rate of attacks") is None  # lower-case "base" is a word, not the chain
    assert extract_chain("bridged from Ethereum to Solana") is None  # two chains: no guess


def test_every_named_chain_in_order_explorer_links_first() -> None:
    assert chains_named("minted on BSC after a peer was set on Ethereum") == ("bsc", "ethereum")
    assert chains_named("exploited on Ethereum and UniChain") == ("ethereum", "unichain")
    assert chains_named("a DeFi protocol on Sui", ["https://suiscan.xyz/mainnet/account/0x01"]) == ("sui",)
    assert chains_named("built on the Core DAO blockchain") == ("core",)
    assert chains_named("The PulseChain-based project") == ("pulsechain",)
    assert chains_named("on BSC", ["https://etherscan.io/tx/0x" + "a" * 64]) == ("ethereum", "bsc")
    assert chains_named("swapped 1,636 ETH and 21,770 SOL; the core team") == ()  # assets and words, not chains


def test_facts_of_an_alert_post() -> None:
    tx = "0x6b378c84aa57097fb5845f285476e33d6832b8090d36d02fe0e1aed909228edd"
    text = (
        "Protocol: KiloEx\nChain: Base\nLoss: ~$7.5M\n"
        "Attacker: 0x00FA0B5fB1A4C9f7C0c4e9B8d1F7A3b2C5D6E7F8 Tx: https://basescan.org/tx/" + tx
    )
    facts = extract("🚨 Exploit alert", text)
    assert facts is not None
    assert (facts.protocol, facts.chain, facts.amount_usd) == ("KiloEx", "base", 7.5e6)
    assert facts.tx_hashes == (tx,)
    assert facts.attacker == "0x00FA0B5fB1A4C9f7C0c4e9B8d1F7A3b2C5D6E7F8"


def test_a_bare_64_hex_value_is_a_tx_hash_only_when_called_one() -> None:
    sui_address = "0x" + "e0279b6e" * 8
    facts = extract("Cetus exploited for $223M", f"Attacker: {sui_address}")
    assert facts is not None and facts.tx_hashes == () and facts.attacker is None
    facts = extract("Cetus exploited for $223M", f"Attack tx: {sui_address}")
    assert facts is not None and facts.tx_hashes == (sui_address,)


def test_category_is_read_only_from_strong_words() -> None:
    def category(title: str, text: str = "") -> str:
        facts = extract(title, text)
        assert facts is not None
        return facts.category

    assert category("KiloEx loses $7.5M in oracle manipulation attack") == "price_oracle"
    assert category("Zoth exploited for $8.4M", "the admin private key was compromised") == "private_key"
    assert category("GMX V1 exploited for $42M", "a re-entrancy in the OrderBook") == "reentrancy"
    assert category("Acme exploited for $1M", "the attacker checked the balance and claimed fees") == "other"


def test_stated_date_prefers_the_incident_date_within_the_look_back() -> None:
    published = datetime(2023, 4, 6, 15, 0, tzinfo=UTC)
    text = "On March 13, 2023, Euler Finance was exploited. Its token launched on December 1, 2021."
    assert stated_date(text, published, timedelta(days=60)) == datetime(2023, 3, 13, tzinfo=UTC)
    assert stated_date(text, published, timedelta(days=3 * 365)) == datetime(2021, 12, 1, tzinfo=UTC)
    assert stated_date("no date here", published, timedelta(days=60)) is None


def test_incident_report_times_and_reference() -> None:
    report = incident_report(
        "cointelegraph",
        "https://cointelegraph.com/news/x",
        "Euler Finance exploited for $197M",
        "On March 13, 2023, the lending protocol on Ethereum lost funds.",
        "Wed, 15 Mar 2023 10:00:00 +0000",
        url="https://cointelegraph.com/news/x",
    )
    assert report is not None
    assert report.reported_at == datetime(2023, 3, 15, 10, tzinfo=UTC)
    assert report.timestamp == datetime(2023, 3, 13, tzinfo=UTC)
    assert (report.protocol, report.chain, report.amount_usd) == ("Euler Finance", "ethereum", 197e6)
    assert incident_report("x", "ref", "Bitcoin price hits new high", "", "2025-01-01T00:00:00Z") is None
    assert incident_report("x", "", "Euler Finance exploited for $197M", "", "2025-01-01T00:00:00Z") is None
