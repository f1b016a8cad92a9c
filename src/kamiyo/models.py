"""Imports every domain's models so that `Base.metadata` is complete (Alembic, tests)."""


def import_all_models() -> None:
    from kamiyo.exploits import models as _exploits  # noqa: F401
    from kamiyo.ingest import models as _ingest  # noqa: F401
