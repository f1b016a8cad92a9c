"""TRM Labs blog: RSS 2.0 feed `https://www.trmlabs.com/blog/rss.xml`; hack-classifier filtered."""

from kamiyo.sources._rss import rss_source

SOURCE = rss_source(
    "trm_blog",
    "TRM Labs blog",
    "https://www.trmlabs.com/blog",
    "https://www.trmlabs.com/blog/rss.xml",
    "TRM Labs research posts about a specific hack or theft.",
)
