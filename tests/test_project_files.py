"""The project's licence and notices: Apache-2.0 for the code, the bundled data's own NOTICE kept beside it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "kamiyo" / "data" / "defihacklabs"


def test_the_project_is_apache_2_and_keeps_the_data_notice() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text and "END OF TERMS AND CONDITIONS" in text
    )
    notice = (ROOT / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "src/kamiyo/data/defihacklabs/NOTICE" in notice
    data_notice = (DATA / "NOTICE").read_text()
    assert "DeFiHackLabs" in data_notice and "Apache License, Version 2.0" in data_notice
    assert (DATA / "LICENSE").read_text() == text  # the data is under the same licence, text for text


def test_the_package_metadata_says_so() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert {"LICENSE", "NOTICE", "src/kamiyo/data/defihacklabs/NOTICE"} <= set(project["license-files"])
    assert all((ROOT / name).is_file() for name in project["license-files"])
