"""Search analytics for editors: how often each normalised query was searched per day, with
its result-count and answer-confidence buckets, and the report built from those counts.

What visitors ask a therapy practice is sensitive, so the privacy rules live here, in code
(and in ``docs/operations.md``):

* Only aggregates are stored: (UTC day, normalised query, endpoint, result bucket, confidence
  bucket, answered) → count. No address, user agent, cookie, request id or time of a search
  reaches this module, so none can be stored.
* A query that looks like contact data (an e-mail address, a phone number, a long run of
  digits) is never stored, not even counted under another name.
* The report shows a query only once it was counted at least ``FAQ_ANALYTICS_MIN_COUNT``
  times in the reported days.
* Rows older than ``FAQ_ANALYTICS_RETENTION_DAYS`` are deleted; ``FAQ_ANALYTICS=off`` stores
  nothing and creates no file.

Requests only add to an in-memory batch; a background thread writes it to
``<index_dir>/analytics.sqlite`` (its own database, never inside a generation) at least every
``FAQ_ANALYTICS_FLUSH_SECONDS``, and gunicorn's ``worker_exit`` writes what is left. Every
worker upserts into the same WAL database, adding its counts, so none is lost or doubled.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import unicodedata
import weakref
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import falcon

from indexer.settings import Config
from service.generations import NoIndex
from service.metrics import ANALYTICS_DROPPED
from service.query import normalise_query
from service.resources import _ReindexAuth, int_param
from service.storage import connect

log = logging.getLogger("faq.service")

ANALYTICS_DB = "analytics.sqlite"
MAX_STORED_CHARS = 100  # longer queries are stored truncated: the start says what was asked
REPORT_LIMIT = 20

# Contact data: an @ between two non-spaces (e-mail, handles), seven or more digits written
# as a phone number (spaces, dots, dashes, brackets and a leading + allowed between them),
# or six digits in a row (account, case, ID and card numbers, dates of birth).
_EMAIL = re.compile(r"\S\s*@\s*\S|\w\s+(?:at|\[at\]|\(at\))\s+\w[\w-]*\s*(?:dot|\.|\[dot\]|\(dot\))\s*\w", re.I)
_PHONE = re.compile(r"\+?\d(?:[\s().\-/]{0,3}\d){6,}")
_DIGIT_RUN = re.compile(r"\d{6,}")

_SQL = """
CREATE TABLE IF NOT EXISTS searches (
    day TEXT NOT NULL,          -- UTC date, YYYY-MM-DD; never a time of day
    query TEXT NOT NULL,        -- normalise_query, case-folded, truncated
    kind TEXT NOT NULL,         -- 'search' (GET /v1/search, first page) or 'answer' (GET /v1/answer)
    results TEXT NOT NULL,      -- result-count bucket
    confidence TEXT NOT NULL,   -- answer-confidence bucket ('' for searches)
    answered INTEGER NOT NULL,  -- answers: 1 when an answer was given; searches: 0
    count INTEGER NOT NULL,
    PRIMARY KEY (day, query, kind, results, confidence, answered)
) WITHOUT ROWID;
"""
_UPSERT = ("INSERT INTO searches (day, query, kind, results, confidence, answered, count) "
           "VALUES (?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (day, query, kind, results, confidence, answered) DO UPDATE SET count = count + excluded.count")


def contact_like(text: str) -> bool:
    """Whether ``text`` looks like an e-mail address (also spelled out: "jane at mail dot
    com", or with full-width signs), a phone number or a long digit run."""
    text = unicodedata.normalize("NFKC", text)
    return bool(_EMAIL.search(text) or _PHONE.search(text) or _DIGIT_RUN.search(text))


def stored_form(q: str) -> str | None:
    """How a query is stored: normalised like search, case-folded, truncated; None when it must
    not be stored at all (empty, or contact-looking anywhere in its full text)."""
    text = normalise_query(q).casefold()
    if not text or contact_like(text):
        return None
    return text[:MAX_STORED_CHARS].rstrip()


def results_bucket(n: int) -> str:
    for high, label in ((0, "0"), (1, "1"), (3, "2-3"), (10, "4-10"), (50, "11-50")):
        if n <= high:
            return label
    return "51+"


def confidence_bucket(confidence: float) -> str:
    """The tenth the confidence falls in, by its lower bound ("0.0" … "0.9"; 1.0 is in "0.9")."""
    return f"{min(max(int(confidence * 10), 0), 9) / 10:.1f}"


def utc_today() -> date:
    return datetime.now(UTC).date()


_live: weakref.WeakSet[Analytics] = weakref.WeakSet()


def flush_all() -> None:
    """Write every batch of this process (gunicorn's ``worker_exit``)."""
    for analytics in list(_live):
        analytics.close()


class Analytics:
    """One worker's batching writer and the report reader of ``<index_dir>/analytics.sqlite``."""

    def __init__(self, config: Config, today: Callable[[], date] = utc_today):
        self.enabled = bool(config.analytics)
        self.path = Path(config.index_dir) / ANALYTICS_DB
        self.min_count = int(config.analytics_min_count)
        self.retention_days = int(config.analytics_retention_days)
        self.flush_seconds = float(config.analytics_flush_seconds)
        self.today = today
        self._pending: Counter[tuple] = Counter()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = False
        self._pruned: date | None = None
        _live.add(self)

    # -- recording (request path: memory only)

    def record_search(self, q: str, result: dict, offset: int = 0) -> None:
        """A ``/v1/search`` response; later pages are the same search, not another one."""
        if self.enabled and not offset:
            self._add(q, "search", results_bucket(result["total"]), "", 0)

    def record_answer(self, q: str, result: dict) -> None:
        if self.enabled:
            hits = len(result["alternatives"]) + (result["answer"] is not None)
            self._add(q, "answer", results_bucket(hits), confidence_bucket(result["confidence"]),
                      int(result["answer"] is not None))

    def _add(self, q: str, kind: str, results: str, confidence: str, answered: int) -> None:
        text = stored_form(q)
        if text is None:
            ANALYTICS_DROPPED.labels("contact-like").inc()
            return
        key = (self.today().isoformat(), text, kind, results, confidence, answered)
        with self._lock:
            self._pending[key] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="analytics-flush", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    # -- writing

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path, _SQL, set_up=not self._ready)
        self._ready = True
        return conn

    def flush(self) -> int:
        """Write the pending batch in one transaction; returns the rows upserted. On failure
        the batch goes back to the queue for the next flush (logged without its content)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, Counter()
            if not batch or not self.enabled:
                return 0
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = self._connect()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(_UPSERT, [(*key, n) for key, n in batch.items()])
                    self._prune(conn)
                    conn.execute("COMMIT")
                finally:
                    conn.close()
            except (OSError, sqlite3.Error) as exc:
                with self._lock:
                    self._pending.update(batch)
                log.warning("search analytics not written yet (%d rows kept for the next flush): %s",
                            len(batch), exc)
                return 0
            return len(batch)

    def _prune(self, conn: sqlite3.Connection) -> None:
        today = self.today()
        if self._pruned != today:  # once a day per process is enough
            self.prune(conn, today)
            self._pruned = today

    def prune(self, conn: sqlite3.Connection | None = None, today: date | None = None) -> int:
        """Delete the rows older than the retention period; returns how many."""
        cutoff = ((today or self.today()) - timedelta(days=self.retention_days - 1)).isoformat()
        own = conn is None
        if own:
            if not self.path.exists():
                return 0
            conn = self._connect()
        try:
            return conn.execute("DELETE FROM searches WHERE day < ?", (cutoff,)).rowcount
        finally:
            if own:
                conn.close()

    def close(self, deadline_seconds: float = 10.0) -> None:
        """Stop the background writer and write what is left, retrying while another worker
        holds the database (workers exit together): a batch still pending at exit is lost."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.flush_seconds + 5)
        deadline = time.monotonic() + deadline_seconds
        while True:
            self.flush()
            with self._lock:
                if not self._pending or not self.enabled:
                    return
            if time.monotonic() > deadline:
                log.error("search analytics: %d rows could not be written before exit", len(self._pending))
                return
            time.sleep(0.05)

    # -- the report

    def _top(self, conn: sqlite3.Connection, since: str, where: str, limit: int) -> list[tuple[str, int]]:
        rows = conn.execute(
            f"SELECT query, SUM(count) AS n FROM searches WHERE day >= ? AND {where} "  # noqa: S608 - fixed clauses
            "GROUP BY query HAVING n >= ? ORDER BY n DESC, query LIMIT ?",
            (since, self.min_count, limit),
        ).fetchall()
        return [(q, int(n)) for q, n in rows]

    def report(self, engine, days: int = 30, limit: int = REPORT_LIMIT) -> dict:
        """Top queries, top zero-result queries and top unanswered (low-confidence) queries of
        the last ``days`` UTC days, each counted at least ``min_count`` times, with the section
        ``engine`` ranks first for it now, and those lines in the alternates file's format."""
        today = self.today()
        since = (today - timedelta(days=days - 1)).isoformat()
        lists: dict[str, list[tuple[str, int]]] = {"top_queries": [], "zero_results": [], "low_confidence": []}
        if self.path.exists():
            conn = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'searches'").fetchone():
                    lists["top_queries"] = self._top(conn, since, "kind = 'search'", limit)
                    lists["zero_results"] = self._top(conn, since, "kind = 'search' AND results = '0'", limit)
                    lists["low_confidence"] = self._top(conn, since, "kind = 'answer' AND answered = 0", limit)
            finally:
                conn.close()
        firsts: dict[str, dict | None] = {}
        out: dict = {"enabled": self.enabled, "days": days, "from": since, "to": today.isoformat(),
                     "min_count": self.min_count}
        for name, rows in lists.items():
            out[name] = []
            for q, n in rows:
                if q not in firsts:
                    firsts[q] = first_section(engine, q)
                out[name].append({"query": q, "count": n, "first": firsts[q]})
        seen: set[str] = set()
        alternates = []
        for entry in out["zero_results"] + out["low_confidence"]:
            if entry["query"] not in seen:
                seen.add(entry["query"])
                alternates.append(alternate_line(entry["query"], entry["first"]))
        out["alternates"] = alternates
        return out


def first_section(engine, q: str) -> dict | None:
    """The section ``engine`` ranks first for ``q`` now, or None (no result, no index)."""
    try:
        results = engine.search(q, limit=1, snippets=False)["results"]
    except NoIndex:
        return None
    if not results:
        return None
    top = results[0]
    return {"id": top["id"], "question": top["question"], "url": top["url"]}


def alternate_line(q: str, first: dict | None) -> str:
    """A line of ``corpus/alternates.txt``; commented out when no section ranks for ``q``
    (the editor picks one), so pasting it as is changes nothing."""
    return f"{first['id']}: {q}" if first else f"# choose a section: {q}"


class AnalyticsResource(_ReindexAuth):
    """``GET /v1/analytics?days=&limit=``: the report as JSON, behind the editor (reindex) token."""

    def __init__(self, config: Config, jobs, engine, analytics: Analytics):
        super().__init__(config, jobs)
        self.engine = engine
        self.analytics = analytics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.authorize(req)
        days = int_param(req, "days", 30, 1, 3650)
        limit = int_param(req, "limit", REPORT_LIMIT, 1, 100)
        resp.media = self.analytics.report(self.engine, days=days, limit=limit)
