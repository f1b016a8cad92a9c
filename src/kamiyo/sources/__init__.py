"""The registry of sources: a plain dict from stable slug to the source's full declaration.

Every module in this package that defines a module-level `SOURCE = Source(...)` is registered,
so adding a source is adding one file (see README.md in this folder). Modules without `SOURCE`
(base, http, html) are helpers.
"""

from __future__ import annotations

import importlib
import pkgutil

from kamiyo.sources.base import Source, SourceInfo

__all__ = ["REGISTRY", "Source", "SourceInfo", "get_source"]


def _discover() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        source = getattr(module, "SOURCE", None)
        if source is None:
            continue
        if not isinstance(source, Source):
            raise TypeError(f"{module.__name__}.SOURCE must be a kamiyo.sources.base.Source")
        if source.name in found:
            raise ValueError(f"two sources are named {source.name!r}")
        found[source.name] = source
    return found


REGISTRY: dict[str, Source] = _discover()


def get_source(name: str) -> Source:
    """The declaration of `name`; KeyError with the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
