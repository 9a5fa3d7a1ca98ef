"""The service's own small SQLite databases (reindex jobs, search analytics): connections that
several gunicorn workers can open at once, in WAL mode, with their schema."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect(path: Path, schema: str, set_up: bool, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to ``path`` (autocommit, busy timeout); with ``set_up``, WAL mode and
    ``schema`` too. Switching to WAL needs the database alone and does not wait for a busy
    one, so workers that start together retry instead of failing with "database is locked"."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    if set_up:
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(schema)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.05)
    return conn
