"""Child processes the suite starts react to SIGINT and SIGTERM the same, whatever the test
runner inherited.

``nohup make test``, ``make test &`` in a script, a CI runner: each may start the suite
with SIGINT or SIGTERM ignored, or blocked, and a child inherits both across exec. A
kernel whose SIGINT is blocked never sees an interrupt, and a server that ignores
SIGTERM never stops. Pass ``preexec_fn=default_stop_signals`` to what starts a child
that a test interrupts or stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["STOP_SIGNALS", "default_stop_signals", "python_child"]

ROOT = Path(__file__).resolve().parents[1]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def default_stop_signals() -> None:
    """In the child, before exec: SIGINT and SIGTERM take their default action and are
    not blocked, as in a process started from an interactive shell. (SIGHUP is left as
    it is: under ``nohup`` the children should survive a hang-up too.)"""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def python_child(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the project's root, this checkout first on its path, its
    output captured as text; the caller checks the return code (and shows stderr)."""
    base = dict(os.environ if env is None else env)
    paths = [str(ROOT), str(ROOT / "tests"), base.get("PYTHONPATH", "")]
    base["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
