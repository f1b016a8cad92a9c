"""Defimon Alerts, public preview `https://t.me/s/defimon_alerts`; see `kamiyo.sources._telegram`."""

from kamiyo.sources._telegram import telegram_source

SOURCE = telegram_source(
    "telegram_defimon",
    "defimon_alerts",
    "Defimon Alerts (Telegram)",
    "Automated exploit alerts with chain, loss and transaction links; other posts are filtered out.",
)
