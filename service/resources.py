"""The API's resources, the per-worker response cache and the reindex job store.

Parameter rules, identical on every endpoint:

* ``q`` is required on ``/v1/search``, ``/v1/answer`` and ``/v1/suggest``. Whitespace is
  collapsed and the text stripped (``/v1/suggest`` keeps one trailing space, which means
  "the last word is complete"); missing, empty or blank → 400; longer than
  ``FAQ_MAX_QUERY_CHARS`` after that normalisation → 400.
* Integers (``limit``, ``offset``) are plain decimal digits within the documented range,
  else 400 naming the parameter and the range.
* A parameter given twice → 400. Unknown parameters are ignored.
"""

from __future__ import annotations

import hmac
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
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import falcon

from indexer.settings import SETTINGS, Config
from service.search import Engine

log = logging.getLogger("faq.service")

ROOT = Path(__file__).resolve().parent.parent  # the project folder: `python -m indexer.cli` runs from here
MAX_BODY_BYTES = 64 * 1024
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
KEEP_JOBS = 50


# --------------------------------------------------------------------------- parameters


def _single(req: falcon.Request, name: str) -> str | None:
    value = req.params.get(name)
    if isinstance(value, list):
        raise falcon.HTTPBadRequest(description=f"The {name} parameter may be given only once.")
    return value


def normalise_query(text: str, keep_trailing_space: bool = False) -> str:
    """Whitespace runs collapsed to one space, leading and trailing whitespace removed.

    With ``keep_trailing_space`` (suggestions) one trailing space survives: it tells the
    suggester that the last word is complete rather than a prefix.
    """
    collapsed = " ".join(text.split())
    if keep_trailing_space and collapsed and text[-1:].isspace():
        collapsed += " "
    return collapsed


def query_param(req: falcon.Request, config: Config, keep_trailing_space: bool = False) -> str:
    limit = config.max_query_chars
    raw = _single(req, "q")
    if raw is None:
        raise falcon.HTTPBadRequest(
            description=f"The q parameter is required: the text to search for, 1 to {limit} characters."
        )
    q = normalise_query(raw, keep_trailing_space)
    if not q.strip():
        raise falcon.HTTPBadRequest(description="The q parameter must not be empty or only whitespace.")
    if len(q.rstrip()) > limit:
        raise falcon.HTTPBadRequest(
            description=f"The q parameter is too long: {len(q.rstrip())} characters, at most {limit} are allowed."
        )
    return q


_INT = re.compile(r"[0-9]{1,9}")


def int_param(req: falcon.Request, name: str, default: int, low: int, high: int) -> int:
    raw = _single(req, name)
    if raw is None:
        return default
    text = raw.strip()
    value = int(text) if _INT.fullmatch(text) else None
    if value is None or not low <= value <= high:
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        raise falcon.HTTPBadRequest(
            description=f"The {name} parameter must be an integer from {low} to {high} (got {shown!r})."
        )
    return value


# --------------------------------------------------------------------------- response cache


class ResponseCache:
    """A bounded, thread-safe LRU of engine results, one per worker; ``size`` 0 disables it.

    Keys start with the generation name, so a newly published generation never gets an
    answer computed from the previous one; the old entries simply age out.
    """

    def __init__(self, size: int):
        self.size = max(int(size), 0)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], still_valid: Callable[[], bool]) -> Any:
        if not self.size:
            return compute()
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
        value = compute()
        if still_valid():  # the generation did not change while computing
            with self._lock:
                self._data[key] = value
                self._data.move_to_end(key)
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# --------------------------------------------------------------------------- query resources


class _Cached:
    def __init__(self, engine: Engine, config: Config, cache: ResponseCache):
        self.engine = engine
        self.config = config
        self.cache = cache

    def cached(self, endpoint: str, q: str, params: tuple, compute: Callable[[], dict]) -> dict:
        generation = self.engine.generation().name
        key = (generation, endpoint, q, params)
        return self.cache.get_or_compute(
            key, compute, lambda: self.engine.generation().name == generation
        )


def _timed(result: dict, started: float, after: str) -> dict:
    """``result`` with ``took_ms`` inserted after the key ``after`` (the cached dict is not touched)."""
    took = round((time.perf_counter() - started) * 1000, 2)
    out: dict = {}
    for key, value in result.items():
        out[key] = value
        if key == after:
            out["took_ms"] = took
    out.setdefault("took_ms", took)
    return out


class SearchResource(_Cached):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        q = query_param(req, self.config)
        limit = int_param(req, "limit", 10, 1, 50)
        offset = int_param(req, "offset", 0, 0, 1000)
        article = _single(req, "article") or None
        result = self.cached(
            "search", q, (limit, offset, article),
            lambda: self.engine.search(q, limit=limit, offset=offset, article=article),
        )
        resp.media = _timed(result, started, after="total")


