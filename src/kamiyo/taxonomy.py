"""Kamiyo's canonical vocabularies: chains and categories.

Every source maps its own words onto these slugs; the API documents them; the dashboard
displays their names. Aliases are matched after lower-casing and stripping spaces, dashes
and underscores (see `kamiyo.ingest.normalise`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chain:
    slug: str
    name: str
    explorer: str | None  # base URL of the main block explorer, tx at f"{explorer}/tx/{hash}"
    family: str  # evm | solana | bitcoin | tron | other: decides tx hash validation
    aliases: tuple[str, ...] = ()


CHAINS: dict[str, Chain] = {
    c.slug: c
    for c in (
        Chain("ethereum", "Ethereum", "https://etherscan.io", "evm", ("eth", "mainnet", "erc20")),
        Chain(
            "bsc",
            "BNB Smart Chain",
            "https://bscscan.com",
            "evm",
            ("binance", "bnb", "bnbchain", "binancesmartchain", "bep20"),
        ),
        Chain("arbitrum", "Arbitrum", "https://arbiscan.io", "evm", ("arbitrumone", "arb")),
        Chain("optimism", "Optimism", "https://optimistic.etherscan.io", "evm", ("op", "opmainnet")),
        Chain("polygon", "Polygon", "https://polygonscan.com", "evm", ("matic", "polygonpos")),
        Chain("avalanche", "Avalanche", "https://snowtrace.io", "evm", ("avax", "avalanchec", "avaxc")),
        Chain("fantom", "Fantom", "https://ftmscan.com", "evm", ("ftm",)),
        Chain("base", "Base", "https://basescan.org", "evm", ()),
        Chain("gnosis", "Gnosis", "https://gnosisscan.io", "evm", ("xdai", "gnosischain")),
        Chain("cronos", "Cronos", "https://cronoscan.com", "evm", ("cro",)),
        Chain("moonbeam", "Moonbeam", "https://moonscan.io", "evm", ("glmr",)),
        Chain("moonriver", "Moonriver", "https://moonriver.moonscan.io", "evm", ("movr",)),
        Chain("celo", "Celo", "https://celoscan.io", "evm", ()),
        Chain("linea", "Linea", "https://lineascan.build", "evm", ()),
        Chain("scroll", "Scroll", "https://scrollscan.com", "evm", ()),
        Chain("zksync", "zkSync Era", "https://era.zksync.network", "evm", ("zksyncera", "era")),
        Chain("mantle", "Mantle", "https://mantlescan.xyz", "evm", ()),
        Chain("blast", "Blast", "https://blastscan.io", "evm", ()),
        Chain("metis", "Metis", "https://andromeda-explorer.metis.io", "evm", ("metisandromeda",)),
        Chain("harmony", "Harmony", "https://explorer.harmony.one", "evm", ("one",)),
        Chain("aurora", "Aurora", "https://aurorascan.dev", "evm", ()),
        Chain("kava", "Kava", "https://kavascan.com", "evm", ()),
        Chain("heco", "HECO", "https://hecoinfo.com", "evm", ("huobi", "hecochain")),
        Chain("okc", "OKC", "https://www.oklink.com/okc", "evm", ("okex", "okexchain", "oec")),
        Chain(
            "polygon_zkevm",
            "Polygon zkEVM",
            "https://zkevm.polygonscan.com",
            "evm",
            ("polygonzkevm", "zkevm"),
        ),
        Chain("sei", "Sei", "https://seitrace.com", "evm", ()),
        Chain("berachain", "Berachain", "https://berascan.com", "evm", ("bera",)),
        Chain("sonic", "Sonic", "https://sonicscan.org", "evm", ()),
        Chain("hyperevm", "HyperEVM", "https://hyperevmscan.io", "evm", ("hyperliquid", "hyperliquidevm")),
        Chain("unichain", "Unichain", "https://uniscan.xyz", "evm", ()),
        Chain("mode", "Mode", "https://modescan.io", "evm", ()),
        Chain("solana", "Solana", "https://solscan.io", "solana", ("sol",)),
        Chain("bitcoin", "Bitcoin", "https://mempool.space", "bitcoin", ("btc",)),
        Chain("tron", "Tron", "https://tronscan.org/#", "tron", ("trx",)),
        Chain("near", "NEAR", "https://nearblocks.io", "other", ()),
        Chain("aptos", "Aptos", "https://explorer.aptoslabs.com", "other", ()),
        Chain("sui", "Sui", "https://suiscan.xyz/mainnet", "other", ()),
        Chain("cosmos", "Cosmos", "https://www.mintscan.io/cosmos", "other", ("cosmoshub", "atom")),
        Chain("terra", "Terra", "https://finder.terra.money", "other", ("terraclassic", "luna")),
        Chain("cardano", "Cardano", "https://cardanoscan.io", "other", ("ada",)),
        Chain("ton", "TON", "https://tonviewer.com", "other", ("toncoin",)),
        Chain("starknet", "Starknet", "https://starkscan.co", "other", ()),
        Chain("multichain", "Multiple chains", None, "other", ("multi", "multiple", "crosschain")),
        Chain("other", "Other", None, "other", ("unknown",)),
    )
}


@dataclass(frozen=True, slots=True)
class Category:
    slug: str
    name: str
    description: str


CATEGORIES: dict[str, Category] = {
    c.slug: c
    for c in (
        Category("flash_loan", "Flash loan", "Attack financed and executed within one flash-loaned transaction."),
        Category(
            "price_oracle",
            "Price oracle manipulation",
            "A manipulable price source was moved to mis-value assets.",
        ),
        Category("reentrancy", "Reentrancy", "A contract was re-entered before it updated its state."),
        Category(
            "access_control",
            "Access control",
            "A privileged function lacked or bypassed its permission check.",
        ),
        Category(
            "private_key",
            "Private key compromise",
            "Keys of a wallet, deployer or multisig signer were stolen.",
        ),
        Category("bridge", "Bridge", "A cross-chain bridge's verification or custody was broken."),
        Category("rug_pull", "Rug pull", "Insiders drained or abandoned the project with users' funds."),
        Category("logic_error", "Logic error", "A flaw in business logic, accounting or input validation."),
        Category("rounding", "Rounding / precision", "Arithmetic precision or rounding was abused."),
        Category("arbitrary_call", "Arbitrary call", "A contract executed attacker-chosen calls or calldata."),
        Category("governance", "Governance attack", "Voting or proposal mechanics were abused."),
        Category(
            "phishing",
            "Phishing / social engineering",
            "Users or operators were tricked into signing or sending.",
        ),
        Category(
            "frontend",
            "Front-end / DNS / supply chain",
            "The web front end, DNS or a dependency was compromised.",
        ),
        Category(
            "exchange_hack",
            "Exchange hack",
            "A centralised exchange or custodian's hot wallets were drained.",
        ),
        Category("other", "Other", "Not classified, or none of the above."),
    )
}

# What was attacked (`target_type`), as the pages name the common ones; the API accepts any such slug.
TARGET_TYPES: dict[str, str] = {
    "defi": "DeFi protocol",
    "bridge": "Bridge",
    "cefi": "Exchange or custodian (CeFi)",
}
