"""CryptoSlate: RSS 2.0 feed `https://cryptoslate.com/feed/`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "cryptoslate",
    "CryptoSlate",
    "https://cryptoslate.com",
    "https://cryptoslate.com/feed/",
    "Crypto news; items about a hack, exploit, drain or rug pull of a named project.",
)