class AnswerResource(_Cached):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = query_param(req, self.config)
        resp.media = self.cached("answer", q, (), lambda: self.engine.answer(q))


class SuggestResource(_Cached):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = query_param(req, self.config, keep_trailing_space=True)
        limit = int_param(req, "limit", 8, 1, 20)
        resp.media = self.cached("suggest", q, (limit,), lambda: self.engine.suggest(q, limit=limit))


# --------------------------------------------------------------------------- articles


class ArticlesResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        resp.media = self.engine.articles()


class ArticleResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp, slug: str) -> None:
        resp.media = self.engine.article(slug)


class RelatedResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp, slug: str) -> None:
        limit = int_param(req, "limit", 10, 1, 50)
        resp.media = self.engine.related(slug, limit=limit)


class FaqResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp, slug: str, anchor: str) -> None:
        resp.media = self.engine.faq(slug, anchor)


# --------------------------------------------------------------------------- health


class HealthResource:
    http_cache = False

    def on_get(self, req, resp) -> None:
        resp.media = {"status": "ok"}


class ReadyResource:
    http_cache = False

    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        resp.media = {"status": "ready", **self.engine.status()}  # NoIndex → 503


class OpenApiResource:
    def __init__(self, document: bytes):
        self.document = document

    def on_get(self, req, resp) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.document


