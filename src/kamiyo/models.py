"""Imports every domain's models so that `Base.metadata` is complete (Alembic, tests)."""


def import_all_models() -> None:
    from kamiyo.accounts import models as _accounts  # noqa: F401
    from kamiyo.billing import models as _billing  # noqa: F401
    from kamiyo.delivery import models as _delivery  # noqa: F401
    from kamiyo.exploits import evidence_models as _evidence  # noqa: F401
    from kamiyo.exploits import models as _exploits  # noqa: F401
    from kamiyo.ingest import models as _ingest  # noqa: F401
    from kamiyo.submissions import models as _submissions  # noqa: F401
