"""Kamiyo API benchmark.

Workload: 1,000,000 realistic synthetic exploits (bench/synth.py) imported with `kamiyo import` into a
fresh SQLite database, uncached statistics timed in-process, then a load test of `kamiyo serve`:
/ping, /exploits (filtered, 50 rows), /exploits/{ref}, /stats?days=30 and /stats?days=365, each driven
for --duration seconds at --connections concurrent keep-alive connections, one after the other.

    .venv/bin/python bench/api.py [--rows N] [--duration S] [--connections C] [--workers W]
                                  [--db PATH] [--reuse] [--no-cache] [--loadgen auto|wrk|python]

Load comes from `wrk` when it is installed (apt-get install wrk), else from a pure-Python asyncio
generator over raw keep-alive sockets (slower: it can be the bottleneck, and the output says so).
Results are printed and written to bench/results/api-<timestamp>.json. Every loop is time-bounded and
the server is stopped in all cases (Ctrl-C included). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402

KAMIYO = ROOT / ".venv" / "bin" / "kamiyo"
HOST = "127.0.0.1"
IMPORT_TARGET_S = 90.0
STATS_TARGETS_MS = {30: 5.0, 365: 50.0}
STATS_RUNS = 20
IMPORT_TIMEOUT_S = 3600
START_TIMEOUT_S = 120
WARMUP_S = 2.0
PROBE_LIMIT_S = 180.0  # one GET per distinct URL before the load: the warm-up every server gets after a start
# endpoint -> (minimum req/s ratio to /ping, maximum p99 in ms); None: reported, not judged.
TARGETS: dict[str, tuple[float | None, float | None]] = {
    "/ping": (None, None),
    "/exploits": (0.3, 20.0),
    "/exploits/{ref}": (0.6, None),
    "/stats?days=30": (0.5, None),
    "/stats?days=365": (None, None),
}
# Words of bench/synth.py's descriptions (prefix search matches e.g. "flashloan" in "using a flashloan").
Q_WORDS = (
    "flashloan", "oracle", "bridge", "vault", "reentrancy", "governance", "treasury", "multisig", "phishing",
    "mixer", "staking", "router", "private key", "lending", "collateral", "stablecoins", "upgrade", "insider",
)  # fmt: skip
SEARCH_CHAINS = [name for name, weight in synth.CHAIN_WEIGHTS for _ in range(max(1, round(weight / 3)))]


@dataclass
class LoadResult:
    endpoint: str
    urls: int
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    errors: int = 0
    server_errors: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    probe_statuses: dict[str, int] = field(default_factory=dict)
    ratio: float | None = None
    target: str = ""
    verdict: str = ""


# ---------------------------------------------------------------------------------------------
# Arguments, dataset, import
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Synthetic exploits (default 1,000,000).")
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds of load per endpoint (default 20).")
    parser.add_argument("--connections", type=int, default=64, help="Concurrent connections (default 64).")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2).")
    parser.add_argument("--db", type=Path, help="SQLite file (default: <tmp>/kamiyo-bench/kamiyo-<rows>.db).")
    parser.add_argument("--reuse", action="store_true", help="Keep an existing database: no generation/import.")
    parser.add_argument("--no-cache", action="store_true", help="Run the server with KAMIYO_RESPONSE_CACHE_SECONDS=0.")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto", help="Load generator.")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the synthetic data and URL mix (default 7).")
    args = parser.parse_args(argv)
    args.workdir = Path(tempfile.gettempdir()) / "kamiyo-bench"
    args.db = (args.db or args.workdir / f"kamiyo-{args.rows}.db").resolve()
    return args


def base_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_")}
    env.update(
        KAMIYO_DATABASE_URL=f"sqlite:///{db}",
        KAMIYO_SEED="0",
        KAMIYO_OFFLINE="1",
        KAMIYO_DATA_DIR=str(db.parent / "data"),
    )
    return env


def dataset_path(args: argparse.Namespace) -> Path:
    return args.workdir / f"exploits-{args.rows}-s{args.seed}.jsonl"


def ensure_dataset(args: argparse.Namespace) -> Path:
    """The JSONL of `rows` exploits, generated unless a copy from the last 24 hours is cached."""
    path = dataset_path(args)
    if path.exists() and time.time() - path.stat().st_mtime < 86_400:
        print(f"dataset: reusing {path}")
        return path
    seconds = synth.write(path, args.rows, args.seed)
    print(f"dataset: generated {args.rows:,} exploits in {seconds:.1f} s -> {path}")
    return path


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def run_import(jsonl: Path, db: Path) -> float:
    """Seconds `kamiyo import` takes into a fresh database; raises if it fails."""
    remove_db(db)
    db.parent.mkdir(parents=True, exist_ok=True)
    log = db.parent / "api-import.log"
    print(f"import: kamiyo import {jsonl.name} -> {db} (log: {log})", flush=True)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.run(
            [str(KAMIYO), "import", str(jsonl)],
            env=base_env(db),
            cwd=db.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=IMPORT_TIMEOUT_S,
            check=False,
        )
    seconds = time.perf_counter() - started
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    if proc.returncode != 0:
        raise RuntimeError(f"kamiyo import exited {proc.returncode} after {seconds:.1f} s: {' | '.join(tail)}")
    print(f"import: {seconds:.1f} s ({tail[-1] if tail else 'no output'})")
    return seconds


# ---------------------------------------------------------------------------------------------
# Uncached statistics, in-process
# ---------------------------------------------------------------------------------------------


def _time_statements(db: Any) -> list[float]:
    """Milliseconds of each statement the engine runs (SQLite's work plus one hop to aiosqlite's thread)."""
    from sqlalchemy import event

    spent: list[float] = []
    started: dict[int, float] = {}

    def before(_conn: Any, cursor: Any, *_args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(_conn: Any, cursor: Any, *_args: Any) -> None:
        spent.append((time.perf_counter() - started.pop(id(cursor), time.perf_counter())) * 1000)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    event.listen(db.engine.sync_engine, "after_cursor_execute", after)
    return spent


async def _time_stats(url: str, days_list: tuple[int, ...], runs: int, limit_s: float) -> dict[str, Any]:
    from kamiyo.db import Database
    from kamiyo.exploits.stats import compute_stats

    db = Database(url)
    statements = _time_statements(db)
    results: dict[str, Any] = {}
    try:
        for days in days_list:
            async with db.session() as session:
                await compute_stats(session, days)  # warm SQLite's page cache and SQLAlchemy's statement cache
            samples: list[float] = []
            in_sql: list[float] = []
            deadline = time.perf_counter() + limit_s
            while len(samples) < runs and time.perf_counter() < deadline:
                statements.clear()
                async with db.session() as session:
                    started = time.perf_counter()
                    await compute_stats(session, days)
                    samples.append((time.perf_counter() - started) * 1000)
                in_sql.append(sum(statements))
            results[str(days)] = {
                "runs": len(samples),
                "median_ms": round(statistics.median(samples), 2),
                "statements_median_ms": round(statistics.median(in_sql), 2),
                "max_ms": round(max(samples), 2),
                "target_median_ms": STATS_TARGETS_MS[days],
                "verdict": "PASS" if statistics.median(samples) <= STATS_TARGETS_MS[days] else "FAIL",
            }
    finally:
        await db.dispose()
    return results


def measure_stats(db: Path) -> dict[str, Any]:
    """compute_stats(session, days) timed directly (no HTTP, no response cache)."""
    try:
        return asyncio.run(_time_stats(f"sqlite:///{db}", tuple(STATS_TARGETS_MS), STATS_RUNS, 60.0))
    except Exception as exc:  # report and go on to the load test
        print(f"stats: in-process measurement failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


async def _time_list_mix(db: Path, paths: list[str], limit_s: float) -> dict[str, Any]:
    import httpx

    from kamiyo.app import create_app
    from kamiyo.config import Settings

    env = {k: v for k, v in base_env(db).items() if k.startswith("KAMIYO_")}
    env.update(KAMIYO_RESPONSE_CACHE_SECONDS="0", KAMIYO_RATE_LIMITS="off", KAMIYO_LOG_LEVEL="WARNING")
    app = create_app(Settings(_env_file=None, **env))  # type: ignore[call-arg]
    samples: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
            await client.get(paths[0])  # warm SQLite's page cache and the planner's statistics
            deadline = time.perf_counter() + limit_s
            for path in paths:
                if time.perf_counter() > deadline:
                    break
                started = time.perf_counter()
                response = await client.get(path)
                samples[path] = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: status {response.status_code}")
    return _mix_figures(samples)


def _mix_figures(samples: dict[str, float]) -> dict[str, Any]:
    ordered = sorted(samples.values())
    searches = sorted(ms for path, ms in samples.items() if "q=" in path)
    slowest = sorted(samples.items(), key=lambda item: -item[1])[:5]
    return {
        "urls": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)], 2),
        "max_ms": round(ordered[-1], 2),
        "total_s": round(sum(ordered) / 1000, 2),
        "search_urls": len(searches),
        "search_median_ms": round(statistics.median(searches), 2) if searches else None,
        "slowest": [{"url": path, "ms": round(ms, 1)} for path, ms in slowest],
    }


def measure_list_mix(db: Path, paths: list[str]) -> dict[str, Any]:
    """Each /exploits URL of the load test once, cold (response cache off), through the app in-process."""
    try:
        return asyncio.run(_time_list_mix(db, paths, 120.0))
    except Exception as exc:  # report and go on to the load test
        print(f"list mix: in-process measurement failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


# ---------------------------------------------------------------------------------------------
# URL mixes
# ---------------------------------------------------------------------------------------------


def list_urls(rng: random.Random, count: int = 200) -> list[str]:
    """~`count` distinct realistic /exploits queries: chain, category, amount, date, text and sort combos."""
    today = datetime.now(UTC).date()
    urls: set[str] = set()
    for _ in range(count * 50):
        if len(urls) >= count:
            break
        params: dict[str, Any] = {}
        if rng.random() < 0.6:
            params["chain"] = rng.choice(SEARCH_CHAINS)
        if rng.random() < 0.35:
            params["category"] = rng.choice(synth.CATEGORY_WEIGHTS)[0]
        if rng.random() < 0.3:
            params["min_amount"] = rng.choice((10_000, 100_000, 1_000_000, 10_000_000))
        if rng.random() < 0.4:
            params["since"] = (today - timedelta(days=rng.choice((7, 30, 90, 365, 730)))).isoformat()
        if rng.random() < 0.2:
            params["q"] = rng.choice(Q_WORDS)
        if rng.random() < 0.3:
            params["sort"] = "-amount_usd"
        params["page_size"] = 50
        urls.add("/exploits?" + urlencode(params))
    return sorted(urls)


def sample_tx_hashes(jsonl: Path | None, db: Path, rng: random.Random, count: int) -> list[str]:
    """Transaction hashes from the first lines of the JSONL (or, without it, from the database)."""
    hashes: list[str] = []
    if jsonl is not None and jsonl.exists():
        with jsonl.open("rb") as handle:
            for _, line in zip(range(50_000), handle, strict=False):
                tx = orjson.loads(line).get("tx_hash")
                if tx:
                    hashes.append(tx)
    else:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT tx_hash FROM exploits WHERE tx_hash IS NOT NULL AND id <= 50000")
            hashes = [row[0] for row in rows]
    return rng.sample(hashes, min(count, len(hashes)))


def max_exploit_id(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM exploits").fetchone()[0])


def ref_urls(rng: random.Random, max_id: int, hashes: list[str], count: int = 500) -> list[str]:
    """80% ids drawn from 1..max_id, 20% transaction hashes (EVM, Solana, Bitcoin/Tron)."""
    urls = [f"/exploits/{rng.randint(1, max_id)}" for _ in range(int(count * 0.8))]
    urls += [f"/exploits/{rng.choice(hashes)}" for _ in range(count - len(urls))] if hashes else []
    rng.shuffle(urls)
    return urls


def endpoint_urls(args: argparse.Namespace, jsonl: Path | None) -> dict[str, list[str]]:
    rng = random.Random(args.seed)
    max_id = max_exploit_id(args.db)
    if max_id == 0:
        raise RuntimeError(f"{args.db} holds no exploits")
    hashes = sample_tx_hashes(jsonl, args.db, rng, 100)
    return {
        "/ping": ["/ping"],
        "/exploits": list_urls(rng),
        "/exploits/{ref}": ref_urls(rng, max_id, hashes),
        "/stats?days=30": ["/stats?days=30"],
        "/stats?days=365": ["/stats?days=365"],
    }


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0) -> int:
    """Status code of one GET over a fresh connection (0 when the server does not answer)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return 0
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else 0


