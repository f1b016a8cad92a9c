"""Run `kamiyo` commands in this process, or as the installed console script where a process matters.

In-process (typer's runner) is the same code path as the console script minus a fresh interpreter and
its imports (about 1.4 s a command). A command runs its own event loop, so async tests call
`kamiyo_async`, which runs it in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from kamiyo.cli import app
from kamiyo.config import get_settings

EXE = Path(sys.executable).parent / "kamiyo"
QUIET = {"KAMIYO_SEED": "0", "KAMIYO_OFFLINE": "1", "COLUMNS": "200"}


def kamiyo(*args: str, input: str | None = None, **env: str | None) -> subprocess.CompletedProcess[str]:
    """`kamiyo ARGS` with the quiet defaults and `env` (None unsets); its exit status, stdout and stderr."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []  # as in a fresh process: warnings reach this command's stderr through logging's last resort
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args), env={**QUIET, **env}, input=input)
    finally:
        get_settings.cache_clear()
        root.handlers[:] = saved
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


async def kamiyo_async(*args: str, input: str | None = None, **env: str | None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(kamiyo, *args, input=input, **env)


def kamiyo_process(*args: str, timeout: float = 120, **env: str | None) -> subprocess.CompletedProcess[str]:
    """The console script in its own process: for what only a process shows (exit paths, signals, imports)."""
    full = dict(os.environ, **QUIET)
    for name, value in env.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return subprocess.run([str(EXE), *args], env=full, capture_output=True, text=True, timeout=timeout, check=False)
