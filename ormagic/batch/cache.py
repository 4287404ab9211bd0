"""Answers kept on disk, so that a re-run pays only for the rows it has not seen.

SQLite from the standard library, one file: ``$ORMAGIC_CACHE_DIR/answers.sqlite3``, else
the user's cache directory (``~/.cache/ormagic`` on Linux, ``~/Library/Caches/ormagic`` on
macOS, ``%LOCALAPPDATA%\\ormagic\\Cache`` on Windows). An answer is keyed on everything that
shapes it: the server's base URL and the request body (model, messages, parameters,
schema), never the API key, which is neither in the key nor stored. Only good answers are
kept. WAL journaling lets several processes (Dask workers on one machine, two notebooks)
share the file: each answer is committed as it is kept, so no write transaction stays open
between answers, and a writer waits at most ``BUSY_TIMEOUT`` seconds for another's.

The rows of a deferred job (OpenRouter's batch endpoint) are remembered here as well, so
that re-running the cell, or a new session, finds the job its rows are waiting for.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BUSY_TIMEOUT", "AnswerCache", "CachedAnswer", "cache_dir", "cache_key"]

# Seconds a write waits for another connection's; each write lasts milliseconds.
BUSY_TIMEOUT = 5.0
_FILE = "answers.sqlite3"
_CHUNK = 500  # keys per SELECT … IN (…): well under SQLite's variable limit
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    model TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    job_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (job_id, custom_id)
);
CREATE INDEX IF NOT EXISTS pending_key ON pending (key);
"""


@dataclass(frozen=True)
class CachedAnswer:
    """A good answer as it was first received, with what it cost then."""

    text: str
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``ORMAGIC_CACHE_DIR``, else the platform's cache directory for ormagic."""
    env = os.environ if env is None else env
    chosen = env.get("ORMAGIC_CACHE_DIR", "").strip()
    if chosen:
        return Path(chosen).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "ormagic"
    if sys.platform == "win32":
        local = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(local) / "ormagic" / "Cache"
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else home / ".cache") / "ormagic"


def cache_key(base_url: str, body: Mapping[str, Any]) -> str:
    """SHA-256 of what shapes an answer: the base URL and the body (``stream`` aside)."""
    shaping = {k: v for k, v in body.items() if k != "stream"}
    text = json.dumps(
        {"base_url": base_url.rstrip("/"), "body": shaping},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # surrogatepass: a lone surrogate in a row is hashed, not an error (it is sent as U+FFFD)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AnswerCache:
    """The cache file; opened on first use, usable from one thread at a time."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / _FILE
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AnswerCache({str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedAnswer] = {}
        with self._lock:
            db = self._conn()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT key, answer, model, prompt_tokens, completion_tokens, cost "
                    f"FROM answers WHERE key IN ({marks})"
                )
                for key, text, model, prompt, completion, cost in db.execute(query, chunk):
                    found[key] = CachedAnswer(text, model, prompt, completion, cost)
        return found

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Keep an answer, committed at once (an error leaves nothing half-written)."""
        with self._lock:
            db = self._conn()
            with db:  # commits, or rolls back on an error: never a transaction left open
                db.execute(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        answer.text,
                        answer.model,
                        answer.prompt_tokens,
                        answer.completion_tokens,
                        answer.cost,
                        time.time(),
                    ),
                )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                db.close()

    # -- deferred jobs ------------------------------------------------------------------

    def add_pending(self, job_id: str, items: Iterable[tuple[str, str]]) -> None:
        """Remember that ``(custom_id, key)`` rows wait for ``job_id``."""
        with self._lock:
            db = self._conn()
            db.executemany(
                "INSERT OR REPLACE INTO pending VALUES (?, ?, ?)",
                [(job_id, custom_id, key) for custom_id, key in items],
            )
            db.commit()

    def pending_jobs(self, keys: Iterable[str]) -> dict[str, str]:
        """key -> the job it waits for, for the keys that wait for one."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        with self._lock:
            db = self._conn()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, job_id FROM pending WHERE key IN ({marks})"
                found.update(db.execute(query, chunk))
        return found

    def job_rows(self, job_id: str) -> dict[str, str]:
        """custom_id -> key for the rows of ``job_id``."""
        with self._lock:
            query = "SELECT custom_id, key FROM pending WHERE job_id = ?"
            return dict(self._conn().execute(query, (job_id,)))

    def forget_job(self, job_id: str) -> None:
        with self._lock:
            db = self._conn()
            db.execute("DELETE FROM pending WHERE job_id = ?", (job_id,))
            db.commit()