def probe(port: int, paths: list[str], limit_s: float = 30.0) -> dict[str, int]:
    """Status code of each distinct URL fetched once (time-bounded): names the codes behind any non-2xx."""
    counts: dict[str, int] = {}
    deadline = time.monotonic() + limit_s
    for path in sorted(set(paths)):
        if time.monotonic() > deadline:
            break
        status = str(http_get(port, path, timeout=10))
        counts[status] = counts.get(status, 0) + 1
    return counts


def server_log(args: argparse.Namespace) -> Path:
    return args.db.parent / "api-server.log"


def server_errors(log: Path, start: int, limit: int = 3) -> list[str]:
    """The most frequent `SomethingError: message` texts the server logged after byte `start` (last 5 MB)."""
    with log.open("rb") as handle:
        handle.seek(max(start, log.stat().st_size - 5_000_000))
        text = handle.read().decode(errors="replace")
    counts: dict[str, int] = {}
    for match in re.finditer(r"\b(\w+(?:Error|Exception)): ([^\\\n\"]{1,160})", text):
        key = f"{match.group(1)}: {match.group(2).strip()}"
        counts[key] = counts.get(key, 0) + 1
    return [f"{n}x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole process group, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def server(args: argparse.Namespace, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`kamiyo serve` in its own process group, ready on /ping; always stopped on exit."""
    env = base_env(args.db) | {"KAMIYO_RATE_LIMITS": "off"}
    if args.no_cache:
        env["KAMIYO_RESPONSE_CACHE_SECONDS"] = "0"
    log = server_log(args)
    cmd = [str(KAMIYO), "serve", "--host", HOST, "--port", str(port), "--workers", str(args.workers)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=args.db.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while http_get(port, "/ping") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
                raise RuntimeError(f"server did not answer /ping (exit code {proc.poll()}): {tail}")
            time.sleep(0.2)
        print(f"server: {' '.join(cmd[1:])} ready (pid {proc.pid}, log: {log})")
        yield proc
    finally:
        stop(proc)


# ---------------------------------------------------------------------------------------------
# Load generator 1: wrk
# ---------------------------------------------------------------------------------------------

# Requests are formatted once per thread; no response() callback, as it slows wrk several-fold here.
# Non-2xx are wrk's own count ("Non-2xx or 3xx responses", status >= 400); probe() samples the codes.
WRK_LUA = """
local paths = {%s}
local requests = {}
local i = 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  for k, path in ipairs(paths) do requests[k] = wrk.format("GET", path) end
  i = (id * 7919) %% #paths
end
function request()
  i = i + 1
  return requests[(i %% #paths) + 1]
end
"""
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_script(paths: list[str], directory: Path) -> Path:
    script = directory / "api-wrk.lua"
    script.write_text(WRK_LUA % ", ".join(f'"{p}"' for p in paths))
    return script


def _latency_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    return float(match.group(1)) * _UNITS_MS[match.group(2)] if match else float("nan")


def parse_wrk(output: str, result: LoadResult, duration: float) -> LoadResult:
    requests = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if requests:
        result.requests = int(requests.group(1))
        result.seconds = float(requests.group(2)) * _UNITS_MS[requests.group(3)] / 1000
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result.rps = float(rate.group(1)) if rate else result.requests / max(duration, 1e-9)
    result.p50_ms, result.p99_ms = _latency_ms(output, "50"), _latency_ms(output, "99")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result.non_2xx = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result.errors = sum(int(n) for n in errors.groups()) if errors else 0
    return result


def run_wrk(port: int, name: str, paths: list[str], duration: float, connections: int, workdir: Path) -> LoadResult:
    script = wrk_script(paths, workdir)
    threads = max(1, min(2, connections))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "--latency"]
    cmd += ["-s", str(script), f"http://{HOST}:{port}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return parse_wrk(proc.stdout, LoadResult(name, len(paths)), duration)


# ---------------------------------------------------------------------------------------------
# Load generator 2: pure-Python asyncio over raw keep-alive sockets (when wrk is missing)
# ---------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0


async def _one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length is None:
        raise ConnectionError("response without Content-Length")
    await reader.readexactly(int(length.group(1)))
    return int(head[9:12])


async def _connection(port: int, paths: list[str], start: int, deadline: float, tally: _Tally) -> None:
    """One keep-alive connection sending requests back to back until the deadline."""
    index, conn = start, None
    while time.perf_counter() < deadline:
        try:
            async with asyncio.timeout(10):
                conn = conn or await asyncio.open_connection(HOST, port)
                started = time.perf_counter()
                status = await _one_request(*conn, paths[index % len(paths)])
            tally.latencies.append(time.perf_counter() - started)
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.errors += 1
            if conn:
                conn[1].close()
            conn = None
        index += 1
    if conn:
        conn[1].close()


async def _drive(port: int, paths: list[str], duration: float, connections: int) -> tuple[_Tally, float]:
    tally = _Tally()
    started = time.perf_counter()
    deadline = started + duration
    tasks = [_connection(port, paths, i * 7919, deadline, tally) for i in range(connections)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + 30)
    return tally, time.perf_counter() - started


def run_python(port: int, name: str, paths: list[str], duration: float, connections: int) -> LoadResult:
    with suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tally, seconds = asyncio.run(_drive(port, paths, duration, connections))
    result = LoadResult(name, len(paths), requests=len(tally.latencies), seconds=seconds, errors=tally.errors)
    result.rps = result.requests / seconds
    if tally.latencies:
        ordered = sorted(tally.latencies)
        result.p50_ms = ordered[len(ordered) // 2] * 1000
        result.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    result.statuses = {s: n for s, n in tally.statuses.items() if not s.startswith("2")}
    result.non_2xx = sum(result.statuses.values())
    return result


# ---------------------------------------------------------------------------------------------
# Load test, verdicts, report
# ---------------------------------------------------------------------------------------------


def pick_loadgen(choice: str) -> str:
    if choice in ("auto", "wrk") and shutil.which("wrk"):
        return "wrk"
    if choice == "wrk":
        raise RuntimeError("--loadgen wrk: wrk is not installed (apt-get install -y wrk)")
    if choice == "auto":
        print("loadgen: wrk not found; using the pure-Python asyncio generator (it may be the bottleneck)")
    return "python"


def drive(
    args: argparse.Namespace, loadgen: str, port: int, name: str, paths: list[str], duration: float
) -> LoadResult:
    if loadgen == "wrk":
        return run_wrk(port, name, paths, duration, args.connections, args.db.parent)
    return run_python(port, name, paths, duration, args.connections)


def judge(results: list[LoadResult]) -> None:
    """Ratio to /ping and PASS/FAIL against TARGETS (a target also needs zero non-2xx and socket errors)."""
    ping = next((r.rps for r in results if r.endpoint == "/ping"), 0.0)
    for result in results:
        result.ratio = result.rps / ping if ping else None
        min_ratio, max_p99 = TARGETS[result.endpoint]
        parts = ([f">= {min_ratio}x"] if min_ratio else []) + ([f"p99 <= {max_p99:g} ms"] if max_p99 else [])
        result.target = ", ".join(parts) or "-"
        if not parts:
            result.verdict = "-"
            continue
        ok = result.ratio is not None and result.ratio >= (min_ratio or 0)
        ok = ok and (max_p99 is None or result.p99_ms <= max_p99) and result.non_2xx == 0 and result.errors == 0
        result.verdict = "PASS" if ok else "FAIL"


def load_endpoint(args: argparse.Namespace, loadgen: str, name: str, paths: list[str]) -> LoadResult:
    """One endpoint against a fresh server: uvicorn finishes requests whose client has gone, so a slow
    endpoint would otherwise leave queued work that is charged to the next one."""
    port = free_port()
    print(f"load: {name} ({len(paths)} URLs) for {args.duration:g} s at {args.connections} connections", flush=True)
    with server(args, port):
        log_start = server_log(args).stat().st_size
        started = time.perf_counter()
        statuses = probe(port, paths, PROBE_LIMIT_S)
        print(f"      warm-up: each of the {len(set(paths))} URLs once in {time.perf_counter() - started:.1f} s")
        drive(args, loadgen, port, name, paths, min(WARMUP_S, args.duration))
        result = drive(args, loadgen, port, name, paths, args.duration)
    result.probe_statuses = statuses
    result.server_errors = server_errors(server_log(args), log_start)
    print(f"      {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms")
    return result


def load_test(args: argparse.Namespace, urls: dict[str, list[str]], loadgen: str) -> list[LoadResult]:
    server_log(args).write_bytes(b"")
    results = [load_endpoint(args, loadgen, name, paths) for name, paths in urls.items()]
    judge(results)
    return results


def workload(args: argparse.Namespace, loadgen: str) -> str:
    cache = "off (KAMIYO_RESPONSE_CACHE_SECONDS=0)" if args.no_cache else "on (default settings)"
    return (
        f"Workload: {args.rows:,} synthetic exploits (bench/synth.py, seed {args.seed}) imported into SQLite, "
        f"then {args.duration:g} s of load per endpoint at {args.connections} connections against "
        f"`kamiyo serve --workers {args.workers}`; response cache {cache}; load generator {loadgen}; "
        f"{os.cpu_count()} CPU cores shared by server and load generator."
    )


def upgrade_db(db: Path) -> None:
    """`kamiyo db upgrade` on a reused database; raises with the command's last lines if it fails."""
    cmd = [str(KAMIYO), "db", "upgrade"]
    proc = subprocess.run(
        cmd, env=base_env(db), cwd=db.parent, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"kamiyo db upgrade failed on {db} (exit {proc.returncode}): {tail}")


def prepare_db(args: argparse.Namespace) -> tuple[Path | None, float | None]:
    """(JSONL used, import seconds); with --reuse and an existing database, nothing is imported."""
    if args.reuse and args.db.exists():
        cached = dataset_path(args)
        print(f"import: skipped, reusing {args.db} (after `kamiyo db upgrade`)")
        upgrade_db(args.db)
        return (cached if cached.exists() else None), None
    jsonl = ensure_dataset(args)
    return jsonl, run_import(jsonl, args.db)


def print_table(results: list[LoadResult]) -> None:
    header = f"{'endpoint':<17} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'x /ping':>8}"
    header += f"  {'target':<22} verdict"
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        p50, p99 = (f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}") if r.requests else ("-", "-")
        print(
            f"{r.endpoint:<17} {r.rps:>9,.0f} {p50:>8} {p99:>8} {r.non_2xx:>8} {ratio:>8}  {r.target:<22} {r.verdict}"
        )
        if not r.requests:
            print(f"{'':<17} no request completed within wrk's 10 s timeout")
        if r.statuses or r.errors or set(r.probe_statuses) - {"200"}:
            print(f"{'':<17} statuses of one GET per URL: {r.probe_statuses}; under load: non-2xx {r.statuses or '-'}")
            print(f"{'':<17} socket errors (connect/read/write/timeout): {r.errors}")
        for line in r.server_errors:
            print(f"{'':<17} server log: {line}")


def print_report(report: dict[str, Any], results: list[LoadResult]) -> None:
    print()
    print(report["workload"])
    print()
    imported = report["import"]
    if imported["seconds"] is None:
        print("import: skipped (--reuse)")
    else:
        seconds, verdict = imported["seconds"], imported["verdict"]
        print(f"import: {seconds:.1f} s for {report['rows']:,} rows (target <= {IMPORT_TARGET_S:g} s) {verdict}")
    for days, figures in report["stats_uncached"].items():
        if isinstance(figures, dict):
            print(
                f"stats uncached, days={days}: median {figures['median_ms']:.2f} ms (of which its statements "
                f"{figures['statements_median_ms']:.2f} ms), max {figures['max_ms']:.2f} ms "
                f"over {figures['runs']} runs (target median <= {figures['target_median_ms']:g} ms) "
                f"{figures['verdict']}"
            )
        else:
            print(f"stats uncached: {figures}")
    mix = report.get("list_mix_uncached", {})
    if "median_ms" in mix:
        print(
            f"/exploits mix uncached, in-process: {mix['urls']} URLs once each, median {mix['median_ms']:.1f} ms, "
            f"p90 {mix['p90_ms']:.1f} ms, max {mix['max_ms']:.1f} ms, total {mix['total_s']:.1f} s "
            f"({mix['search_urls']} with q=: median {mix['search_median_ms'] or 0:.1f} ms)"
        )
    elif mix:
        print(f"/exploits mix uncached: {mix.get('error')}")
    print(f"machine load average (1, 5, 15 min) at the end: {report['config']['load_average_at_end']}")
    print()
    print_table(results)


def save(report: dict[str, Any]) -> Path:
    out = HERE / "results" / f"api-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return out


def build_report(
    args: argparse.Namespace, loadgen: str, import_s: float | None, stats: dict[str, Any], results: list[LoadResult]
) -> dict[str, Any]:
    verdict = "-" if import_s is None else ("PASS" if import_s <= IMPORT_TARGET_S else "FAIL")
    return {
        "workload": workload(args, loadgen),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows,
        "config": {
            "duration_s": args.duration,
            "connections": args.connections,
            "workers": args.workers,
            "response_cache": not args.no_cache,
            "loadgen": loadgen,
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "db": str(args.db),
        },
        "import": {
            "seconds": None if import_s is None else round(import_s, 2),
            "target_s": IMPORT_TARGET_S,
            "verdict": verdict,
        },
        "stats_uncached": stats,
        "load": [asdict(r) for r in results],
    }


def interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C, kill and a closed terminal all unwind through the `finally` that stops the server (SIGINT is
    # ignored by default in background jobs, so it is reinstalled too).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    args = parse_args(argv)
    loadgen = pick_loadgen(args.loadgen)
    print(workload(args, loadgen), flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        jsonl, import_s = prepare_db(args)
        stats = measure_stats(args.db)
        urls = endpoint_urls(args, jsonl)
        mix = measure_list_mix(args.db, urls["/exploits"])
        results = load_test(args, urls, loadgen)
    except KeyboardInterrupt:
        print("interrupted: server stopped")
        return 130
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}")
        return 2
    report = build_report(args, loadgen, import_s, stats, results)
    report["list_mix_uncached"] = mix
    print_report(report, results)
    print(f"\nresults: {save(report)}")
    verdicts = [r.verdict for r in results] + [report["import"]["verdict"]]
    verdicts += [v.get("verdict", "FAIL") if isinstance(v, dict) else "FAIL" for v in stats.values()]
    return 1 if "FAIL" in verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
