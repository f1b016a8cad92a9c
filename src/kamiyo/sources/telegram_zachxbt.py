"""ZachXBT's investigations channel, public preview `https://t.me/s/investigations`; see `kamiyo.sources._telegram`."""

from kamiyo.sources._telegram import telegram_source

SOURCE = telegram_source(
    "telegram_zachxbt",
    "investigations",
    "ZachXBT Investigations (Telegram)",
    "On-chain investigations: thefts, drains and exploits with attacker addresses; other posts are filtered out.",
)
