"""The scheduled backup: every KAMIYO_BACKUP_INTERVAL (default daily) in `kamiyo worker`, and in
`kamiyo serve` when it runs the in-process workers (the embedded default).

The next run is due one interval after the newest backup in the folder, so restarts neither skip
nor repeat a day, but never sooner than 10 minutes after the process started (so short-lived runs,
such as tests, take none); a lock file in the folder keeps two processes on one machine from both
running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from kamiyo.config import Settings
from kamiyo.kit.timeutil import utcnow
from kamiyo.ops.backup import BackupResult, backup_time, create_backup, list_backups

log = logging.getLogger(__name__)
STARTUP_GRACE_S = 600.0  # the first backup of a process waits this long (or one interval, if shorter)


@contextlib.contextmanager
def _folder_lock(folder: os.PathLike[str] | str) -> Iterator[bool]:
    """A non-blocking exclusive lock on `<folder>/.lock`; yields whether this process holds it."""
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def run_backup_job(settings: Settings) -> BackupResult | None:
    """One scheduled backup into the configured folder, with retention (None when another process
    holds the folder's lock or made a backup meanwhile). Sync: run it in a thread."""
    with _folder_lock(settings.backup_path) as mine:
        if not mine or seconds_until_due(settings.backup_path, settings.backup_interval_seconds) > 0:
            return None
        result = create_backup(settings.database_url, settings.backup_path, keep=settings.backup_keep)
    extra = {"path": str(result.path), "bytes": result.size, "seconds": round(result.seconds, 2)}
    log.info("backup written", extra={**extra, "removed": [p.name for p in result.removed]})
    return result


def seconds_until_due(out_dir: Path, interval_s: float) -> float:
    """0 when the newest backup is older than the interval (or there is none), else the wait until it is."""
    newest = list_backups(out_dir)
    if not newest:
        return 0.0
    age = (utcnow() - backup_time(newest[0])).total_seconds()
    return max(interval_s - age, 0.0)


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False


async def backup_loop(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Back up every KAMIYO_BACKUP_INTERVAL (default daily), counted from the newest file. A failure is
    logged and retried after an hour (or the interval, if shorter)."""
    interval = settings.backup_interval_seconds
    if interval <= 0:
        log.info("scheduled backups are off (KAMIYO_BACKUP_INTERVAL=0)")
        return
    stop = stop or asyncio.Event()
    grace = min(interval, STARTUP_GRACE_S)  # short-lived runs (tests, one-off workers) take no backup
    while not stop.is_set():
        wait = max(seconds_until_due(settings.backup_path, interval), grace)
        grace = 0.0
        if wait > 0 and await _stopped_within(stop, wait):
            return
        try:
            done = await asyncio.to_thread(run_backup_job, settings)
            retry = 0.0 if done else 60.0  # another process holds the folder: look again in a minute
        except Exception:
            log.exception("scheduled backup failed")
            retry = min(interval, 3600.0)
        if retry and await _stopped_within(stop, retry):
            return


class BackupScheduler:
    """`start()`/`stop()` around backup_loop, the shape `kamiyo worker` runs its parts in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(backup_loop(self.settings, self._stop), name="kamiyo-backups")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=30)
