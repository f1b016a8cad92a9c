"""Files that hold user data (the SQLite database and its WAL, backups, the secret key, cached answers):
readable by their owner only, whatever the process umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make `path` (and missing parents) owner-only when this call creates it; `tighten` also narrows an existing
    one (only for folders Kamiyo owns outright, never a database file's arbitrary parent such as /tmp)."""
    missing = not path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if missing or tighten:
        _narrow(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty and owner-only if it does not exist (without truncating it if it does), and narrow an
    existing one that others can read; SQLite then gives its -wal and -shm files the same mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        _narrow(path, PRIVATE_FILE)
    else:
        os.close(fd)
    return path


def _narrow(path: Path, mode: int) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(mode)
    except OSError:  # not ours to change (another user's file): leave it, the open decides
        pass
