"""The registry of sources: a plain dict from stable slug to the source's declaration."""

from __future__ import annotations

from kamiyo.sources.base import SourceInfo

REGISTRY: dict[str, SourceInfo] = {
    info.name: info
    for info in (
        SourceInfo(
            name="defihacklabs",
            title="DeFiHackLabs",
            url="https://github.com/SunWeb3Sec/DeFiHackLabs",
            kind="markdown",
            cadence_seconds=6 * 3600,
        ),
    )
}
