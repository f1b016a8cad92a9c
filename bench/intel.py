"""Timings of the threat-intelligence paths on the 1M-exploit benchmark database.

Builds (or, with --reuse, reuses) the same SQLite database as bench/api.py (`<tmp>/kamiyo-bench/
kamiyo-<rows>.db`: bench/synth.py data through `kamiyo import`), then times, in-process through the
whole app (middleware, routing, JSON; no response cache, no rate limits), one request after another:

- a TAXII page of 1,000 objects (`/api/v1/taxii2/collections/<exploits>/objects/?limit=1000`): the first
  and second pages, pages a quarter and half-way into the collection (`next`, and `added_after` where the
  dates allow), one page of indicators only and one of incidents only;
- a STIX bundle of 500 exploits (`/api/v1/stix/bundle?page_size=500`): newest, by amount, one chain, a
  deep cursor page;
- reported, not judged: a MISP event by UUID (the first one builds the UUID index), and the whole MISP
  manifest.

    .venv/bin/python bench/intel.py [--rows N] [--db PATH] [--reuse] [--runs R]

Target: median <= 100 ms for every TAXII page and STIX bundle. Exit code 0 when all pass, 1 otherwise,
2 when the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import api  # noqa: E402  (bench/api.py: dataset, import, environment)

TARGET_MS = 100.0
COLLECTION = "/api/v1/taxii2/collections/7a8d3a70-6f1c-4c5e-9a57-6b6f0f3c2e11/objects/"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Synthetic exploits (default 1,000,000).")
    parser.add_argument("--db", type=Path, help="SQLite file (default: <tmp>/kamiyo-bench/kamiyo-<rows>.db).")
    parser.add_argument("--reuse", action="store_true", help="Keep an existing database: no generation/import.")
    parser.add_argument("--runs", type=int, default=10, help="Timed requests per URL (default 10).")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the synthetic data (default 7).")
    args = parser.parse_args(argv)
    args.workdir = Path(tempfile.gettempdir()) / "kamiyo-bench"
    args.db = (args.db or args.workdir / f"kamiyo-{args.rows}.db").resolve()
    return args


def prepare(args: argparse.Namespace) -> None:
    if args.reuse and args.db.exists():
        api.upgrade_db(args.db)
        print(f"database: reusing {args.db}")
        return
    api.run_import(api.ensure_dataset(args), args.db)


def deep_positions(db: Path) -> tuple[list[tuple[str, int]], str, int]:
    """(updated_at, id) of the exploits a quarter and half-way through the collection, the `updated_at`
    half-way (as TAXII timestamps), and the public exploit count. (An import gives its rows one
    `updated_at`: then `added_after` cannot reach deep, and only a `next` position can.)"""
    with closing(sqlite3.connect(db)) as conn:
        count = conn.execute("SELECT count(*) FROM exploits WHERE is_test = 0").fetchone()[0]
        found = []
        for fraction in (0.25, 0.5):
            row = conn.execute(
                "SELECT updated_at, id FROM exploits WHERE is_test = 0 ORDER BY updated_at, id LIMIT 1 OFFSET ?",
                (int(count * fraction),),
            ).fetchone()
            found.append((_taxii_time(row[0]), int(row[1])))
    return found, found[1][0], int(count)


def _taxii_time(stored: str) -> str:
    text = stored.replace(" ", "T")
    return text[:26] + "Z" if "." in text else text + ".000000Z"


def next_token(added: str, exploit_id: int) -> str:
    from datetime import datetime

    from kamiyo.intel.taxii import Position, encode_next

    return encode_next(Position(datetime.fromisoformat(added.replace("Z", "+00:00")), exploit_id))


async def _time(client: Any, path: str, runs: int) -> tuple[list[float], Any]:
    response = await client.get(path)  # warm-up: SQLite's page cache, SQLAlchemy's statement cache
    if response.status_code != 200:
        raise RuntimeError(f"{path}: status {response.status_code}: {response.text[:200]}")
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path)
        samples.append((time.perf_counter() - started) * 1000)
    return samples, response


async def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    import httpx

    from kamiyo.app import create_app
    from kamiyo.config import Settings

    (quarter, half), halfway, count = deep_positions(args.db)
    print(f"database: {count:,} public exploits")
    env = {k: v for k, v in api.base_env(args.db).items() if k.startswith("KAMIYO_")}
    env.update(KAMIYO_RESPONSE_CACHE_SECONDS="0", KAMIYO_RATE_LIMITS="off", KAMIYO_LOG_LEVEL="WARNING")
    app = create_app(Settings(_env_file=None, **env))  # type: ignore[call-arg]
    rows: list[dict[str, Any]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=600) as client:
            second = (await client.get(f"{COLLECTION}?limit=1000")).json()["next"]
            taxii = {
                "first page": f"{COLLECTION}?limit=1000",
                "second page (next)": f"{COLLECTION}?limit=1000&next={second}",
                "a quarter in (next)": f"{COLLECTION}?limit=1000&next={next_token(*quarter)}",
                "half-way (next)": f"{COLLECTION}?limit=1000&next={next_token(*half)}",
                "added_after half-way": f"{COLLECTION}?limit=1000&added_after={halfway}",
                "indicators only, half-way": f"{COLLECTION}?limit=1000&match[type]=indicator&next={next_token(*half)}",
                "incidents only, half-way": f"{COLLECTION}?limit=1000&match[type]=incident&next={next_token(*half)}",
            }
            bundle = "/api/v1/stix/bundle?page_size=500"
            deep = (await client.get("/exploits?page_size=500&page=2")).json()["next_cursor"]
            stix = {
                "newest": bundle,
                "largest losses": f"{bundle}&sort=-amount_usd",
                "chain=ethereum": f"{bundle}&chain=ethereum",
                "cursor page": f"{bundle}&cursor={deep}",
            }
            for group, paths, measure_of in (
                ("TAXII 1,000 objects", taxii, "objects"),
                ("STIX 500", stix, "incidents"),
            ):
                for name, path in paths.items():
                    samples, response = await _time(client, path, args.runs)
                    body = response.json()
                    objects = body.get("objects", [])
                    size = len(objects) if measure_of == "objects" else sum(o["type"] == "incident" for o in objects)
                    median = statistics.median(samples)
                    verdict = "PASS" if median <= TARGET_MS else "FAIL"
                    rows.append(_row(f"{group}: {name}", size, median, max(samples), verdict))
            manifest_started = time.perf_counter()
            manifest = (await client.get("/api/v1/misp/manifest.json")).json()
            manifest_ms = (time.perf_counter() - manifest_started) * 1000
            uuids = list(manifest)[:: max(1, len(manifest) // 20)][:20]
            del manifest
            first_started = time.perf_counter()
            assert (await client.get(f"/api/v1/misp/{uuids[0]}.json")).status_code == 200
            first_ms = (time.perf_counter() - first_started) * 1000
            samples = []
            for event_uuid in uuids[1:]:
                started = time.perf_counter()
                assert (await client.get(f"/api/v1/misp/{event_uuid}.json")).status_code == 200
                samples.append((time.perf_counter() - started) * 1000)
            for what, ms in (
                ("MISP manifest (every exploit)", manifest_ms),
                ("MISP event, first (builds the UUID index)", first_ms),
                ("MISP event, then (median)", statistics.median(samples)),
            ):
                rows.append(
                    {"what": what, "size": count, "median_ms": round(ms, 1), "max_ms": round(ms, 1), "verdict": "-"}
                )
                print(f"{what:<42} {'':>5} {ms:>8.1f} ms", flush=True)
    return rows


def _row(what: str, size: int, median: float, most: float, verdict: str) -> dict[str, Any]:
    print(f"{what:<44} {size:>9,} {median:>8.1f} ms  max {most:>8.1f} ms  {verdict}", flush=True)
    return {"what": what, "size": size, "median_ms": round(median, 1), "max_ms": round(most, 1), "verdict": verdict}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        prepare(args)
        rows = asyncio.run(measure(args))
    except Exception as exc:
        print(f"run failed: {type(exc).__name__}: {exc}")
        return 2
    return 0 if all(r["verdict"] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
