"""A real JupyterLab or Notebook 7 on loopback, driven by headless Chromium (Playwright).

:class:`JupyterServer` starts ``jupyter lab`` or ``jupyter notebook`` with a token, no
browser of its own, isolated settings and the fake OpenRouter behind
``OPENROUTER_BASE_URL``. :class:`NotebookPage` opens a notebook in Debian's Chromium
(``/usr/bin/chromium``: Playwright cannot download a browser here) and runs its cells the
way a user does, with the keyboard. Every wait has a generous deadline and says what
never happened; nothing depends on how fast the machine is.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processes import default_stop_signals

CHROMIUM = os.environ.get("ORMAGIC_CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a sandbox with a closed network (../.library env notes)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "ormagic-browser-test-token"
WAIT = 90.0  # seconds: only reached when something is broken


def missing_requirements() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import jupyterlab  # noqa: F401
        import notebook  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return (
            f"{error.name} is not installed: `make browser-deps` installs JupyterLab, "
            "Notebook 7 and Playwright (CI runs it)"
        )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: `make browser-deps` installs Debian's chromium"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.1)


class JupyterServer:
    """``jupyter lab`` or ``jupyter notebook`` serving ``root`` on a free loopback port."""

    def __init__(self, app: str, root: Path, env: dict[str, str]) -> None:
        self.app = app
        self.root = root
        self.port = _free_port()
        home = root.parent / f"{app}-home"
        settings = home / "lab-settings"
        settings.mkdir(parents=True, exist_ok=True)
        if app == "lab":
            # no "news" notification, no update check: a quiet, reproducible frontend
            # (Notebook 7 has neither, and chokes on settings for a plugin it lacks)
            notification = settings / "@jupyterlab" / "apputils-extension"
            notification.mkdir(parents=True, exist_ok=True)
            (notification / "notification.jupyterlab-settings").write_text(
                json.dumps({"fetchNews": "false", "checkForUpdates": False})
            )
        self._env = {
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            **({"JUPYTERLAB_SETTINGS_DIR": str(settings)} if app == "lab" else {}),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        }
        self.log = home / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> JupyterServer:
        args = [
            sys.executable,
            "-m",
            "jupyter",
            self.app,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.allow_root=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                args,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                preexec_fn=default_stop_signals,  # its kernels inherit it: interrupts work
            )
        wait_for(self._up, f"jupyter {self.app} answering on {self.url} (log: {self.log})")
        return self

    def _up(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"jupyter {self.app} exited; see {self.log}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/status?token={TOKEN}", timeout=5):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def notebook_url(self, name: str) -> str:
        if self.app == "lab":
            # reset: JupyterLab would otherwise reopen every notebook of earlier pages
            return f"{self.url}/lab/tree/{name}?token={TOKEN}&reset"
        return f"{self.url}/notebooks/{name}?token={TOKEN}"

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> JupyterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def copy_screenshot(source: Path, name: str) -> None:
    """Keep a screenshot for the docs when ORMAGIC_SCREENSHOTS names a directory."""
    target = os.environ.get("ORMAGIC_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, Path(target) / name)
