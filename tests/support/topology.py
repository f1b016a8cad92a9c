"""The scale-out topology of ARCHITECTURE.md as real processes: N × `kamiyo serve --no-workers` and
M × `kamiyo worker` over one PostgreSQL database and one Redis.

Used by tests/ops/test_topology.py and by bench/load.py (`--topology scale-out`). Each process runs in a
session of its own with its output in a log file; `kill()` sends SIGKILL to one of them (the fault the
topology has to survive), and leaving the context stops whatever is left (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.services import free_port, wait_for_port

KAMIYO = Path(sys.executable).parent / "kamiyo"
# Keyed sources read these; a developer's own keys must never reach a test process.
_SOURCE_KEYS = ("CHAINABUSE_API_KEY", "DEFI_API_KEY", "FORTA_API_KEY", "X_BEARER_TOKEN")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    port: int  # HTTP port for an API process, metrics port for a worker
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Topology:
    apis: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)

    @property
    def api_urls(self) -> list[str]:
        return [p.url for p in self.apis]

    def kill(self, process: Process) -> None:
        """SIGKILL: no shutdown handler runs, as when a machine or container dies."""
        with suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=30)

    def metrics(self, process: Process) -> str:
        return httpx.get(f"{process.url}/metrics", timeout=10).text


def environment(database_url: str, redis_url: str | None, **overrides: str) -> dict[str, str]:
    """A clean environment for Kamiyo processes: none of the caller's KAMIYO_* settings or source keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAMIYO_") and k not in _SOURCE_KEYS}
    env.update(
        KAMIYO_DATABASE_URL=database_url,
        KAMIYO_SEED="0",
        KAMIYO_BACKUP_INTERVAL="0",
        KAMIYO_LOG_LEVEL="WARNING",
    )
    if redis_url:
        env["KAMIYO_REDIS_URL"] = redis_url
    env.update(overrides)
    return env


def _start(name: str, args: list[str], env: Mapping[str, str], port: int, logs: Path) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            [str(KAMIYO), *args], env=dict(env), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, popen, port, log)


def _stop(process: Process) -> None:
    if not process.alive:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.popen.pid, signal.SIGTERM)
    try:
        process.popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(timeout=30)


def _wait_ready(process: Process, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    wait_for_port(process.port, timeout=timeout)
    while time.monotonic() < deadline:
        if not process.alive:
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{process.url}{path}", timeout=5).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} not ready after {timeout}s:\n{process.log_text()[-3000:]}")


@contextmanager
def scale_out(
    env: Mapping[str, str],
    logs: Path,
    *,
    apis: int = 2,
    workers: int = 2,
    worker_args: tuple[str, ...] = (),
    serve_args: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> Iterator[Topology]:
    """Start the processes (APIs first: they migrate the database; workers wait for them) and stop them after."""
    topology = Topology()
    try:
        for n in range(apis):
            port = free_port()
            args = ["serve", "--no-workers", "--host", "127.0.0.1", "--port", str(port), *serve_args]
            topology.apis.append(_start(f"api{n + 1}", args, env, port, logs))
        for process in topology.apis:
            _wait_ready(process, "/health", timeout)
        for n in range(workers):
            port = free_port()
            worker_env = {**env, "KAMIYO_WORKER_METRICS": f"127.0.0.1:{port}"}
            topology.workers.append(_start(f"worker{n + 1}", ["worker", *worker_args], worker_env, port, logs))
        for process in topology.workers:
            _wait_ready(process, "/metrics", timeout)
        yield topology
    finally:
        for process in topology.apis + topology.workers:
            _stop(process)
