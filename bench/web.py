"""Dashboard benchmark: server render time of `/` and `/app/exploits`, and the home page's transfer size.

Workload: the SQLite database that bench/api.py builds (1,000,000 synthetic exploits by default; pass
--db to reuse any other, or --rows N to build one of N rows with bench/synth.py + `kamiyo import` when
the file is missing). Pages are rendered in-process through the ASGI app (no network, no load
generator): each URL is requested --runs times after --warmup untimed runs, one at a time, and the
median and p95 wall time per request are printed (the median is judged). The transfer size is the
home page's HTML plus the stylesheet, script and icon it links to (uncompressed).
Targets (issue 6): ≤ 50 ms for both pages with 1M exploits, ≤ 300 KB for the home page with its assets.

    .venv/bin/python bench/web.py [--db PATH] [--rows N] [--runs N] [--warmup N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import api as bench_api  # noqa: E402

URLS = {
    "/": "/",
    "/app/exploits": "/app/exploits",
    "/app/exploits (filtered)": "/app/exploits?chain=bsc&min_amount=1000000&sort=-amount_usd",
    "/app/exploits (text search)": "/app/exploits?q=bridge&chain=ethereum",
}
TARGET_MS = 50.0
HOME_BUDGET_BYTES = 300 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="SQLite file (default: <tmp>/kamiyo-bench/kamiyo-<rows>.db).")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows when the database must be built.")
    parser.add_argument("--runs", type=int, default=40, help="Timed requests per URL (default 40).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed requests per URL first (default 3).")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.gettempdir()) / "kamiyo-bench"
    args.db = (args.db or workdir / f"kamiyo-{args.rows}.db").resolve()
    return args


def ensure_db(args: argparse.Namespace) -> None:
    if args.db.exists():
        print(f"database: {args.db}")
        return
    api_args = bench_api.parse_args(["--rows", str(args.rows), "--db", str(args.db)])
    bench_api.run_import(bench_api.ensure_dataset(api_args), args.db)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    os.environ.update(bench_api.base_env(args.db) | {"KAMIYO_RESPONSE_CACHE_SECONDS": "0"})
    from kamiyo.app import create_app
    from kamiyo.config import Settings

    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    results: dict[str, Any] = {"db": str(args.db), "runs": args.runs, "pages": {}}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, url in URLS.items():
                for _ in range(args.warmup):
                    (await client.get(url)).raise_for_status()
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    response = await client.get(url)
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                results["pages"][name] = {
                    "median_ms": round(statistics.median(times), 2),
                    "p95_ms": round(percentile(times, 95), 2),
                    "bytes": len(response.content),
                }
            home = (await client.get("/")).text
            assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', home)
            sizes = {"/": len(home.encode())} | {a: len((await client.get(a)).content) for a in assets}
            results["home_transfer"] = {"bytes": sum(sizes.values()), "parts": sizes}
            results["exploits"] = (await client.get("/exploits?page_size=1")).json()["total"]
    return results


def report(results: dict[str, Any]) -> bool:
    print(f"\n{results['exploits']:,} exploits in {results['db']}; {results['runs']} timed requests per page\n")
    print(f"{'page':32} {'median ms':>10} {'p95 ms':>10} {'HTML bytes':>11}")
    ok = True
    for name, r in results["pages"].items():
        judged = name in ("/", "/app/exploits")
        # Judged on the median: on a shared 2-core machine the p95 mostly measures the neighbours.
        verdict = "" if not judged else ("  ok" if r["median_ms"] <= TARGET_MS else f"  OVER {TARGET_MS:.0f} ms")
        ok &= not verdict.strip().startswith("OVER")
        print(f"{name:32} {r['median_ms']:>10.1f} {r['p95_ms']:>10.1f} {r['bytes']:>11,}{verdict}")
    transfer = results["home_transfer"]["bytes"]
    verdict = "ok" if transfer <= HOME_BUDGET_BYTES else "OVER 300 KB"
    print(f"\nhome page with its CSS, JS and icon: {transfer:,} bytes ({transfer / 1024:.1f} KB) {verdict}")
    return ok and transfer <= HOME_BUDGET_BYTES


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_db(args)
    results = asyncio.run(measure(args))
    out = HERE / "results" / f"web-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    ok = report(results)
    print(f"results: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
