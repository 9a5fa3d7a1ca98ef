"""Reindex jobs: start ``faq-index build|update`` in a child process and keep its record.

The index folder's build lock is the only exclusion: a job starts only when this worker
can take the lock, and the lock (an inherited open file) passes to the child, which holds
it until it exits — so a second job, from any worker or any shell, gets 409 while one runs.
The child gets the indexer's settings and nothing else (never the reindex token).

Records live in ``<index_dir>/jobs.sqlite`` (WAL), readable by every worker. The worker
that starts a job records its result from a waiter thread; if that worker dies, whoever
reads the job later sees the lock no longer held by the job's pid and records the result
from the report the indexer left in its output file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from indexer.exitcodes import MESSAGES, ExitCode
from indexer.publish import lock_holder, try_lock
from indexer.publish import utc_now as now
from indexer.settings import Config
from service import metrics
from service.storage import connect

log = logging.getLogger("faq.service")

ROOT = Path(__file__).resolve().parent.parent  # the project folder: `python -m indexer.cli` runs from here
KEEP_JOBS = 50
RECORD_GRACE = 5.0  # seconds a finished job is left to its own worker to record

# The settings the indexer reads (a test checks this against indexer/): only these reach the child.
INDEXER_SETTINGS = ("corpus_dir", "index_dir", "content_selector", "max_file_bytes", "max_section_loss",
                    "keep_generations", "site_url", "max_sections_per_article", "log_level",
                    "crawl_user_agent", "crawl_concurrency", "crawl_timeout", "crawl_max_pages",
                    "crawl_max_depth", "crawl_max_redirects")
REQUEST_ID_ENV = "FAQ_REQUEST_ID"  # the HTTP request that started a job; the indexer tags its lines with it
# Environment variables a Python child needs to run as this one does.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class JobConflict(Exception):
    """The build lock is held: by a job's indexer (``job_id``) or by another build."""

    def __init__(self, job_id: str | None, pid: int | None):
        super().__init__(job_id or pid)
        self.job_id, self.pid = job_id, pid


