"""Export benchmark: the whole 1M-row history through `GET /api/v1/exploits/export` (CSV and JSONL) and
`kamiyo export`, with the serving process's RSS sampled throughout.

    .venv/bin/python bench/export.py [--source-db PATH] [--db PATH] [--formats csv,jsonl] [--no-cli]

Workload: a copy (`--db`, default <tmp>/kamiyo-bench/export-1000000.db) of the SQLite database bench/api.py
builds with 1,000,000 synthetic exploits (`--source-db`, default <tmp>/kamiyo-bench/kamiyo-1000000.db; run
`bench/api.py` first, or `bench/synth.py` + `kamiyo import`). A pro user and key are created in the copy,
`kamiyo serve --no-workers` (1 process, `KAMIYO_RATE_LIMITS=off`) is started on 127.0.0.1 for each format, which is
downloaded once in full by a client that counts lines and bytes and keeps nothing. RSS (VmRSS from /proc) of
the server is read every 50 ms; "RSS +" is the peak during the download minus the RSS just before it (after
a warm-up export of a few rows). Target: +50 MB at most, every row delivered. `kamiyo export` is measured
the same way on its own process (peak RSS minus its RSS when the first rows reach the file).

Results are printed and written to bench/results/export-<timestamp>.json. The server runs in its own
process group and is stopped in every case; every wait is bounded; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KAMIYO = ROOT / ".venv" / "bin" / "kamiyo"
HOST = "127.0.0.1"
RSS_TARGET_MB = 50.0
START_TIMEOUT_S = 180
EXPORT_TIMEOUT_S = 1800
SAMPLE_S = 0.05


@dataclass
class Run:
    what: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rows_per_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_delta_mb: float = 0.0
    verdict: str = ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    work = Path(tempfile.gettempdir()) / "kamiyo-bench"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-db", type=Path, default=work / "kamiyo-1000000.db", help="1M-row database.")
    parser.add_argument("--db", type=Path, default=work / "export-1000000.db", help="Working copy.")
    parser.add_argument("--formats", default="csv,jsonl", help="Comma list of csv, jsonl.")
    parser.add_argument("--no-cli", action="store_true", help="Skip measuring `kamiyo export`.")
    parser.add_argument("--reuse", action="store_true", help="Keep an existing working copy.")
    return parser.parse_args(argv)


def env_for(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_")}
    env.update(
        KAMIYO_DATABASE_URL=f"sqlite:///{db}",
        KAMIYO_SEED="0",
        KAMIYO_OFFLINE="1",
        KAMIYO_RATE_LIMITS="off",
        KAMIYO_DATA_DIR=str(db.parent / "data"),
        KAMIYO_LOG_LEVEL="WARNING",
    )
    return env


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


class Sampler:
    """Peak RSS of one process, read every SAMPLE_S seconds on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def prepare(args: argparse.Namespace) -> tuple[str, int]:
    """The working copy, migrated, with a pro user's key; returns (key, public exploit count)."""
    if not args.reuse or not args.db.exists():
        if not args.source_db.exists():
            raise SystemExit(f"no {args.source_db}: run bench/api.py (or bench/synth.py + kamiyo import) first")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        print(f"copying {args.source_db} -> {args.db}", flush=True)
        with sqlite3.connect(args.source_db) as src, sqlite3.connect(args.db) as dst:
            src.backup(dst)  # consistent even if the source is open elsewhere
    env = env_for(args.db)
    email = f"bench-export-{int(time.time())}@example.com"
    for cmd in (["db", "upgrade"], ["users", "create", email, "--tier", "pro"]):
        subprocess.run([str(KAMIYO), *cmd], env=env, check=True, capture_output=True, timeout=600)
    made = subprocess.run(
        [str(KAMIYO), "keys", "create", email], env=env, check=True, capture_output=True, text=True, timeout=120
    )
    with sqlite3.connect(args.db) as conn:
        count = conn.execute("SELECT count(*) FROM exploits WHERE is_test = 0").fetchone()[0]
    return made.stdout.strip().splitlines()[-1], int(count)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
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
def server(db: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    log = db.parent / "export-server.log"
    cmd = [str(KAMIYO), "serve", "--host", HOST, "--port", str(port), "--no-workers"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env_for(db), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/ping", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit {proc.poll()}); see {log}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc)


def download(port: int, key: str, fmt: str, pid: int, expected: int, query: str = "") -> Run:
    run = Run(f"API {fmt}")
    url = f"http://{HOST}:{port}/api/v1/exploits/export?format={fmt}{query}"
    headers = {"Authorization": f"Bearer {key}"}
    run.rss_before_mb = rss_mb(pid)
    started = time.perf_counter()
    lines = 0
    with Sampler(pid) as sampler, httpx.stream("GET", url, headers=headers, timeout=EXPORT_TIMEOUT_S) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 16):
            run.bytes += len(chunk)
            lines += chunk.count(b"\n")
    run.seconds = time.perf_counter() - started
    run.rows = lines - (1 if fmt == "csv" else 0)
    return finish(run, sampler.peak, expected)


def finish(run: Run, peak: float, expected: int) -> Run:
    run.rss_peak_mb = peak
    run.rss_delta_mb = max(0.0, peak - run.rss_before_mb)
    run.rows_per_s = run.rows / run.seconds if run.seconds else 0.0
    ok = run.rss_delta_mb <= RSS_TARGET_MB and (expected < 0 or run.rows == expected)
    run.verdict = "PASS" if ok else "FAIL"
    return run


def cli_export(db: Path, fmt: str, expected: int) -> Run:
    run = Run(f"kamiyo export {fmt}")
    out = db.parent / f"export-cli.{fmt}"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(KAMIYO), "export", "--format", fmt, "--out", str(out)],
        env=env_for(db),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
            time.sleep(0.02)  # the baseline: started, first rows written
        run.rss_before_mb = rss_mb(proc.pid)
        with Sampler(proc.pid) as sampler:
            proc.wait(timeout=EXPORT_TIMEOUT_S)
    finally:
        stop(proc)
    run.seconds = time.perf_counter() - started
    run.bytes = out.stat().st_size
    with out.open("rb") as handle:
        run.rows = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    run.rows -= 1 if fmt == "csv" else 0
    out.unlink(missing_ok=True)
    return finish(run, sampler.peak, expected)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    key, expected = prepare(args)
    print(f"database: {args.db} ({expected:,} public exploits)")
    runs: list[Run] = []
    for fmt in formats:  # a fresh server per format: each delta starts from the same state
        port = free_port()
        with server(args.db, port) as proc:
            download(port, key, fmt, proc.pid, -1, "&chain=celo&since=2026-01-01")  # warm-up: a few rows
            runs.append(download(port, key, fmt, proc.pid, expected))
            print(asdict(runs[-1]), flush=True)
    if not args.no_cli:
        for fmt in formats:
            runs.append(cli_export(args.db, fmt, expected))
            print(asdict(runs[-1]), flush=True)
    print(f"\n{'run':<20} {'rows':>10} {'MB':>8} {'s':>7} {'rows/s':>9} {'RSS before':>10} {'RSS +':>7}  verdict")
    for r in runs:
        print(
            f"{r.what:<20} {r.rows:>10,} {r.bytes / 1e6:>8.0f} {r.seconds:>7.1f} {r.rows_per_s:>9,.0f} "
            f"{r.rss_before_mb:>9.0f}M {r.rss_delta_mb:>6.1f}M  {r.verdict}"
        )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"export-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"rows": expected, "db": str(args.db), "runs": [asdict(r) for r in runs]}, indent=2))
    print(f"\nwritten to {path}")
    return 0 if all(r.verdict == "PASS" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
