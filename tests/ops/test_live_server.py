"""A real `kamiyo serve` process: multi-process metrics, JSON logs, and no secret anywhere in a full run's log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.ops.helpers import value
from tests.support.services import free_port, wait_for_port

KAMIYO = Path(sys.executable).parent / "kamiyo"


@contextmanager
def serve(tmp: Path, *args: str, **env: str) -> Iterator[tuple[str, Path]]:
    """`kamiyo serve` on a free loopback port with its stderr in a file; yields (base URL, log path)."""
    port = free_port()
    log = tmp / "server.log"
    environ = dict(
        os.environ,
        KAMIYO_DATABASE_URL=f"sqlite:///{tmp / 'kamiyo.db'}",
        KAMIYO_DATA_DIR=str(tmp),
        KAMIYO_SEED="0",
        KAMIYO_OFFLINE="1",
        KAMIYO_BACKUP_INTERVAL="0",
        **env,
    )
    with log.open("wb") as sink:
        cmd = [str(KAMIYO), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
        proc = subprocess.Popen(cmd, env=environ, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(port, timeout=90)
            yield f"http://127.0.0.1:{port}", log
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _json_lines(log: Path) -> list[dict[str, object]]:
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_metrics_add_up_over_all_worker_processes(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_stale.db").write_bytes(b"left over from a previous run")
    with serve(tmp_path, "--workers", "2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as (base, log):
        assert not (metrics_dir / "counter_stale.db").exists()  # emptied at start
        for _ in range(40):  # a new connection each time, so the kernel spreads them over the workers
            assert httpx.get(f"{base}/ping", timeout=10).status_code == 200
        scrapes = [httpx.get(f"{base}/metrics", timeout=10).text for _ in range(6)]
        time.sleep(0.5)
    pinged = {value(s, "kamiyo_http_requests_total", method="GET", route="/ping", status="200") for s in scrapes}
    assert pinged == {40.0}
    access = [line for line in _json_lines(log) if line.get("logger") == "kamiyo.access"]
    assert len({line["request_id"] for line in access}) == len(access) >= 46
    assert len(list(metrics_dir.glob("*.db"))) >= 2  # one file per worker process at least


def test_a_full_run_logs_no_secret_it_created(tmp_path: Path) -> None:
    """Signup, key, keyed calls, a webhook with its signing secret, failing calls: the server's whole
    stderr is grepped for every credential the run created or sent."""
    password = "correct-horse-battery-staple-42"
    bogus = "kmy_" + "Z" * 43
    secrets = [password, bogus, "sk_live_51NotARealStripeKey9", "hunter2-in-a-query"]
    with serve(tmp_path, KAMIYO_ALLOW_HTTP_WEBHOOKS="1", KAMIYO_LOG_LEVEL="DEBUG") as (base, log):
        with httpx.Client(base_url=base, timeout=30) as c:
            signup = c.post("/api/v1/auth/signup", json={"email": "ops@example.com", "password": password})
            assert signup.status_code == 201, signup.text
            csrf = signup.json()["csrf_token"]
            secrets += [csrf, c.cookies["kamiyo_session"]]
            key = c.post("/api/v1/keys", json={"name": "ops"}, headers={"X-CSRF-Token": csrf}).json()["key"]
            secrets.append(key)
            c.post("/api/v1/auth/login", json={"email": "ops@example.com", "password": password + "x"})
            c.cookies.clear()
        _set_tier(tmp_path, "ops@example.com", "team")
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
            assert c.get("/api/v1/me").status_code == 200
            assert c.get("/exploits", headers={"X-API-Key": key}).status_code == 200
            c.get(f"/exploits?api_key={key}&password=hunter2-in-a-query&stripe=sk_live_51NotARealStripeKey9")
            c.get("/exploits", headers={"Authorization": f"Bearer {bogus}"})
            hook = c.post("/api/v1/user-webhooks", json={"url": "http://127.0.0.1:9/hook"})
            assert hook.status_code in (201, 404), hook.text  # 404 only while webhooks are not built in
            if hook.status_code == 201:
                secrets.append(hook.json()["secret"])
                c.post(f"/api/v1/user-webhooks/{hook.json()['id']}/test")
                rotated = c.post(f"/api/v1/user-webhooks/{hook.json()['id']}/rotate-secret")
                if rotated.status_code == 200 and "secret" in rotated.json():
                    secrets.append(rotated.json()["secret"])
    text = log.read_text(errors="replace")
    assert '"logger":"kamiyo.access"' in text and '"route":"/api/v1/auth/signup"' in text
    leaked = [s[:12] + "…" for s in secrets if s in text]
    assert leaked == [], f"secrets in the server log: {leaked}"


def _set_tier(tmp: Path, email: str, tier: str) -> None:
    env = dict(os.environ, KAMIYO_DATABASE_URL=f"sqlite:///{tmp / 'kamiyo.db'}", KAMIYO_DATA_DIR=str(tmp))
    done = subprocess.run(
        [str(KAMIYO), "users", "set-tier", email, tier], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_worker_takes_the_scheduled_backup_and_serves_its_own_metrics(tmp_path: Path, sqlite_template: Path) -> None:
    (tmp_path / "kamiyo.db").write_bytes(sqlite_template.read_bytes())
    port = free_port()
    env = dict(
        os.environ,
        KAMIYO_DATABASE_URL=f"sqlite:///{tmp_path / 'kamiyo.db'}",
        KAMIYO_DATA_DIR=str(tmp_path),
        KAMIYO_OFFLINE="1",
        KAMIYO_BACKUP_INTERVAL="2s",  # due at once; the first one waits one interval (10 min by default)
        KAMIYO_WORKER_METRICS=f"127.0.0.1:{port}",
    )
    cmd = [str(KAMIYO), "worker", "--no-ingest", "--no-deliver"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, timeout=60)
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "# TYPE kamiyo_ingest_runs" in body and "# TYPE kamiyo_deliveries" in body
        deadline = time.monotonic() + 60
        while not list((tmp_path / "backups").glob("kamiyo-*.sqlite3.gz")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list((tmp_path / "backups").glob("kamiyo-*.sqlite3.gz"))) >= 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
