"""Chainalysis blog: RSS 2.0 feed `https://www.chainalysis.com/feed/`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "chainalysis_blog",
    "Chainalysis blog",
    "https://www.chainalysis.com/blog/",
    "https://www.chainalysis.com/feed/",
    "Chainalysis research posts about a specific hack or theft.",
)
