"""Kamiyo's canonical vocabularies: chains and categories.

Every source maps its own words onto these slugs; the API documents them; the dashboard
displays their names. Aliases are matched after lower-casing and stripping spaces, dashes
and underscores (see `kamiyo.vocabulary.normalise`).
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
    # A keyless public JSON-RPC endpoint (EVM chains), used unless KAMIYO_RPC_URLS names another.
    rpc: str | None = None


CHAINS: dict[str, Chain] = {
    c.slug: c
    for c in (
        Chain(
            "ethereum",
            "Ethereum",
            "https://etherscan.io",
            "evm",
            ("eth", "mainnet", "erc20"),
            rpc="https://ethereum-rpc.publicnode.com",
        ),
        Chain(
            "bsc",
            "BNB Smart Chain",
            "https://bscscan.com",
            "evm",
            ("binance", "bnb", "bnbchain", "binancesmartchain", "bep20"),
            rpc="https://bsc-rpc.publicnode.com",
        ),
        Chain(
            "arbitrum",
            "Arbitrum",
            "https://arbiscan.io",
            "evm",
            ("arbitrumone", "arb"),
            rpc="https://arbitrum-one-rpc.publicnode.com",
        ),
        Chain(
            "optimism",
            "Optimism",
            "https://optimistic.etherscan.io",
            "evm",
            ("op", "opmainnet"),
            rpc="https://optimism-rpc.publicnode.com",
        ),
        Chain(
            "polygon",
            "Polygon",
            "https://polygonscan.com",
            "evm",
            ("matic", "polygonpos"),
            rpc="https://polygon-bor-rpc.publicnode.com",
        ),
        Chain(
            "avalanche",
            "Avalanche",
            "https://snowtrace.io",
            "evm",
            ("avax", "avalanchec", "avaxc"),
            rpc="https://avalanche-c-chain-rpc.publicnode.com",
        ),
        Chain("fantom", "Fantom", "https://ftmscan.com", "evm", ("ftm",), rpc="https://fantom-rpc.publicnode.com"),
        Chain("base", "Base", "https://basescan.org", "evm", (), rpc="https://base-rpc.publicnode.com"),
        Chain(
            "gnosis",
            "Gnosis",
            "https://gnosisscan.io",
            "evm",
            ("xdai", "gnosischain"),
            rpc="https://gnosis-rpc.publicnode.com",
        ),
        Chain(
            "cronos", "Cronos", "https://cronoscan.com", "evm", ("cro",), rpc="https://cronos-evm-rpc.publicnode.com"
        ),
        Chain(
            "moonbeam", "Moonbeam", "https://moonscan.io", "evm", ("glmr",), rpc="https://moonbeam-rpc.publicnode.com"
        ),
        Chain(
            "moonriver",
            "Moonriver",
            "https://moonriver.moonscan.io",
            "evm",
            ("movr",),
            rpc="https://rpc.api.moonriver.moonbeam.network",
        ),
        Chain("celo", "Celo", "https://celoscan.io", "evm", (), rpc="https://forno.celo.org"),
        Chain("linea", "Linea", "https://lineascan.build", "evm", (), rpc="https://rpc.linea.build"),
        Chain("scroll", "Scroll", "https://scrollscan.com", "evm", (), rpc="https://rpc.scroll.io"),
        Chain(
            "zksync",
            "zkSync Era",
            "https://era.zksync.network",
            "evm",
            ("zksyncera", "era"),
            rpc="https://mainnet.era.zksync.io",
        ),
        Chain("mantle", "Mantle", "https://mantlescan.xyz", "evm", (), rpc="https://rpc.mantle.xyz"),
        Chain("blast", "Blast", "https://blastscan.io", "evm", (), rpc="https://rpc.blast.io"),
        Chain(
            "metis",
            "Metis",
            "https://andromeda-explorer.metis.io",
            "evm",
            ("metisandromeda",),
            rpc="https://andromeda.metis.io/?owner=1088",
        ),
        Chain("harmony", "Harmony", "https://explorer.harmony.one", "evm", ("one",), rpc="https://api.harmony.one"),
        Chain("aurora", "Aurora", "https://aurorascan.dev", "evm", (), rpc="https://mainnet.aurora.dev"),
        Chain("kava", "Kava", "https://kavascan.com", "evm", (), rpc="https://evm.kava.io"),
        Chain("heco", "HECO", "https://hecoinfo.com", "evm", ("huobi", "hecochain")),
        Chain("okc", "OKC", "https://www.oklink.com/okc", "evm", ("okex", "okexchain", "oec")),
        Chain(
            "polygon_zkevm",
            "Polygon zkEVM",
            "https://zkevm.polygonscan.com",
            "evm",
            ("polygonzkevm", "zkevm"),
            rpc="https://zkevm-rpc.com",
        ),
        Chain("sei", "Sei", "https://seitrace.com", "evm", (), rpc="https://evm-rpc.sei-apis.com"),
        Chain("berachain", "Berachain", "https://berascan.com", "evm", ("bera",), rpc="https://rpc.berachain.com"),
        Chain("sonic", "Sonic", "https://sonicscan.org", "evm", (), rpc="https://rpc.soniclabs.com"),
        Chain(
            "hyperevm",
            "HyperEVM",
            "https://hyperevmscan.io",
            "evm",
            ("hyperliquid", "hyperliquidevm", "hyperliquidl1"),
            rpc="https://rpc.hyperliquid.xyz/evm",
        ),
        Chain("unichain", "Unichain", "https://uniscan.xyz", "evm", (), rpc="https://mainnet.unichain.org"),
        Chain("mode", "Mode", "https://modescan.io", "evm", (), rpc="https://mainnet.mode.network"),
        Chain(
            "core", "Core", "https://scan.coredao.org", "evm", ("coredao", "corechain"), rpc="https://rpc.coredao.org"
        ),
        Chain("pulsechain", "PulseChain", "https://scan.pulsechain.com", "evm", (), rpc="https://rpc.pulsechain.com"),
        Chain("monad", "Monad", "https://monadscan.com", "evm", ()),
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
