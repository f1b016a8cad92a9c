"""Normalisation helpers, checked against the shapes that occur in real source data.

The `parse_usd` table below is taken from the `### Lost:` lines of the six DeFiHackLabs READMEs
and the `total_lost` values of poc_keyinfo.json (commit b3719ce7); every one of the ~1,000
distinct strings there was reviewed, these are the representative shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kamiyo.vocabulary.normalise import (
    CATEGORY_RULES,
    as_utc,
    chain_from_url,
    normalise_address,
    normalise_category,
    normalise_chain,
    normalise_tx_hash,
    parse_usd,
    protocol_key,
)
from kamiyo.vocabulary.taxonomy import CATEGORIES, CHAINS

EVM_TX = "0x9dbf0326a03a2a3719c27be4fa69aacc9857fd231a8d9dcaede4bb083def75ec"  # Parity multisig 2017
SOLANA_SIG = "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"
BTC_TX = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
EVM_ADDRESS = "0xB3764761E297D6f121e79C32A65829Cd1dDb4D32"  # Parity multisig attacker
SPL_TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"

# (Lost text as written, expected USD). None = no USD value can be read without pricing tokens.
REAL_LOST_TEXTS: list[tuple[str, float | None]] = [
    # plain dollars, with K/M/million suffixes
    ("$1450", 1450.0),  # 2022 DFS
    ("$1.5M", 1_500_000.0),  # 2022 Rubic
    ("$170k", 170_000.0),  # 2022 Defrost
    ("$8.2 million", 8_200_000.0),  # 2021 Visor Finance
    ("$.8 million", 800_000.0),  # 2021 Chainswap (leading decimal point)
    ("$ 24k", 24_000.0),
    ("$12.9 K", 12_900.0),  # space before the suffix
    ("$~11M", 11_000_000.0),
    ("~ $10.1K", 10_100.0),
    ("over $21 Million", 21_000_000.0),
    ("11 Million $", 11_000_000.0),
    ("~3M$", 3_000_000.0),
    (">$3.3M", 3_300_000.0),
    # USD / US$ written after the number
    ("9M USD", 9_000_000.0),  # 2025 yETH
    ("120M USD", 120_000_000.0),  # 2025 BalancerV2
    ("~$31354 USD$", 31_354.0),
    ("~1,450 US$", 1_450.0),
    ("500,000+ USD", 500_000.0),
    (">10700USD(WINR token)", 10_700.0),
    ("~@2M US$", 2_000_000.0),
    ("BEUR stablecoin and ALBT token (~88MUS$)", 88_000_000.0),
    # bare numbers: with a K/M/B suffix they are dollars
    ("~320K", 320_000.0),  # 2023 ChannelsFinance
    ("365K", 365_000.0),  # 2021 Ploutoz
    ("1.5B", 1_500_000_000.0),  # 2025 Bybit
    ("318.9 k", 318_900.0),  # 2024 Moonhacker (two spaces after "Lost:" in the README)
    ("≈135k", 135_000.0),
    ("~ 353.8 K (17814,86 USDC, 1,4085 WBTC, 119,87 WETH)", 353_800.0),
    ("52000", 52_000.0),  # the only number in the text
    # decimal commas
    ("~1,24M", 1_240_000.0),  # 2023 Telcoin
    ("~4,5M", 4_500_000.0),  # 2024 RadiantCapital
    ("~2,5K USDC", 2_500.0),
    # USD stablecoins count at par
    ("~29,984.27 USDC", 29_984.27),  # 2026 Atomic
    ("~578K USDT", 578_000.0),
    ("11k BSC-USD", 11_000.0),
    ("~309k USDs (Stablecoin)", 309_000.0),
    ("~10 K usdt", 10_000.0),
    ("~1K $DAI", 1_000.0),
    ("$2k $USDT", 2_000.0),
    ("~394,742.852305 USDC.e (+ 67.5743 WETH drained from victim inventory)", 394_742.85),
    ("~573,034.79 USDC net attacker gain (LpdFi paid out ~700,535 USDC + 4,059,427 LPD)", 573_034.79),
    ("205K USDT + 36 BNB", 205_000.0),  # leading USD part taken
    ("~$17,743.91 USDC + ~0.0072 WETH (plus 9 illiquid launch memecoin positions)", 17_743.91),
    # an explicit dollar estimate wins over token amounts and over stablecoin amounts
    ("153,037 ETH (~$30M)", 30_000_000.0),  # 2017 Parity Multisig
    ("~112,976.12 USDC (~$118.7K reported)", 118_700.0),  # 2026 FoxLpBondsPool
    ("~32.36 BNB (~$21.5K)", 21_500.0),  # 2026 AIC
    ("178 BNB (~45,715 US$)", 45_715.0),
    ("1,048.1 ETH + 400,000 DAI (~$3.00M)", 3_000_000.0),
    ("4.1M VUSD, 7.35M XCN, 5K DAI, 0.23 WBTC, 50K USDT (>$3.8M USD)", 3_800_000.0),
    ("~ 4,953 USDT + 0.76 WBTC ($85.7K)", 85_700.0),
    ("~9.6K USD (~$8,174 recovered value on-chain)", 9_600.0),  # first explicit amount
    ("~$2.1M (rescued ~$2M by whitehat)", 2_100_000.0),
    ("~250k US$ which resulted in ~50k profit", 250_000.0),
    ("Multiple ERC-20 Tokens (~152M US$)", 152_000_000.0),  # 2022 Nomad Bridge; "ERC-20" is no amount
    ("~$1.6M(https://debank.com/profile/0x0cfc28d16d07219249c6d6d6ae24e7132ee4caa7, >200k USD)", 1_600_000.0),
    # token amounts only: no USD value
    ("~15.32 ETH", None),  # 2022 JAY
    ("514k ETH", None),  # 2017 Parity kill
    ("8540ETH", None),  # 2026 Truebit
    ("1.7eth", None),
    ("155 $ETH", None),  # "$" glued to a symbol is a ticker
    ("~$2 $BNB", None),
    ("~$10 ETH", None),  # "$" before a token amount is still a token amount
    ("~$3.2K MATIC", None),
    ("5,124,773.63 ZKP + 0.1233 ETH (Panther Base pre-launch deployment, not live user funds)", None),
    ("127.86K mOCEAN", None),
    ("53.2445 WBTC and 99,976.29 USDT", None),  # the leading (larger) leg is not USD
    ("1.921686798824852706 WBNB and 46.474821659738262175 BUSD", None),  # "BUSD" is no billion
    ("20 million Optimism (OP) tokens returned 17 million of them", None),
    ("200 land NFT => 28,601 $XQJ  => 149,616 $BUSD", None),
    ("2_517_438_179_912_631_607_253_979 WSM ≈ 18K", None),
    ("Bad Guys by RPF(400 NFTs)", None),
    ("1 NFT (ID: 4689)", None),
    # no amount, no loss, absurd
    ("N/A (purely educational; worst-case impact would have been ~$2M)", None),
    ("unknown", None),
    ("Unclear", None),
    ("All funds returned", None),
    ("0 (Disclosure only; no exploit occurred)", 0.0),
    ("996B (CGT token)", None),  # > 1e11
    ("-$5M", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), REAL_LOST_TEXTS)
def test_parse_usd_real_lost_texts(text: str, expected: float | None) -> None:
    assert parse_usd(text) == expected


def test_parse_usd_table_is_large_enough() -> None:
    assert len(REAL_LOST_TEXTS) >= 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("1.2 million", 1_200_000.0),
        ("$1.2 million", 1_200_000.0),
        ("1.2 million USD", 1_200_000.0),
        ("$2.5bn", 2_500_000_000.0),
        ("3 thousand USD", 3_000.0),
        ("$150,000,000,000", None),  # > 1e11
        ("1,000 FDUSD", 1_000.0),
        ("1,000 USD1", 1_000.0),
        ("1,000 USDe", 1_000.0),
    ],
)
def test_parse_usd_more_shapes(text: str | None, expected: float | None) -> None:
    assert parse_usd(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ethereum", "ethereum"),
        ("Ethereum", "ethereum"),
        ("mainnet", "ethereum"),  # DeFiHackLabs createSelectFork alias
        ("Ethereum Mainnet", "ethereum"),
        ("bsc", "bsc"),
        ("BNB Smart Chain", "bsc"),
        ("BNB-Chain", "bsc"),
        ("BSC_ARCHIVE", "bsc"),  # fork aliases seen in poc_keyinfo.json
        ("BSC_ARCHIVE_RPC", "bsc"),
        ("ARBITRUM_ARCHIVE", "arbitrum"),
        ("arbitrum", "arbitrum"),
        ("Arbitrum One", "arbitrum"),
        ("base", "base"),
        ("optimism", "optimism"),
        ("polygon", "polygon"),
        ("avalanche", "avalanche"),
        ("Avalanche-C", "avalanche"),
        ("fantom", "fantom"),
        ("sonic", "sonic"),  # a slug beats Fantom's old "sonic" alias
        ("blast", "blast"),
        ("linea", "linea"),
        ("gnosis", "gnosis"),
        ("moonriver", "moonriver"),
        ("mantle", "mantle"),
        ("zksync", "zksync"),
        ("zkSync Era", "zksync"),
        ("sei", "sei"),
        ("polygon_zkevm", "polygon_zkevm"),
        ("CORE", "core"),  # DeFiLlama's name for Core DAO's chain
        ("Core DAO", "core"),
        ("PulseChain", "pulsechain"),
        (1116, "core"),
        (369, "pulsechain"),
        (143, "monad"),
        ("Hyperliquid L1", "hyperevm"),  # DeFiLlama's name
        ("56", "bsc"),
        (56, "bsc"),
        (1, "ethereum"),
        ("42161", "arbitrum"),
        (8453, "base"),
        ("etherscan.io", "ethereum"),
        ("bscscan.com", "bsc"),
        ("arbiscan.io", "arbitrum"),
        ("basescan.org", "base"),
        ("polygonscan.com", "polygon"),
        ("snowtrace.io", "avalanche"),
        ("ftmscan.com", "fantom"),
        ("optimistic.etherscan.io", "optimism"),
        ("solscan.io", "solana"),
        ("https://www.bscscan.com/address/0x0000000000000000000000000000000000000000", "bsc"),
        ("vm.envString", None),
        ("vm.envOr", None),
        ("Arbitrum Nova", None),
        ("", None),
        (None, None),
        (999_999, None),
    ],
)
def test_normalise_chain(text: str | int | None, expected: str | None) -> None:
    assert normalise_chain(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://etherscan.io/tx/{EVM_TX}", "ethereum"),
        (f"https://optimistic.etherscan.io/tx/{EVM_TX}", "optimism"),
        (f"https://snowscan.xyz/tx/{EVM_TX}", "avalanche"),
        (f"https://explorer.zksync.io/tx/{EVM_TX}", "zksync"),
        (f"https://mantlescan.info/address/{EVM_ADDRESS}", "mantle"),
        # multi-chain tools name the chain in the path (as in poc_keyinfo.json)
        (f"https://app.blocksec.com/explorer/tx/bsc/{EVM_TX}", "bsc"),
        (f"https://explorer.phalcon.xyz/tx/eth/{EVM_TX}?line=0", "ethereum"),
        (f"https://phalcon.blocksec.com/tx/polygon/{EVM_TX}", "polygon"),
        (f"https://skylens.certik.com/tx/arb/{EVM_TX}?active_tab=events", "arbitrum"),
        (f"https://ethtx.info/mainnet/{EVM_TX}", "ethereum"),
        (f"https://dashboard.tenderly.co/tx/bnb/{EVM_TX}", "bsc"),
        ("https://x.com/peckshield/status/1463113809111896065", None),
        ("https://testnet.bscscan.com/tx/0x00", None),
        ("not a url", None),
        (None, None),
    ],
)
def test_chain_from_url(url: str | None, expected: str | None) -> None:
    assert chain_from_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # real DeFiHackLabs attack types
        ("Insufficient validation + flashloan", "flash_loan"),
        ("Reentrancy", "reentrancy"),
        ("Read-Only-Reentrancy", "reentrancy"),
        ("Flashloan Attack + Reentrancy", "reentrancy"),
        ("Price Manipulation", "price_oracle"),
        ("Flashloan & Price Oracle Manipulation", "price_oracle"),
        ("Lack of Slippage Protection", "price_oracle"),
        ("Access Control", "access_control"),
        ("lack-of-access-control", "access_control"),
        ("Bad Access Controal", "access_control"),
        ("Business Logic Flaw & Access Control", "access_control"),
        ("Signature Replay", "access_control"),
        ("delegatecall to unprotected initWallet", "access_control"),
        ("'Accidentally Killed It'", "access_control"),
        ("Private key compromised", "private_key"),
        ("(I) Lost keys and minting (II) Vulnerable emergencyWithdraw", "private_key"),
        ("Business Logic Flaw", "logic_error"),
        ("Bussiness Logic Flaw", "logic_error"),
        ("Reflection token", "logic_error"),
        ("Arbitrary External Call Vulnerability", "arbitrary_call"),
        ("Arbitary External Call", "arbitrary_call"),
        ("Donate Inflation ExchangeRate && Rounding Error", "rounding"),
        ("Precission Loss", "rounding"),
        ("Integer Overflow", "rounding"),
        ("CompoundV2 Inflation Attack", "rounding"),
        ("Vault Share Rounding Manipulation", "rounding"),
        ("DAO + Flashloan", "governance"),
        ("Storage Collision & Malicious Proposal", "governance"),
        ("Bridge, getting around modifier through cross-chain message", "bridge"),
        ("Phantom CCTP deposit via unverified message attestation", "bridge"),
        ("Phishing attack", "phishing"),
        ("Rug Pull", "rug_pull"),
        ("Malicious Unlimted Minting (Rugged)", "rug_pull"),
        ("Owner Backdoor LP Burn + Price Manipulation", "rug_pull"),
        ("Vulnerability Disclosure", "other"),
        # slugs and other sources' wording
        ("flash_loan", "flash_loan"),
        ("Front-end compromise", "frontend"),
        ("DNS hijack", "frontend"),
        (None, "other"),
        ("", "other"),
    ],
)
def test_normalise_category(text: str | None, expected: str) -> None:
    assert normalise_category(text) == expected


def test_category_rules_use_canonical_slugs() -> None:
    assert {slug for slug, _ in CATEGORY_RULES} <= set(CATEGORIES)
    assert all(normalise_category(slug) == slug for slug in CATEGORIES)


@pytest.mark.parametrize(
    ("value", "chain", "expected"),
    [
        (EVM_TX, "ethereum", EVM_TX),
        (EVM_TX.upper().replace("0X", "0x"), "bsc", EVM_TX),
        (f"  {EVM_TX}\n", None, EVM_TX),
        (f"https://etherscan.io/tx/{EVM_TX}", "ethereum", EVM_TX),
        (f"https://etherscan.io/tx/{EVM_TX}#eventlog", "ethereum", EVM_TX),
        (f"https://etherscan.io/tx/{EVM_TX}/advanced", None, EVM_TX),
        (f"https://app.blocksec.com/explorer/tx/eth/{EVM_TX}?line=0", "ethereum", EVM_TX),
        (f"https://ethtx.info/mainnet/{EVM_TX}", None, EVM_TX),
        (EVM_TX[:-1], "ethereum", None),
        (EVM_TX[2:], "ethereum", None),  # EVM needs the 0x
        (EVM_TX + "0", "ethereum", None),
        (SOLANA_SIG, "solana", SOLANA_SIG),  # case kept
        (f"https://solscan.io/tx/{SOLANA_SIG}?cluster=mainnet", "solana", SOLANA_SIG),
        (SOLANA_SIG, "ethereum", None),
        (EVM_TX, "solana", None),
        (BTC_TX.upper(), "bitcoin", BTC_TX),
        (BTC_TX, "tron", BTC_TX),
        (f"https://tronscan.org/#/transaction/{BTC_TX}", "tron", BTC_TX),
        ("0x" + BTC_TX, "bitcoin", None),
        (BTC_TX, "ethereum", None),
        (f"https://suiscan.xyz/mainnet/account/{EVM_TX}/activity", "sui", None),  # an account id, not a tx
        (f"https://bscscan.com/address/{EVM_TX[:42]}", None, None),
        ("https://x.com/peckshield/status/1463113809111896065", None, None),
        ("N/A", None, None),
        (None, "ethereum", None),
    ],
)
def test_normalise_tx_hash(value: str | None, chain: str | None, expected: str | None) -> None:
    assert normalise_tx_hash(value, chain) == expected


def test_every_chain_has_a_known_family() -> None:
    assert {c.family for c in CHAINS.values()} <= {"evm", "solana", "bitcoin", "tron", "other"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EVM_ADDRESS, EVM_ADDRESS),  # case kept
        (f"https://etherscan.io/address/{EVM_ADDRESS}#code", EVM_ADDRESS),
        (f"https://bscscan.com/token/{EVM_ADDRESS}?a=0x0", EVM_ADDRESS),
        (SPL_TOKEN, SPL_TOKEN),
        (f"https://solscan.io/account/{SPL_TOKEN}", SPL_TOKEN),
        (EVM_ADDRESS[:-1], None),
        ("0xd9936EA91a461aA4B727a7e0xc47bdd0a852a88a019385ea", None),  # two pasted halves in poc_keyinfo
        ("c0ffeebabe.eth (wihtehat)", None),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_address(value: str | None, expected: str | None) -> None:
    assert normalise_address(value) == expected


def test_protocol_key() -> None:
    assert protocol_key("  Multichain   (Anyswap)\t") == "multichain (anyswap)"
    assert protocol_key("EulerFinance") == protocol_key("eulerfinance")


def test_as_utc() -> None:
    naive = datetime(2023, 3, 13, 8, 50)
    assert as_utc(naive) == datetime(2023, 3, 13, 8, 50, tzinfo=UTC)
    assert as_utc(naive).tzinfo is UTC
    cest = datetime(2023, 3, 13, 10, 50, tzinfo=timezone(timedelta(hours=2)))
    converted = as_utc(cest)
    assert (converted.hour, converted.tzinfo) == (8, UTC)
