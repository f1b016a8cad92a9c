"""@TenArmorAlert on X (X API v2 recent search, key `X_BEARER_TOKEN`); see `kamiyo.sources._xapi`."""

from kamiyo.sources._xapi import x_source

SOURCE = x_source("x_tenarmor", "TenArmorAlert", "TenArmor Alert on X")