# --------------------------------------------------------------------------- reindex jobs


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pid_alive(pid: int | None, owner: int | None = None) -> bool:
    """Is ``pid`` still the indexer that ``owner`` (a worker's pid) started?

    A zombie counts as alive while its parent is the owner: the owner's waiter thread is
    about to record its result and reap it. A zombie adopted by another process (its
    worker died, and PID 1 in a container may never reap it) is dead.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's: not ours, the pid was reused
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc: trust kill(0)
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] == "Z":
        return owner is not None and len(fields) > 1 and fields[1] == str(owner)
    return b"indexer.cli" in cmdline


class JobConflict(Exception):
    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


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
_EXIT_MESSAGES = {
    3: "another build holds the index lock",
    4: "refused by the section-loss safety check",
}


class JobStore:
    """Reindex jobs in ``<index_dir>/jobs.sqlite`` (WAL), readable by every worker.

    The worker that accepts a job starts ``python -m indexer.cli build|update --json`` in its
    own session and a daemon thread that waits for it without reaping it (``waitid`` with
    ``WNOWAIT``), records the result, then reaps it: while the job row says "running" its
    pid is alive (or a zombie of its worker), so no other worker can take a
    finished-but-unrecorded job for a dead one. If the worker itself dies, the indexer runs
    on; whoever reads the job later finds the pid gone and records it from the report the
    indexer left in its output file.
    """

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
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        if not self._ready:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_JOBS_SQL)
            self._ready = True
        return conn

    # -- public

    def start(self, mode: str) -> dict:
        job_id = uuid.uuid4().hex
        out_path = self.out_dir / f"{job_id}.out"
        err_path = self.out_dir / f"{job_id}.err"
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time, across workers
            for row in conn.execute("SELECT * FROM jobs WHERE status IN ('queued', 'running')").fetchall():
                if _pid_alive(row["pid"], row["owner"]):
                    conn.execute("ROLLBACK")
                    raise JobConflict(row["id"])
                self._finish(conn, row, None)
            conn.execute(
                "INSERT INTO jobs (id, status, mode, created, counts, errors, warnings, out_path, err_path) "
                "VALUES (?, 'queued', ?, ?, ?, '[]', '[]', ?, ?)",
                (job_id, mode, _now(), json.dumps(dict.fromkeys(_COUNT_KEYS, 0)), str(out_path), str(err_path)),
            )
            try:
                proc = self._spawn(mode, out_path, err_path)
            except OSError as exc:
                conn.execute(
                    "UPDATE jobs SET status = 'failed', finished = ?, errors = ? WHERE id = ?",
                    (_now(), json.dumps([f"the indexer could not be started: {exc}"]), job_id),
                )
                proc = None
            else:
                conn.execute("UPDATE jobs SET status = 'running', started = ?, pid = ?, owner = ? WHERE id = ?",
                             (_now(), proc.pid, os.getpid(), job_id))
            self._prune(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
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
            if row["status"] in ("queued", "running") and not _pid_alive(row["pid"], row["owner"]):
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row["status"] in ("queued", "running") and not _pid_alive(row["pid"], row["owner"]):
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

    def _spawn(self, mode: str, out_path: Path, err_path: Path) -> subprocess.Popen:
        # Relative folders are relative to this process's working directory, not ROOT.
        corpus_dir = Path(self.config.corpus_dir).resolve()
        index_dir = Path(self.config.index_dir).resolve()
        values = {**self.config.as_dict(), "corpus_dir": corpus_dir, "index_dir": index_dir}
        env = dict(os.environ)
        for setting in SETTINGS:  # the indexer sees exactly this app's configuration
            value = values[setting.name]
            if isinstance(value, tuple | list):
                value = ",".join(value)
            env[setting.env] = "" if value is None else str(value)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "indexer.cli", "build" if mode == "full" else "update", "--json",
                   "--corpus", str(corpus_dir), "--index", str(index_dir)]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=ROOT,
                                    env=env, start_new_session=True, close_fds=True)

    def _wait(self, job_id: str, proc: subprocess.Popen) -> None:
        code: int | None = None
        try:
            try:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            except (AttributeError, ChildProcessError, OSError):
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
            proc.wait()  # reap
            self._threads.pop(job_id, None)

    def _finish(self, conn: sqlite3.Connection, row: sqlite3.Row, code: int | None) -> None:
        """Record a finished job from its exit code (None: unknown) and its output files."""
        report = _read_report(row["out_path"])
        stderr = _read_text(row["err_path"])
        counts = dict.fromkeys(_COUNT_KEYS, 0)
        errors: list[str] = []
        warnings: list[str] = []
        generation = published = None
        if report is not None and code in (0, None):
            status = "succeeded"
        else:
            status = "failed"
            message = _error_line(stderr)
            if code is None:
                errors.append(f"the indexer process (pid {row['pid']}) ended without a report; "
                              "its worker may have been restarted" + (f": {message}" if message else ""))
            elif code in _EXIT_MESSAGES:
                errors.append(f"{_EXIT_MESSAGES[code]}: {message}" if message else _EXIT_MESSAGES[code])
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
            (status, _now(), generation, published, json.dumps(counts), json.dumps(errors[:100]),
             json.dumps(warnings[:100]), row["id"]),
        )

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


def _error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("faq-index: "):
            return line.removeprefix("faq-index: ")[:500]
    return lines[-1][:500] if lines else ""


class _ReindexAuth:
    http_cache = False

    def __init__(self, config: Config, jobs: JobStore):
        self.token = config.reindex_token
        self.jobs = jobs

    def authorize(self, req: falcon.Request) -> None:
        if not self.token:
            raise falcon.HTTPNotFound(description="Reindexing over HTTP is off (FAQ_REINDEX_TOKEN is not set).")
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), self.token.encode("utf-8")
        )
        if not ok:
            raise falcon.HTTPUnauthorized(
                description="A valid reindex token is required: send 'Authorization: Bearer <token>'.",
                challenges=["Bearer"],
            )


class ReindexResource(_ReindexAuth):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.authorize(req)
        mode = _reindex_mode(req)
        try:
            job = self.jobs.start(mode)
        except JobConflict as exc:
            raise falcon.HTTPConflict(
                description=f"Reindex job {exc.job_id} is still running; poll GET /v1/reindex/{exc.job_id}."
            ) from None
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/reindex/{job['job']}"
        resp.media = job


class ReindexJobResource(_ReindexAuth):
    def on_get(self, req: falcon.Request, resp: falcon.Response, job: str) -> None:
        self.authorize(req)
        found = self.jobs.get(job) if re.fullmatch(r"[0-9a-f]{32}", job) else None
        if found is None:
            raise falcon.HTTPNotFound(description=f"No reindex job {job!r}.")
        resp.media = found


def _reindex_mode(req: falcon.Request) -> str:
    length = req.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"The request body is {length} bytes; at most {MAX_BODY_BYTES} are accepted."
        )
    body = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(description=f"The request body is over {MAX_BODY_BYTES} bytes.")
    if not body.strip():
        return "update"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise falcon.HTTPBadRequest(
            description='The body must be a JSON object such as {"mode": "update"}.'
        ) from None
    if not isinstance(data, dict):
        raise falcon.HTTPBadRequest(description='The body must be a JSON object such as {"mode": "update"}.')
    unknown = sorted(set(data) - {"mode"})
    if unknown:
        raise falcon.HTTPBadRequest(description=f"Unknown field(s) in the body: {', '.join(unknown)}; "
                                                "only \"mode\" is accepted.")
    mode = data.get("mode", "update")
    if mode not in ("update", "full"):
        raise falcon.HTTPBadRequest(description='The mode field must be "update" or "full".')
    return mode
