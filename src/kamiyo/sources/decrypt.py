"""Decrypt: RSS 2.0 feed `https://decrypt.co/feed`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "decrypt",
    "Decrypt",
    "https://decrypt.co",
    "https://decrypt.co/feed",
    "Crypto news; items about a hack, exploit, drain or rug pull of a named project.",
)
