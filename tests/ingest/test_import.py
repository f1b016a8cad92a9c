"""`kamiyo import` and `kamiyo export` through the real console script."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson

ROWS = [
    {
        "protocol": "Euler Finance",
        "chain": "Ethereum",
        "amount_usd": 197000000,
        "timestamp": "2023-03-13T08:50:35Z",
        "category": "flash loan",
        "tx_hash": "0xC310A0AFFE2169D1F6FEEC1C63DBC7F7C62A887FA48795D327D4D2DA2D6B111D",
        "description": "Donation attack",
    },
    {"protocol": "Curve", "chain": "ethereum", "amount_usd": "70000000", "timestamp": "2023-07-30"},
    {"protocol": "", "chain": "bsc", "timestamp": "2023-07-30"},
    {"protocol": "Bad amount", "chain": "bsc", "timestamp": "2023-07-30", "amount_usd": "lots"},
    {"protocol": "Bad tx", "chain": "ethereum", "timestamp": "2023-07-30", "tx_hash": "0x1234"},
]


def kamiyo(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KAMIYO_DATABASE_URL=f"sqlite:///{db}", KAMIYO_SEED="0", KAMIYO_OFFLINE="1")
    exe = Path(sys.executable).parent / "kamiyo"
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_jsonl_import_is_idempotent_and_reports_bad_rows(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(orjson.dumps(r) for r in ROWS) + b"\nnot json\n")
    db = tmp_path / "k.db"
    first = kamiyo(db, "import", str(src))
    second = kamiyo(db, "import", str(src))
    assert first.returncode == 0, first.stderr
    assert "2 new exploits" in first.stderr and "4 skipped" in first.stderr
    assert "row 3: protocol: required" in first.stderr and "row 4: amount_usd: not a number" in first.stderr
    assert "row 6: not a JSON object" in first.stderr
    assert "0 new exploits, 0 new reports, 2 unchanged" in second.stderr

    out = tmp_path / "out.jsonl"
    exported = kamiyo(db, "export", "--format", "jsonl", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["protocol"] for e in lines] == ["Curve", "Euler Finance"]
    euler = lines[1]
    assert euler["tx_hash"] == ROWS[0]["tx_hash"].lower() and euler["category"] == "flash_loan"  # type: ignore[union-attr]
    assert euler["timestamp"] == "2023-03-13T08:50:35Z" and euler["amount_usd"] == 197000000


def test_export_then_import_round_trips_through_csv_and_json(tmp_path: Path) -> None:
    src = tmp_path / "rows.json"
    src.write_bytes(orjson.dumps(ROWS[:2]))
    db = tmp_path / "a.db"
    assert kamiyo(db, "import", str(src)).returncode == 0
    csv_out = tmp_path / "x.csv"
    assert kamiyo(db, "export", "--format", "csv", "--out", str(csv_out)).returncode == 0
    with csv_out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["protocol"] for r in rows] == ["Curve", "Euler Finance"] and rows[0]["sources"] == "import"
    other = tmp_path / "b.db"
    result = kamiyo(other, "import", str(csv_out))
    assert result.returncode == 0 and "2 new exploits" in result.stderr, result.stderr
    again = kamiyo(other, "import", str(csv_out))
    assert "0 new exploits" in again.stderr


def test_import_of_a_missing_or_malformed_file_fails_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    missing = kamiyo(db, "import", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": 5}')
    result = kamiyo(db, "import", str(broken))
    assert result.returncode == 2 and "cannot import" in result.stderr and "Traceback" not in result.stderr
