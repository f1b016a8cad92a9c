"""The Block: RSS 2.0 feed `https://www.theblock.co/rss.xml`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "theblock",
    "The Block",
    "https://www.theblock.co",
    "https://www.theblock.co/rss.xml",
    "Crypto news; items about a hack, exploit, drain or rug pull of a named project.",
)
