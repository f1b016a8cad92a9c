"""Immunefi (Medium): RSS 2.0 feed `https://medium.com/feed/immunefi`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "immunefi",
    "Immunefi (Medium)",
    "https://medium.com/immunefi",
    "https://medium.com/feed/immunefi",
    "Immunefi's publication (hack analyses); bounty and product posts are filtered out.",
)
