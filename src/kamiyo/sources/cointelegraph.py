"""Cointelegraph: RSS 2.0 feed `https://cointelegraph.com/rss`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "cointelegraph",
    "Cointelegraph",
    "https://cointelegraph.com",
    "https://cointelegraph.com/rss",
    "Crypto news; items about a hack, exploit, drain or rug pull of a named project.",
)
