"""Kamiyo load test: many concurrent keep-alive connections mixing list, detail, stats and keyed calls.

Workload (defaults: 1,000 connections for 60 s): a `make run`-style server — `kamiyo serve` on a fresh
SQLite database seeded with the bundled dataset, with KAMIYO_RATE_LIMITS=off (benchmarks only) and
KAMIYO_OFFLINE=1 (no source fetching during the run) — driven with a random mix of

    35 % GET /exploits            (newest first; filtered by chain / category / amount; sorted by amount)
    30 % GET /exploits/{ref}      (real ids and transaction hashes)
    15 % GET /stats?days=7|30|365
     5 % GET /chains
    15 % keyed calls              (Authorization: Bearer kmy_… of an enterprise user: /api/v1/exploits,
                                   /api/v1/stats, /api/v1/me) — only when accounts are built in

    .venv/bin/python bench/load.py [--duration S] [--connections C] [--loadgen auto|wrk|python]
                                   [--topology embedded|scale-out] [--url http://127.0.0.1:PORT --key kmy_…]

`--topology scale-out` runs the same mix against ARCHITECTURE.md's scale-out shape instead: a throw-away
PostgreSQL cluster and Redis (Debian packages, started as the test suite starts them), the bundled dataset,
two `kamiyo serve --no-workers` processes and two `kamiyo worker` processes; the connections are split evenly
over the two API processes (as a load balancer would), one load generator per API process. Req/s add up;
the reported percentiles are the worse of the two generators' (wrk does not merge histograms).

Load comes from `wrk` (C, far cheaper than the server it drives) when installed, else from a pure-Python
asyncio generator over raw keep-alive sockets. Judged: zero 5xx (counted from the server's access log
when this script starts the server; wrk's non-2xx count otherwise) and p99 latency, reported.
Results go to bench/results/load-<timestamp>.json. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
KAMIYO = ROOT / ".venv" / "bin" / "kamiyo"
PYTHON = ROOT / ".venv" / "bin" / "python"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_DURATION_S, MAX_CONNECTIONS = 600, 5000
START_TIMEOUT_S = 180


@dataclass
class Result:
    loadgen: str
    duration_s: float
    connections: int
    requests: int = 0
    rps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    non_2xx: int = 0
    socket_errors: int = 0
    socket_error_kinds: dict[str, int] = field(default_factory=dict)
    server_statuses: dict[str, int] = field(default_factory=dict)
    server_5xx: int | None = None
    keyed_share: float = 0.0
    topology: str = "embedded"


# --- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(base: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with suppress(OSError, ValueError):
            get(f"{base}/ping", timeout=2)
            return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {START_TIMEOUT_S} s")


def make_key(db_url: str) -> str | None:
    """An enterprise user's API key, made through the accounts service (None when accounts are not built)."""
    code = (
        "import asyncio,sys\n"
        "from kamiyo.db import Database\n"
        "from kamiyo.accounts import service\n"
        "async def main():\n"
        "    db = Database(sys.argv[1])\n"
        "    async with db.session() as s:\n"
        "        u = await service.create_user(s, 'load@example.com', 'load-test-password-1', tier='enterprise')\n"
        "        _, raw = await service.create_key(s, u.id, 'bench')\n"
        "    await db.dispose()\n"
        "    print(raw)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([str(PYTHON), "-c", code, db_url], capture_output=True, text=True, timeout=120, check=False)
    key = done.stdout.strip()
    return key if done.returncode == 0 and key.startswith("kmy_") else None


@contextmanager
def scale_out(workdir: Path) -> Iterator[tuple[list[str], list[Path], str | None]]:
    """PostgreSQL + Redis + 2 × `serve --no-workers` + 2 × `worker`; yields (API base URLs, their logs, key)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.services import postgres_server, psql, redis_server
    from tests.support.topology import environment
    from tests.support.topology import scale_out as topology

    with postgres_server() as admin, redis_server() as redis:
        psql(admin, "CREATE DATABASE kamiyo_load")
        db_url = f"{admin}/kamiyo_load"
        env = environment(db_url, redis.url, KAMIYO_RATE_LIMITS="off", KAMIYO_OFFLINE="1", KAMIYO_LOG_LEVEL="INFO")
        subprocess.run([str(KAMIYO), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=300)
        seeded = {**env, "KAMIYO_SEED": "1"}  # the first API process to start seeds, as `make run` does
        with topology(seeded, workdir, apis=2, workers=2, timeout=START_TIMEOUT_S) as running:
            key = make_key(db_url)
            yield running.api_urls, [p.log for p in running.apis], key


@contextmanager
def server(workdir: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], Path, str | None]]:
    """`make run` without the network: migrate, make a key, `kamiyo serve` (seeds on first start)."""
    db_url = f"sqlite:///{workdir / 'kamiyo.db'}"
    env = dict(
        os.environ,
        KAMIYO_DATABASE_URL=db_url,
        KAMIYO_DATA_DIR=str(workdir),
        KAMIYO_RATE_LIMITS="off",
        KAMIYO_OFFLINE="1",
        KAMIYO_BACKUP_INTERVAL="0",
    )
    subprocess.run([str(KAMIYO), "db", "upgrade"], env=env, check=True, capture_output=True, timeout=300)
    key = make_key(db_url)
    log = workdir / "server.log"
    with log.open("wb") as sink:
        cmd = [str(KAMIYO), "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            yield proc, log, key
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def server_statuses(log: Path) -> Counter[str]:
    """Statuses of every request the server answered, from its JSON access log."""
    counts: Counter[str] = Counter()
    pattern = re.compile(rb'"logger":"kamiyo.access".*?"status":(\d{3})')
    with log.open("rb") as fh:
        for line in fh:
            match = pattern.search(line)
            if match:
                counts[match.group(1).decode()] += 1
    return counts


# --- the request mix ------------------------------------------------------------------------------


def request_mix(base: str, key: str | None, rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    """About 1,000 (path, headers) pairs in the proportions of the module docstring."""
    rows = get(f"{base}/exploits?page_size=500")["data"]
    refs = [str(r["id"]) for r in rows] + [r["tx_hash"] for r in rows if r.get("tx_hash")]
    chains = sorted({r["chain"] for r in rows})
    categories = sorted({r["category"] for r in rows})
    lists = ["/exploits", "/exploits?page_size=20", "/exploits?sort=-amount_usd"]
    lists += [f"/exploits?chain={c}" for c in chains] + [f"/exploits?category={c}" for c in categories]
    lists += ["/exploits?min_amount=1000000", "/exploits?chain=ethereum&min_amount=100000&page=2"]
    stats = ["/stats?days=7", "/stats?days=30", "/stats?days=365"]
    keyed = ["/api/v1/exploits?page_size=20", "/api/v1/stats?days=30", "/api/v1/me"]
    weights = [("list", 35), ("detail", 30), ("stats", 15), ("chains", 5), ("keyed", 15 if key else 0)]
    pick = {
        "list": lambda: rng.choice(lists),
        "detail": lambda: f"/exploits/{rng.choice(refs)}",
        "stats": lambda: rng.choice(stats),
        "chains": lambda: "/chains",
        "keyed": lambda: rng.choice(keyed),
    }
    names = [n for n, w in weights for _ in range(w)]
    mix = []
    for _ in range(1000):
        kind = rng.choice(names)
        mix.append((pick[kind](), {"Authorization": f"Bearer {key}"} if kind == "keyed" else {}))
    return mix


def check_mix(base: str, mix: list[tuple[str, dict[str, str]]]) -> None:
    """Every distinct request answers 200 before the run (so any non-2xx during it is a failure)."""
    for path, headers in {(p, tuple(h.items())): (p, h) for p, h in mix}.values():
        get(f"{base}{path}", headers)


# --- load generator 1: wrk -------------------------------------------------------------------------

WRK_LUA = """
local items = %s
local requests = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
  for k, item in ipairs(items) do requests[k] = wrk.format("GET", item[1], item[2]) end
end
function request() return requests[math.random(#requests)] end
"""


def _lua(mix: list[tuple[str, dict[str, str]]]) -> str:
    def lua_str(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    items = ", ".join(
        "{" + lua_str(p) + ", {" + ", ".join(f"[{lua_str(k)}]={lua_str(v)}" for k, v in h.items()) + "}}"
        for p, h in mix
    )
    return WRK_LUA % ("{" + items + "}")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(base: str, mix: list[tuple[str, dict[str, str]]], duration: int, connections: int, tmp: Path) -> Result:
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "mix.lua"
    script.write_text(_lua(mix))
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", "-s", str(script)]
    out = subprocess.run([*cmd, base], capture_output=True, text=True, timeout=duration + 120, check=True).stdout
    result = Result("wrk", duration, connections)
    result.requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    result.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    for pct in ("50", "75", "90", "99"):
        found = re.search(rf"\s{pct}%\s+([\d.]+(?:us|ms|s|m))\s", out)
        if found:
            result.latency_ms[f"p{pct}"] = round(_ms(found.group(1)), 2)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result.non_2xx = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        kinds = ("connect", "read", "write", "timeout")
        result.socket_error_kinds = dict(zip(kinds, map(int, errors.groups()), strict=True))
        result.socket_errors = sum(result.socket_error_kinds.values())
    return result


# --- load generator 2: pure-Python asyncio over raw keep-alive sockets ------------------------------


async def _connection(host: str, port: int, requests: list[bytes], deadline: float, tally: dict[str, Any]) -> None:
    rng = random.Random()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, TimeoutError):
        tally["errors"] += 1
        return
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(rng.choice(requests))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await asyncio.wait_for(reader.readexactly(length), 10)
            tally["latencies"].append(time.perf_counter() - started)
            tally["statuses"][head[9:12].decode()] += 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError, AttributeError):
        tally["errors"] += 1
    finally:
        writer.close()


def _raw_request(host: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run_python(bases: list[str], mix: list[tuple[str, dict[str, str]]], duration: int, connections: int) -> Result:
    """Connections spread round-robin over `bases`; one tally for all."""
    targets = []
    for base in bases:
        parts = urlsplit(base)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        requests = [_raw_request(host, path, headers) for path, headers in mix]
        targets.append((host, port, requests))
    tally: dict[str, Any] = {"latencies": [], "statuses": Counter(), "errors": 0}

    async def drive() -> None:
        deadline = time.monotonic() + duration
        conns = [_connection(*targets[n % len(targets)], deadline, tally) for n in range(connections)]
        await asyncio.gather(*conns)

    asyncio.run(drive())
    lat = sorted(tally["latencies"])
    result = Result("python", duration, connections, requests=len(lat), rps=round(len(lat) / duration, 1))
    for pct in (50, 75, 90, 99):
        if lat:
            result.latency_ms[f"p{pct}"] = round(lat[min(len(lat) - 1, len(lat) * pct // 100)] * 1000, 2)
    result.non_2xx = sum(n for s, n in tally["statuses"].items() if not s.startswith("2"))
    result.socket_errors = tally["errors"]
    return result


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="Seconds of load (max 600).")
    parser.add_argument("--connections", type=int, default=1000, help="Concurrent keep-alive connections.")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--topology", choices=("embedded", "scale-out"), default="embedded")
    parser.add_argument("--url", help="Drive an already running server on loopback instead of starting one.")
    parser.add_argument("--key", help="API key for the keyed calls with --url.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= MAX_DURATION_S or not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--duration 1..{MAX_DURATION_S}, --connections 1..{MAX_CONNECTIONS}")
    if args.url and urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("--url must point at this machine's loopback interface")
    return args


def merge(results: list[Result]) -> Result:
    """One Result from one wrk per API process: counts add up, each percentile is the worse of the two."""
    if len(results) == 1:
        return results[0]
    merged = Result(results[0].loadgen, results[0].duration_s, sum(r.connections for r in results))
    merged.requests = sum(r.requests for r in results)
    merged.rps = round(sum(r.rps for r in results), 1)
    merged.non_2xx = sum(r.non_2xx for r in results)
    merged.socket_errors = sum(r.socket_errors for r in results)
    for result in results:
        for kind, n in result.socket_error_kinds.items():
            merged.socket_error_kinds[kind] = merged.socket_error_kinds.get(kind, 0) + n
        for pct, ms in result.latency_ms.items():
            merged.latency_ms[pct] = max(ms, merged.latency_ms.get(pct, 0.0))
    return merged


def drive(args: argparse.Namespace, bases: list[str], key: str | None, tmp: Path) -> Result:
    mix = request_mix(bases[0], key, random.Random(args.seed))
    for base in bases:
        check_mix(base, mix)
    loadgen = "wrk" if args.loadgen in ("auto", "wrk") and shutil.which("wrk") else "python"
    if args.loadgen == "wrk" and loadgen != "wrk":
        raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install -y wrk)")
    print(
        f"driving {', '.join(bases)} with {loadgen}: {args.connections} connections for {args.duration} s", flush=True
    )
    if loadgen == "wrk":
        share = [args.connections // len(bases) + (n < args.connections % len(bases)) for n in range(len(bases))]
        with ThreadPoolExecutor(len(bases)) as pool:
            runs = [
                pool.submit(run_wrk, base, mix, args.duration, conns, tmp / f"wrk{n}")
                for n, (base, conns) in enumerate(zip(bases, share, strict=True))
            ]
            result = merge([run.result() for run in runs])
    else:
        result = run_python(bases, mix, args.duration, args.connections)
    result.keyed_share = round(sum(1 for _, h in mix if h) / len(mix), 3)
    return result


def report(result: Result) -> Path:
    print(json.dumps(asdict(result), indent=2))
    verdict = "PASS" if (result.server_5xx or 0) == 0 else "FAIL"  # judged: zero 5xx; latency is reported
    print(
        f"{verdict}: {result.requests} requests, {result.rps:.0f} req/s, p99 {result.latency_ms.get('p99')} ms, "
        f"5xx {result.server_5xx}, non-2xx {result.non_2xx}, socket errors {result.socket_errors}"
    )
    out = ROOT / "bench" / "results" / f"load-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(result), indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kamiyo-load-") as tmp_name:
        tmp = Path(tmp_name)
        if args.url:
            result = drive(args, [args.url.rstrip("/")], args.key, tmp)
        else:
            with started(args.topology, tmp) as (bases, logs, key):
                result = drive(args, bases, key, tmp)
                time.sleep(1)  # let the last access lines reach the logs
                statuses: Counter[str] = Counter()
                for log in logs:
                    statuses.update(server_statuses(log))
            result.server_statuses = dict(sorted(statuses.items()))
            result.server_5xx = sum(n for s, n in statuses.items() if s.startswith("5"))
        result.topology = "external" if args.url else args.topology
    print(f"results: {report(result)}")
    return 0 if (result.server_5xx or 0) == 0 else 1


@contextmanager
def started(topology: str, tmp: Path) -> Iterator[tuple[list[str], list[Path], str | None]]:
    if topology == "scale-out":
        with scale_out(tmp) as found:
            yield found
        return
    port = free_port()
    with server(tmp, port) as (_, log, key):
        yield [f"http://127.0.0.1:{port}"], [log], key


if __name__ == "__main__":
    sys.exit(main())