_JOBS_SQL = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    generation TEXT,
    published INTEGER,
    counts TEXT NOT NULL,
    errors TEXT NOT NULL,
    warnings TEXT NOT NULL,
    pid INTEGER,
    owner INTEGER,
    out_path TEXT,
    err_path TEXT
);
"""

_COUNT_KEYS = ("articles", "sections", "links", "added", "changed", "removed", "rewritten", "warnings", "errors")


def child_environment(config: Config) -> dict[str, str]:
    """The indexer child's environment: a few process variables and the indexer's settings."""
    from indexer.settings import SETTINGS

    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    values = {**config.as_dict(), "corpus_dir": Path(config.corpus_dir).resolve(),
              "index_dir": Path(config.index_dir).resolve()}
    for setting in SETTINGS:
        if setting.name not in INDEXER_SETTINGS:
            continue
        value = values[setting.name]
        if isinstance(value, tuple | list):
            value = ",".join(value)
        env[setting.env] = "" if value is None else str(value)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class JobStore:
    """Reindex jobs of one index folder, shared by every worker through SQLite."""

    def __init__(self, config: Config):
        self.config = config
        self.index_dir = Path(config.index_dir)
        self.path = self.index_dir / "jobs.sqlite"
        self.out_dir = self.index_dir / "jobs"
        self._ready = False
        self._threads: dict[str, threading.Thread] = {}

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, _JOBS_SQL, set_up=not self._ready, timeout=10)
        conn.row_factory = sqlite3.Row
        self._ready = True
        return conn

    # -- public

    def start(self, mode: str, request_id: str | None = None) -> dict:
        """Take the build lock, start the indexer holding it, record the job; else ``JobConflict``.

        ``request_id`` (the HTTP request's) goes to the indexer, which tags its output lines
        with it, and to this service's log lines about the job."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd = try_lock(self.index_dir)
        if fd is None:
            holder = lock_holder(self.index_dir)
            raise JobConflict(self._job_of(holder), holder)
        job_id = uuid.uuid4().hex
        out_path = self.out_dir / f"{job_id}.out"
        err_path = self.out_dir / f"{job_id}.err"
        proc = None
        try:
            conn = self._connect()
            try:
                conn.execute(
                    "INSERT INTO jobs (id, status, mode, created, counts, errors, warnings, out_path, err_path) "
                    "VALUES (?, 'queued', ?, ?, ?, '[]', '[]', ?, ?)",
                    (job_id, mode, now(), json.dumps(dict.fromkeys(_COUNT_KEYS, 0)), str(out_path), str(err_path)),
                )
                try:
                    proc = self._spawn(mode, out_path, err_path, fd, request_id)
                except OSError as exc:
                    metrics.observe_reindex(mode, "failed", None)
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', finished = ?, errors = ? WHERE id = ?",
                        (now(), json.dumps([f"the indexer could not be started: {exc}"]), job_id),
                    )
                else:
                    _mark_holder(fd, proc.pid)
                    log.info("reindex job %s (%s) started: indexer pid %d (request id %s)",
                             job_id, mode, proc.pid, request_id or "-")
                    conn.execute("UPDATE jobs SET status = 'running', started = ?, pid = ?, owner = ? WHERE id = ?",
                                 (now(), proc.pid, os.getpid(), job_id))
                self._prune(conn)
            finally:
                conn.close()
        finally:
            os.close(fd)  # the child's inherited copy keeps the lock
        if proc is not None:
            thread = threading.Thread(target=self._wait, args=(job_id, proc), name=f"reindex-{job_id[:8]}",
                                      daemon=True)
            self._threads[job_id] = thread
            thread.start()
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        conn = self._connect()
        try:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if self._orphaned(row):
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if self._orphaned(row):
                    self._finish(conn, row, None)
                conn.execute("COMMIT")
                row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return self._public(row)
        finally:
            conn.close()

    def join(self, timeout: float | None = None) -> None:
        """Wait for this process's waiter threads (tests)."""
        for thread in list(self._threads.values()):
            thread.join(timeout)

    # -- internals

    def _orphaned(self, row: sqlite3.Row) -> bool:
        """A job still marked running whose indexer no longer holds the lock and whose
        waiter is not in this process: its worker died, so nobody else will record it."""
        if row["status"] not in ("queued", "running"):
            return False
        if row["id"] in self._threads:
            return False
        if row["pid"] and lock_holder(self.index_dir) == row["pid"]:
            return False
        # The indexer has ended. Its worker, if alive, is recording the exit code right now.
        return not _alive(row["owner"]) or _quiet_for(row["out_path"], RECORD_GRACE)

    def _job_of(self, pid: int | None) -> str | None:
        if not pid:
            return None
        conn = self._connect()
        try:
            row = conn.execute("SELECT id FROM jobs WHERE pid = ? AND status IN ('queued', 'running') "
                               "ORDER BY created DESC LIMIT 1", (pid,)).fetchone()
        finally:
            conn.close()
        return row["id"] if row else None

    def _spawn(self, mode: str, out_path: Path, err_path: Path, lock_fd: int,
               request_id: str | None = None) -> subprocess.Popen:
        env = child_environment(self.config)
        env["FAQ_LOCK_FD"] = str(lock_fd)
        if request_id:
            env[REQUEST_ID_ENV] = request_id
        command = [sys.executable, "-m", "indexer.cli", "build" if mode == "full" else "update", "--json"]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=ROOT,
                                    env=env, start_new_session=True, close_fds=True, pass_fds=(lock_fd,))

    def _wait(self, job_id: str, proc: subprocess.Popen) -> None:
        code: int | None = None
        try:
            code = proc.wait()
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is not None and row["status"] in ("queued", "running"):
                    self._finish(conn, row, code)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except Exception:
            log.exception("could not record the result of reindex job %s", job_id)
        finally:
            self._threads.pop(job_id, None)

    def _finish(self, conn: sqlite3.Connection, row: sqlite3.Row, code: int | None) -> None:
        """Record a finished job from its exit code (None: unknown) and its output files."""
        report = _read_report(row["out_path"])
        stderr = _read_text(row["err_path"])
        counts = dict.fromkeys(_COUNT_KEYS, 0)
        errors: list[str] = []
        warnings: list[str] = []
        generation = published = None
        if report is not None and code in (ExitCode.OK, None):
            status = "succeeded"
        else:
            status = "failed"
            message = _error_line(stderr)
            if code is None:
                errors.append(f"the indexer process (pid {row['pid']}) ended without a report; "
                              "its worker may have been restarted" + (f": {message}" if message else ""))
            elif code in MESSAGES:
                errors.append(f"{MESSAGES[code]}: {message}" if message else MESSAGES[code])
            else:
                errors.append(f"the indexer exited with code {code}" + (f": {message}" if message else ""))
        if report is not None:
            generation = report.get("generation")
            published = bool(report.get("published"))
            for key in _COUNT_KEYS:
                value = report.get(key, 0)
                counts[key] = len(value) if isinstance(value, list) else int(value or 0)
            for issue in report.get("issues", []):
                text = f"{issue.get('source', '')}: {issue.get('message', '')}"
                (errors if issue.get("level") == "error" else warnings).append(text)
        conn.execute(
            "UPDATE jobs SET status = ?, finished = ?, generation = ?, published = ?, counts = ?, errors = ?, "
            "warnings = ? WHERE id = ?",
            (status, now(), generation, published, json.dumps(counts), json.dumps(errors[:100]),
             json.dumps(warnings[:100]), row["id"]),
        )
        metrics.observe_reindex(row["mode"], status, _seconds_between(row["started"], now()))
        log.info("reindex job %s %s", row["id"], status)

    def _prune(self, conn: sqlite3.Connection) -> None:
        old = conn.execute(
            "SELECT id, out_path, err_path FROM jobs WHERE status IN ('succeeded', 'failed') "
            "ORDER BY created DESC LIMIT -1 OFFSET ?", (KEEP_JOBS,)
        ).fetchall()
        for row in old:
            for path in (row["out_path"], row["err_path"]):
                if path:
                    Path(path).unlink(missing_ok=True)
            conn.execute("DELETE FROM jobs WHERE id = ?", (row["id"],))

    @staticmethod
    def _public(row: sqlite3.Row) -> dict:
        return {
            "job": row["id"],
            "status": row["status"],
            "mode": row["mode"],
            "created": row["created"],
            "started": row["started"],
            "finished": row["finished"],
            "generation": row["generation"],
            "published": None if row["published"] is None else bool(row["published"]),
            "counts": json.loads(row["counts"]),
            "errors": json.loads(row["errors"]),
            "warnings": json.loads(row["warnings"]),
        }


def _read_text(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _read_report(path: str | None) -> dict | None:
    text = _read_text(path).strip()
    if not text:
        return None
    try:
        report = json.loads(text)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _seconds_between(start: str | None, end: str) -> float | None:
    try:
        return (datetime.fromisoformat(end.replace("Z", "+00:00"))
                - datetime.fromisoformat(str(start).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None


_TAG = re.compile(r"^\[request [^\]]*\] ")  # the indexer's request-id tag on each line


def _error_line(stderr: str) -> str:
    lines = [_TAG.sub("", ln.strip()) for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("faq-index: "):
            return line.removeprefix("faq-index: ")[:500]
    return lines[-1][:500] if lines else ""


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _quiet_for(path: str | None, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds if path else True
    except OSError:
        return True


def _mark_holder(fd: int, pid: int) -> None:
    """Record the child as the lock's holder, in the lock file's own format."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {pid} since {now()}\n".encode(), 0)
