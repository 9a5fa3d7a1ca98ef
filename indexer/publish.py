"""Build index generations and publish them atomically.

Layout of the index folder::

    CURRENT                 name of the served generation (replaced with os.replace)
    LOCK                    flock'd while a build runs
    STAMPS.sqlite           each page's stat when last hashed (CorpusStamps): update reads
                            only the pages whose stat changed
    VERIFIED.json           the served files' hashes and stats (manifest.HashRecords): update
                            hashes only the files not vouched for
    generations/000007-…/   a complete generation: Whoosh files, catalog.sqlite, GENERATION.json,
                            derived arrays, MANIFEST.json (size and SHA-256 of every other file)
    generations/.tmp-…/     a build in progress (removed by the next build if it was killed)

A build always writes a new folder; the pointer moves only after the new generation has
been opened and checked, so a killed or failed build never changes what is served. The
catalog (SQLite) records each article's content hash, metadata and resolved links: it is
the manifest that lets ``update`` rewrite only the articles that changed, and the table the
service reads article pages from. ``update`` hard-links the served generation's files only
after checking them against its manifest (``indexer.manifest``); when one is damaged, or the
catalog cannot be read, it builds in full instead, so damage never spreads to newer generations.

An update costs what changed, not what is there: pages whose stat is unchanged are not read,
served files already hashed are not hashed again (both with the rules that keep a change from
going unseen, ``CorpusStamps`` and ``HashRecords``; ``--rehash`` trusts neither), links are
resolved against the catalog's link index rather than a map of every article
(``_UpdateLinks``), and the speller's vocabulary is patched (``update_vocabulary``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
from whoosh import index as whoosh_index
from whoosh.query import Term

from indexer.alternates import ALTERNATES, load_alternates, read_side_file, unknown_sections
from indexer.corpus import (
    HTML_SUFFIXES,
    Article,
    Issue,
    LinkMap,
    corpus_entries,
    fingerprint,
    link_key,
    parse_page,
    resolve_links,
    sha256,
)
from indexer.derived import check_derived, open_derived, write_derived
from indexer.exitcodes import ExitCode
from indexer.manifest import (
    MANIFEST,
    VERIFIED,
    HashRecords,
    check_sizes,
    racy_window_ns,
    read_manifest,
    verify_folder,
    write_manifest,
)
from indexer.schema import SCHEMA, SCHEMA_VERSION, words
from indexer.settings import Config
from indexer.spelltable import count_words, update_vocabulary, write_vocabulary
from indexer.suggesttable import check_suggestions, write_suggestions

CURRENT = "CURRENT"
GENERATIONS = "generations"
CATALOG = "catalog.sqlite"
STAMPS = "STAMPS.sqlite"  # the index folder's CorpusStamps, beside CURRENT
GENERATION_INFO = "GENERATION.json"
SYNONYMS = "synonyms.txt"
MAX_SYNONYMS_BYTES = 1_000_000


class BuildError(Exception):
    """A build that cannot go on; the served generation is unchanged. ``exit_code`` for the CLI."""

    exit_code = ExitCode.FAILED


class BuildLocked(BuildError):
    exit_code = ExitCode.LOCKED


class PublishRefused(BuildError):
    exit_code = ExitCode.REFUSED


class CorpusError(BuildError):
    """The corpus folder is missing or holds no page: a usage error, nothing was published."""

    exit_code = ExitCode.USAGE


@dataclass
class BuildReport:
    generation: str | None = None
    mode: str = "full"
    published: bool = False
    articles: int = 0
    sections: int = 0
    links: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)  # articles whose documents were rewritten
    issues: list[Issue] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["issues"] = [asdict(i) for i in self.issues]
        d["warnings"], d["errors"] = len(self.warnings), len(self.errors)
        return d


# --------------------------------------------------------------------------- generations


def current_generation(index_dir: Path) -> tuple[str, Path] | None:
    """The served generation's id and folder, or None when nothing was published yet."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    path = index_dir / GENERATIONS / name
    return (name, path) if name and path.is_dir() else None


LOCK = "LOCK"
#: Environment variable naming an inherited fd that already holds the build lock: the service
#: takes the lock itself (so it can answer 409 at once), then starts the CLI holding it.
LOCK_FD_ENV = "FAQ_LOCK_FD"

_held_lock_fds: set[int] = set()  # lock fds this process holds; parse workers close them


def _write_marker(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} since {utc_now()}\n".encode(), 0)


def _marker_pid(fd: int) -> int | None:
    match = re.match(rb"pid (\d+)", os.pread(fd, 200, 0))
    return int(match.group(1)) if match else None


def try_lock(index_dir: Path) -> int | None:
    """Take the build lock without waiting: its fd, or None when another process holds it.

    The fd is inheritable so that a child build can be handed the lock (``pass_fds`` and
    ``FAQ_LOCK_FD``); the caller closes its own copy once the child runs. The lock is freed
    when the last fd of it is closed, by whoever, even by the kernel after a ``kill -9``.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _write_marker(fd)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.set_inheritable(fd, True)
    return fd


def lock_holder(index_dir: Path) -> int | None:
    """The pid recorded in the lock file while the lock is held, else None.

    Read from the kernel's table of locks (``/proc/locks``) without touching the lock, so
    asking never makes a build that starts at that instant fail. Where that table is not
    readable, a shared lock is taken for an instant instead.
    """
    try:
        fd = os.open(Path(index_dir) / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        held = _flock_listed(os.fstat(fd))
        if held is None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                held = True
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                held = False
        return _marker_pid(fd) if held else None
    finally:
        os.close(fd)


def _flock_listed(st: os.stat_result) -> bool | None:
    """Whether ``/proc/locks`` lists a flock on the file ``st`` describes; None if unreadable."""
    try:
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            return True
    return False


def _inherited_lock(path: Path) -> int | None:
    """The fd named by ``FAQ_LOCK_FD`` when it is open on ``path`` (consumed: used once)."""
    raw = os.environ.pop(LOCK_FD_ENV, None)
    if not raw:
        return None
    try:
        fd = int(raw)
        theirs, ours = os.fstat(fd), os.stat(path)
    except (ValueError, OSError):
        return None
    return fd if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) else None


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: bool = False) -> Iterator[None]:
    """One build at a time per index folder; the OS frees the lock if the process dies.

    An fd inherited through ``FAQ_LOCK_FD`` that is open on this folder's lock file is used
    instead of taking the lock anew. Either way the fd is closed at the end and never
    reaches parse workers or other child processes.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK
    if not path.exists():
        path.touch()
    fd = _inherited_lock(path)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.set_inheritable(fd, False)
    try:
        # On an inherited fd this is a no-op when it holds the lock, and a check when not.
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        holder = _marker_pid(fd)
        os.close(fd)
        raise BuildLocked(
            f"another build is running{f' (pid {holder})' if holder else ''} on {index_dir}; "
            "wait for it, or pass --wait to queue behind it"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    _held_lock_fds.add(fd)
    try:
        _write_marker(fd)
        yield
    finally:
        _held_lock_fds.discard(fd)
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def utc_now() -> str:
    """The current UTC time as the generation files and job records write it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_generation_name(index_dir: Path) -> str:
    gens = index_dir / GENERATIONS
    seqs = [int(p.name.split("-", 1)[0]) for p in gens.glob("[0-9]*") if p.name.split("-", 1)[0].isdigit()]
    seq = max(seqs, default=0) + 1
    return f"{seq:06d}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_pointer(index_dir: Path, name: str) -> None:
    """Switch CURRENT to ``name`` atomically (write a temp file, fsync, rename)."""
    tmp = index_dir / f"{CURRENT}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / CURRENT)
    fsync_dir(index_dir)


def prune(index_dir: Path, keep: int) -> list[str]:
    """Remove old generations beyond ``keep`` and leftovers of killed builds (lock held)."""
    gens = index_dir / GENERATIONS
    current = current_generation(index_dir)
    removed = []
    for tmp in gens.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp.name)
    names = sorted((p.name for p in gens.iterdir() if p.is_dir() and p.name[:1].isdigit()), reverse=True)
    for name in names[max(keep, 1):]:
        if current and name == current[0]:
            continue
        shutil.rmtree(gens / name, ignore_errors=True)
        removed.append(name)
    return removed


# --------------------------------------------------------------------------- catalog

_CATALOG_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    slug TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    canonical TEXT,
    description TEXT NOT NULL,
    published TEXT,
    modified TEXT,
    sections INTEGER NOT NULL,
    outline TEXT NOT NULL,
    links TEXT NOT NULL,
    issues TEXT NOT NULL,
    words TEXT NOT NULL,
    doc_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS link_claims (key TEXT NOT NULL, rank INTEGER NOT NULL, source TEXT NOT NULL,
                                        slug TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS link_claims_key ON link_claims (key);
CREATE INDEX IF NOT EXISTS link_claims_source ON link_claims (source);
CREATE TABLE IF NOT EXISTS link_hosts (host TEXT NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS link_hosts_source ON link_hosts (source);
CREATE TABLE IF NOT EXISTS link_refs (source TEXT NOT NULL, key TEXT NOT NULL, slug TEXT);
CREATE INDEX IF NOT EXISTS link_refs_source ON link_refs (source);
CREATE INDEX IF NOT EXISTS link_refs_key ON link_refs (key);
CREATE INDEX IF NOT EXISTS link_refs_slug ON link_refs (slug);
"""
#: The link index (``link_claims``, ``link_hosts``, ``link_refs``): what ``LinkMap`` is built
#: from, kept per article so that an update resolves links without rebuilding the map from
#: every article (``_UpdateLinks``). ``meta`` says a catalog has it; one without is filled once.
LINK_INDEX = ("link_index", "1")


def open_catalog(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    conn.executescript(_CATALOG_SQL)
    return conn


def read_catalog(path: Path) -> dict[str, dict]:
    """Catalog rows by source file, JSON columns decoded."""
    if not path.is_file():
        return {}
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)  # "?", "#" escaped
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM articles ORDER BY source").fetchall()
        finally:
            conn.close()
        out = {}
        for row in rows:
            d = dict(row)
            for key in ("outline", "links", "issues", "words"):
                d[key] = json.loads(d[key])
            out[d["source"]] = d
    except (sqlite3.Error, ValueError, KeyError) as exc:
        raise BuildError(f"cannot read the catalog {path}: {exc}; rebuild with `faq-index build`") from None
    return out


def _link_claims(slug: str, url: str, canonical: str | None, source: str) -> tuple[list[tuple[str, int]], str]:
    """The keys an article claims in a ``LinkMap``, each with the rank of its claim, and the
    host of its canonical URL ('' when none): exactly what ``LinkMap`` derives from it."""
    keys = [(link_key(url), 0), (link_key("/" + slug), 1), (link_key("/" + source), 2)]
    if not canonical:
        return keys, ""
    return [*keys, (link_key(canonical), 0)], urlsplit(canonical).netloc.lower()


def _index_links(conn: sqlite3.Connection, source: str, slug: str, url: str, canonical: str | None,
                 links: list[tuple[str, str | None]]) -> None:
    """Write an article's rows of the link index; ``links`` are its links' (href, resolved slug)."""
    keys, host = _link_claims(slug, url, canonical, source)
    conn.executemany("INSERT INTO link_claims VALUES (?, ?, ?, ?)", [(k, r, source, slug) for k, r in keys])
    if host:
        conn.execute("INSERT INTO link_hosts VALUES (?, ?)", (host, source))
    conn.executemany("INSERT INTO link_refs VALUES (?, ?, ?)", [(source, link_key(h), t) for h, t in links])


def _unindex_links(conn: sqlite3.Connection, source: str) -> None:
    for table in ("link_claims", "link_hosts", "link_refs"):
        conn.execute(f"DELETE FROM {table} WHERE source = ?", (source,))


class _UpdateLinks:
    """``LinkMap.by_key`` (a ``get``) for an update: the served catalog's link index with this
    update's changes applied — the claims of the ``gone`` articles (removed, changed or losing
    their slug) withdrawn and those of the new or changed ones (``claims``) added — read one key
    at a time. The keys either touch are worked out up front; ``changed`` are those whose
    article is not the one it was, so only the articles linking to them (or to an article whose
    title or URL changed) need their links resolved again."""

    def __init__(self, conn: sqlite3.Connection, gone: set[str], claims: dict[str, list[tuple[int, str, str]]],
                 hosts: set[str], site_url: str):
        self.conn = conn
        self.best: dict[str, str | None] = {}
        self.changed: set[str] = set()
        touched = set(claims)
        for src in gone:
            touched.update(k for (k,) in conn.execute("SELECT key FROM link_claims WHERE source = ?", (src,)))
        for key in touched:
            old = conn.execute("SELECT rank, source, slug FROM link_claims WHERE key = ?", (key,)).fetchall()
            new = [c for c in old if c[1] not in gone] + claims.get(key, [])
            self.best[key] = min(new)[2] if new else None
            if (min(old)[2] if old else None) != self.best[key]:
                self.changed.add(key)
        counts = dict(conn.execute("SELECT host, COUNT(*) FROM link_hosts GROUP BY host").fetchall())
        self.old_hosts = {h for h, n in counts.items() if n}
        for src in gone:
            for (host,) in conn.execute("SELECT host FROM link_hosts WHERE source = ?", (src,)):
                counts[host] -= 1
        self.hosts = {h for h, n in counts.items() if n > 0} | hosts
        if site_url:
            site = urlsplit(site_url).netloc.lower()
            self.old_hosts.add(site)
            self.hosts.add(site)

    def get(self, key: str, default=None):
        if key not in self.best:
            row = self.conn.execute("SELECT slug FROM link_claims WHERE key = ? ORDER BY rank, source, slug LIMIT 1",
                                    (key,)).fetchone()
            self.best[key] = row[0] if row else None
        found = self.best[key]
        return default if found is None else found

    def linking(self, slugs: set[str]) -> set[str]:
        """The articles with a link to a changed key or to one of ``slugs``."""
        out = set()
        for column, values in (("key", self.changed), ("slug", slugs)):
            for value in values:
                out.update(s for (s,) in self.conn.execute(f"SELECT source FROM link_refs WHERE {column} = ?", (value,)))
        return out


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)  # "?", "#" escaped


def _open_link_index(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to a served catalog that has the link index, else None."""
    try:
        conn = _connect_ro(path)
        if conn.execute("SELECT value FROM meta WHERE key = ?", LINK_INDEX[:1]).fetchone() == LINK_INDEX[1:]:
            return conn
        conn.close()
    except sqlite3.Error:
        pass
    return None


def _served_totals(folder: Path) -> tuple[int, int, int] | None:
    """The articles, sections and links a generation's catalog holds, as its build recorded
    them (``GENERATION.json``, covered by the manifest); None when it did not."""
    try:
        info = load_generation_info(folder)
        totals = tuple(info[key] for key in ("articles", "sections", "links"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return totals if all(type(t) is int and t >= 0 for t in totals) else None


def _json_list(text: str) -> list:
    return [] if text == "[]" else json.loads(text)


def _read_base_catalog(path: Path) -> dict[str, dict]:
    """What an update needs of the served catalog, by source: ``read_catalog`` without the
    columns it does not use (the words of every article, above all), its links left as JSON
    (only the few articles whose links may resolve anew read them)."""
    try:
        with contextlib.closing(_connect_ro(path)) as conn:
            rows = conn.execute("SELECT source, slug, sha256, title, url, canonical, sections, links, issues "
                                "FROM articles ORDER BY source").fetchall()
        return {row[0]: {"source": row[0], "slug": row[1], "sha256": row[2], "title": row[3], "url": row[4],
                         "canonical": row[5], "sections": row[6], "links": row[7],  # JSON, decoded when needed
                         "issues": _json_list(row[8])} for row in rows}
    except (sqlite3.Error, ValueError, TypeError) as exc:
        raise BuildError(f"cannot read the catalog {path}: {exc}; rebuild with `faq-index build`") from None


# --------------------------------------------------------------------------- documents


#: Characters left as they are in a URL fragment: RFC 3986's unreserved ones and the sub-delims
#: and ":@?" that cannot end an HTML attribute or start markup. "/" is encoded too, so an anchor
#: travels as one path segment of the API's ``/v1/faqs/{slug}/{anchor}``; browsers decode the
#: fragment before looking for the id, so ``#part-1%2F2`` still scrolls to ``id="part-1/2"``.
FRAGMENT_SAFE = "-._~!$*+,;=:@?"


def section_documents(article: Article, targets: dict[str, tuple[str, str]],
                      alternates: dict[str, list[str]] | None = None) -> list[dict]:
    """Whoosh documents of an article's sections; everything a response needs is stored.
    ``alternates`` are editors' phrasings by section id (``indexer.alternates``)."""
    alternates = alternates or {}
    per_section: dict[int, list[dict]] = {}
    link_rows: dict[int, list[dict]] = {}
    for link in article.links:
        link_rows.setdefault(link.section, []).append(
            {"href": link.href, "text": link.text, "kind": link.kind, "slug": link.slug}
        )
        if link.kind == "internal" and link.slug != article.slug and link.slug in targets:
            rel = per_section.setdefault(link.section, [])
            if all(r["slug"] != link.slug for r in rel):
                title, url = targets[link.slug]
                rel.append({"slug": link.slug, "title": title, "url": url})
    docs = []
    for s in article.sections:
        section_id = f"{article.slug}#{s.anchor}"
        docs.append(
            {
                "id": section_id,
                "slug": article.slug,
                "question": s.question,
                "title": article.title,
                "breadcrumbs": " \u203a ".join(s.breadcrumbs[1:]),
                "answer": s.answer,
                "alternates": "\n".join(alternates.get(section_id, ())),
                "position": s.position,
                "meta": {
                    "anchor": s.anchor,
                    "answer_hash": sha256(" ".join(s.answer.split()).lower().encode("utf-8"))[:20],
                    "url": f"{article.url}#{quote(s.anchor, safe=FRAGMENT_SAFE)}",
                    "breadcrumbs": list(s.breadcrumbs),
                    "level": s.level,
                    "article": {"slug": article.slug, "title": article.title, "url": article.url},
                    "related": per_section.get(s.position, []),
                    "links": link_rows.get(s.position, []),
                },
            }
        )
    return docs


def _catalog_row(article: Article, docs: list[dict], targets: dict[str, tuple[str, str]]) -> dict:
    links = []
    for lk in article.links:
        title, url = targets.get(lk.slug, ("", "")) if lk.slug else ("", "")
        links.append({**asdict(lk), "title": title, "url": url})
    return {
        "slug": article.slug,
        "source": article.source,
        "sha256": article.sha256,
        "title": article.title,
        "url": article.url,
        "canonical": article.canonical,
        "description": article.description,
        "published": article.published,
        "modified": article.modified,
        "sections": len(article.sections),
        "outline": json.dumps(article.outline, ensure_ascii=False),
        "links": json.dumps(links, ensure_ascii=False),
        "issues": json.dumps([asdict(i) for i in article.issues], ensure_ascii=False),
        # The article's distinct unstemmed words: the vocabulary of "did you mean". Kept here
        # rather than in a Whoosh field, whose postings would double the build time.
        "words": json.dumps(sorted({w for s in article.sections for w in words(f"{s.question} {s.answer}")}),
                            ensure_ascii=False),
        "doc_hash": fingerprint(docs),
    }


# --------------------------------------------------------------------------- build


def build(config: Config, *, mode: str = "full", force: bool = False, wait: bool = False,
          progress: Callable | None = None, rehash: bool = False) -> BuildReport:
    """Build a generation from ``config.corpus_dir`` and publish it.

    ``mode="update"`` starts from the served generation and rewrites only the articles whose
    source changed, appeared or disappeared, plus those whose links now resolve differently;
    the result holds exactly the documents a full build would. It reads only the pages whose
    ``stat`` changed (``CorpusStamps``) and hashes only the served files not vouched for by
    ``HashRecords``; ``rehash=True`` reads and hashes everything, as a full check.
    """
    if mode not in ("full", "update"):
        raise BuildError(f"unknown build mode {mode!r} (expected 'full' or 'update')")
    index_dir = Path(config.index_dir)
    corpus_dir = Path(config.corpus_dir)
    check_corpus_dir(corpus_dir)
    started = time.perf_counter()
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the index folder {index_dir}: {exc.strerror}") from None
    with build_lock(index_dir, wait=wait):
        report = BuildReport(mode=mode)
        (index_dir / GENERATIONS).mkdir(parents=True, exist_ok=True)
        prune(index_dir, config.keep_generations)  # leftovers of killed builds
        current = current_generation(index_dir)
        previous: dict[str, dict] = {}
        verified: dict[tuple[int, int], dict] = {}  # (device, inode) of checked files → entry
        records = HashRecords() if rehash else HashRecords.load(index_dir / VERIFIED)
        if mode == "update":
            t0 = time.perf_counter()
            previous = _update_base(current, config, report, verified, records)
            report.timings["base"] = time.perf_counter() - t0
            if previous is None:
                report.mode = mode = "full"
                previous = {}
        stamps = CorpusStamps(index_dir / STAMPS, trust=not rehash)
        tmp = index_dir / GENERATIONS / f".tmp-{os.getpid()}-{int(time.time() * 1000)}"
        try:
            _build_into(tmp, config, corpus_dir, current, previous, mode, report, progress, stamps)
            stamps.save()
            if mode == "update" and not tmp.exists():
                report.generation = current[0]  # nothing changed: keep serving it as it is
                _save_records(records, index_dir, current[1])
                return report
            t0 = time.perf_counter()
            _check(tmp, report)
            report.timings["check"] = time.perf_counter() - t0
            _check_loss(current, report, config.max_section_loss, force)
            name = _next_generation_name(index_dir)
            report.generation = name
            info = {**report.as_dict(), "id": name, "created": utc_now(), "corpus": str(corpus_dir),
                    **_build_settings(config)}
            info.pop("issues")
            info["seconds"] = round(time.perf_counter() - started, 3)
            info["manifest"] = MANIFEST  # a generation that says so but has none is damaged
            (tmp / GENERATION_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
            t0 = time.perf_counter()
            _write_and_check_manifest(tmp, verified, records)
            report.timings["manifest"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            final = index_dir / GENERATIONS / name
            os.replace(tmp, final)
            fsync_dir(final.parent)
            publish_pointer(index_dir, name)
            report.published = True
            prune(index_dir, config.keep_generations)
            _save_records(records, index_dir, final)
            report.timings["publish"] = time.perf_counter() - t0
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            report.seconds = time.perf_counter() - started
    return report


def _save_records(records: HashRecords, index_dir: Path, generation: Path) -> None:
    """Keep the hashes of the served generation's files for the next update (a cache:
    failing to write it costs that update a full hash, nothing else)."""
    with contextlib.suppress(OSError):
        records.save(index_dir / VERIFIED, generation.iterdir())


def check_corpus_dir(corpus_dir: Path) -> None:
    """Refuse a corpus path that is missing or not a folder: a usage error, not "0 problems"."""
    if not corpus_dir.exists():
        raise CorpusError(f"corpus folder {corpus_dir} does not exist")
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} is not a folder")


def _now_ns() -> int:
    return time.time_ns()


class CorpusStamps:
    """What each page's ``stat`` said when its content was last hashed, so that an update
    need not read every page to find the few that changed (``STAMPS`` in the index folder).

    A page is taken as unchanged, unread, when its size, mtime, ctime and inode are those
    recorded with a hash that is the served catalog's for it. Any write changes mtime or
    ctime (tools that restore mtime, like ``cp -p`` or ``rsync -t``, still change ctime),
    and a new file is a new inode. A stamp is recorded only for a page whose mtime and ctime
    were older than the scan by more than a file-system clock tick (``racy_window_ns``), so
    a write within the same tick cannot keep the stamp. ``faq-index update --rehash`` reads every
    page regardless. The records are a cache: unreadable ones are dropped and rebuilt.
    """

    def __init__(self, path: Path | None, trust: bool = True):
        self.path, self.trust = path, trust
        self.known: dict[str, tuple] = {}  # source -> (size, mtime_ns, ctime_ns, inode, sha256)
        self.fresh: dict[str, tuple] = {}  # stamps taken by this build
        self.vouched: set[str] = set()  # pages left unread on the word of their stamp
        if path is not None:
            try:
                with contextlib.closing(self._connect()) as conn:
                    self.known = {row[0]: tuple(row[1:]) for row in conn.execute("SELECT * FROM stamps")}
            except (sqlite3.Error, ValueError):
                with contextlib.suppress(OSError):
                    path.unlink()  # damaged: every page is read once, and the records start anew

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path)
        conn.execute("CREATE TABLE IF NOT EXISTS stamps (source TEXT PRIMARY KEY, size INTEGER, "
                     "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, sha256 TEXT)")
        return conn

    @staticmethod
    def stamp(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def vouches(self, source: str, st: os.stat_result, digest: str) -> bool:
        """Whether ``source`` still holds the content whose SHA-256 is ``digest``, unread."""
        if self.trust and self.known.get(source) == (*self.stamp(st), digest):
            self.vouched.add(source)
            return True
        return False

    def note(self, source: str, st: os.stat_result, digest: str, scan_started_ns: int) -> None:
        """Record the stamp of a page just read (``st`` taken before reading it)."""
        if max(st.st_mtime_ns, st.st_ctime_ns) < scan_started_ns - racy_window_ns(st.st_mtime_ns, st.st_ctime_ns):
            self.fresh[source] = (*self.stamp(st), digest)

    def save(self) -> None:
        """Store the fresh stamps and forget all others but those that vouched for a page."""
        if self.path is None:
            return
        stale = [s for s in self.known if s not in self.fresh and s not in self.vouched]
        try:
            with contextlib.closing(self._connect()) as conn, conn:
                conn.executemany("DELETE FROM stamps WHERE source = ?", ((s,) for s in stale))
                conn.executemany("INSERT OR REPLACE INTO stamps VALUES (?, ?, ?, ?, ?, ?)",
                                 ((s, *v) for s, v in self.fresh.items() if self.known.get(s) != v))
        except sqlite3.Error:
            with contextlib.suppress(OSError):
                self.path.unlink()  # a damaged cache: the next update reads every page once


class Pages(dict):
    """Page bytes by source (``read_corpus``). ``sources`` lists every page present in path
    order; a page in ``unchanged`` (its stamp vouched for it) is read when first asked for,
    and must then still be the content the catalog knows."""

    def __init__(self, corpus_dir: Path, max_bytes: int | None, known: dict[str, str] | None = None):
        super().__init__()
        self.corpus_dir, self.max_bytes, self.known = corpus_dir, max_bytes, known or {}
        self.sources: list[str] = []
        self.unchanged: set[str] = set()
        self.digests: dict[str, str] = {}  # SHA-256 of the pages read

    def __missing__(self, source: str) -> bytes:
        if source not in self.unchanged:
            raise KeyError(source)
        with open(self.corpus_dir / source, "rb") as fh:
            data = fh.read(self.max_bytes + 1 if self.max_bytes is not None else -1)
        if sha256(data) != self.known.get(source):
            raise BuildError(f"{source} changed while the update ran; nothing was published, run it again")
        self[source] = data
        return data


def read_corpus(corpus_dir: Path, report: BuildReport, max_bytes: int | None = None,
                known: dict[str, str] | None = None, stamps: CorpusStamps | None = None) -> Pages:
    """Every page's bytes by path relative to the corpus; unreadable files become issues.

    A file over ``max_bytes`` is rejected from its size, before it is read. A corpus with
    no ``.html``/``.htm`` file at all is a ``BuildError``: publishing or passing nothing
    would hide a wrong path. With ``known`` (the served catalog's SHA-256 by source) and
    ``stamps``, a page whose stamp vouches for its known content is not read now but listed
    in ``unchanged`` (``CorpusStamps``); ``stamps`` records the pages read.
    """
    check_corpus_dir(corpus_dir)
    pages = Pages(corpus_dir, max_bytes, known)
    started = _now_ns()
    for source, entry in corpus_entries(corpus_dir, report.issues):
        try:
            if known is not None and stamps is not None and source in known:
                st = entry.stat()
                if (max_bytes is None or st.st_size <= max_bytes) and stamps.vouches(source, st, known[source]):
                    pages.sources.append(source)
                    pages.unchanged.add(source)
                    continue
            with open(entry.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                if max_bytes is not None and st.st_size > max_bytes:
                    report.issues.append(Issue(source, f"file is {st.st_size:,} bytes, over the {max_bytes:,}-byte cap",
                                               "error", "too-large"))
                    continue
                data = fh.read(max_bytes + 1 if max_bytes is not None else -1)
        except OSError as exc:
            report.issues.append(Issue(source, f"cannot read the file: {exc.strerror}", "error", "unreadable"))
            continue
        pages[source] = data  # parse_page rejects it if it grew past the cap since the stat
        pages.sources.append(source)
        pages.digests[source] = digest = sha256(data)
        if stamps is not None:
            stamps.note(source, st, digest, started)
    if not any(Path(path).suffix.lower() in HTML_SUFFIXES for path in pages.sources) and not any(
        i.code in ("too-large", "unreadable") for i in report.issues
    ):
        raise BuildError(f"corpus folder {corpus_dir} holds no .html or .htm file; nothing to index")
    return pages


def _build_into(tmp: Path, config: Config, corpus_dir: Path, current, previous: dict[str, dict],
                mode: str, report: BuildReport, progress: Callable | None,
                stamps: CorpusStamps | None = None) -> None:
    """Write the new generation into ``tmp``; in an update that changes nothing, write nothing
    (``tmp`` is not created) and leave the served generation's totals in ``report``."""
    t0 = time.perf_counter()
    datas = read_corpus(corpus_dir, report, config.max_file_bytes,
                        known={src: row["sha256"] for src, row in previous.items()}, stamps=stamps)
    present = set(datas.sources)
    to_parse: list[str] = []
    for source in datas.sources:
        if source in datas.unchanged:
            continue
        prev = previous.get(source)
        if prev is None:
            to_parse.append(source)
            report.added.append(source)
        elif prev["sha256"] != datas.digests[source]:
            to_parse.append(source)
            report.changed.append(source)
    report.removed = sorted(set(previous) - present)
    if mode == "full":
        report.added = list(datas.sources)
    report.timings["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    parsed = parse_all(to_parse, datas, config, report, progress)
    report.timings["parse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Unchanged articles come from the catalog: what they link to is all that is needed
    # to decide whether their documents must be rewritten. A changed file that no longer
    # parses is not unchanged: its old documents go, as a full build would not have them.
    unchanged = {src: row for src, row in previous.items() if src in present and src not in to_parse}
    drop_duplicate_slugs(parsed, unchanged, report)
    for row in unchanged.values():
        report.issues += [Issue(**i) for i in row["issues"] if i["code"] != "broken-link"]
    targets = {a.slug: (a.title, a.url) for a in parsed.values()}
    targets.update({r["slug"]: (r["title"], r["url"]) for r in unchanged.values()})
    base = _open_link_index(current[1] / CATALOG) if mode == "update" and current is not None else None
    to_check: set[str] | None = None  # the unchanged articles whose links may resolve anew; None: all
    if base is None:
        entries = [(a.slug, a.url, a.canonical, a.source) for a in parsed.values()]
        entries += [(r["slug"], r["url"], r["canonical"], r["source"]) for r in unchanged.values()]
        link_map = LinkMap(entries, config.site_url)
    else:
        # Withdrawn: the claims of articles removed, changed, or losing their slug.
        gone = {src for src in previous if src not in unchanged}
        claims: dict[str, list[tuple[int, str, str]]] = {}
        hosts = set()
        for a in parsed.values():
            keys, host = _link_claims(a.slug, a.url, a.canonical, a.source)
            for key, rank in keys:
                claims.setdefault(key, []).append((rank, a.source, a.slug))
            hosts.update([host] if host else [])
        index = _UpdateLinks(base, gone, claims, hosts, config.site_url)
        link_map = LinkMap([], config.site_url)
        link_map.by_key, link_map.hosts = index, index.hosts
        if index.hosts == index.old_hosts:  # else a host became or stopped being the site's own
            was = {previous[src]["slug"]: (previous[src]["title"], previous[src]["url"]) for src in gone}
            moved = {slug for slug in was.keys() | {a.slug for a in parsed.values()} if was.get(slug) != targets.get(slug)}
            to_check = index.linking(moved)

    for article in parsed.values():
        resolve_links(article, link_map)
    alternates = load_alternates(corpus_dir)
    synonyms, issues = read_side_file(corpus_dir, SYNONYMS, MAX_SYNONYMS_BYTES)
    report.issues += alternates.issues + issues
    # The editors' files as read once: what is parsed is what the generation keeps, even if
    # an editor saves them again during the build.
    side_files = {SYNONYMS: synonyms, ALTERNATES: alternates.data}
    phrasings = alternates.by_section()
    old_phrasings = load_alternates(current[1]).slugs() if mode == "update" and current else {}
    new_phrasings = alternates.slugs()

    def rewrite(src: str) -> None:
        article, issues = _parse_one((datas[src], src, _parse_options(config)))
        report.issues[:] = [i for i in report.issues if i.source != src]
        report.issues.extend(issues)
        if article is not None:
            article.issues = issues
            resolve_links(article, link_map)
            parsed[src] = article
        del unchanged[src]

    # An unchanged article is rewritten when its phrasings changed, or one of its links now
    # resolves differently or points at an article whose title or URL changed.
    for src, row in list(unchanged.items()):
        if old_phrasings.get(row["slug"]) != new_phrasings.get(row["slug"]):
            rewrite(src)
            continue
        if to_check is not None and src not in to_check:
            continue
        for lk in _json_list(row["links"]):
            new = link_map.resolve(lk["section"], lk["href"], lk["text"])
            title, url = targets.get(new.slug, ("", "")) if new.slug else ("", "")
            if (new.kind, new.slug, title, url) != (lk["kind"], lk["slug"], lk["title"], lk["url"]):
                rewrite(src)
                break
    for article in parsed.values():
        report.issues += [i for i in article.issues if i.code == "broken-link"]
    for row in unchanged.values():
        report.issues += [Issue(**i) for i in row["issues"] if i["code"] == "broken-link"]
    # Indexed before, not any more: a duplicate slug's loser, or a page that no longer parses.
    dropped = {src for src in previous if src in present and src not in parsed and src not in unchanged}
    report.removed = sorted(set(report.removed) | dropped)
    if base is not None:
        base.close()
    if mode == "update" and current is not None and not (parsed or report.removed) and all(
        side_files[name] == _file_bytes(current[1] / name) for name in (SYNONYMS, ALTERNATES)
    ):
        served = _served_totals(current[1])
        if served is None:
            with contextlib.closing(_connect_ro(current[1] / CATALOG)) as conn:
                served = conn.execute("SELECT COUNT(*), COALESCE(SUM(sections), 0), "
                                      "COALESCE(SUM(json_array_length(links)), 0) FROM articles").fetchone()
        report.articles, report.sections, report.links = served
        report.timings["links"] = time.perf_counter() - t0
        return

    if mode == "update" and current is not None:
        _copy_generation(current[1], tmp)
        ix = whoosh_index.open_dir(str(tmp))
    else:
        tmp.mkdir(parents=True)
        ix = whoosh_index.create_in(str(tmp), SCHEMA)
    conn = open_catalog(tmp / CATALOG)
    # Flushed by the kernel like every other file of the generation (Whoosh does not fsync
    # either): a commit's fsync would write the whole copied catalog out, a cost that grows
    # with the corpus. A crash before the flush leaves a generation its manifest refuses.
    conn.execute("PRAGMA synchronous = OFF")
    if base is None and mode == "update" and current is not None:  # a catalog without the link index
        for src, row in unchanged.items():
            if src not in parsed:
                _index_links(conn, src, row["slug"], row["url"], row["canonical"],
                             [(lk["href"], lk["slug"]) for lk in _json_list(row["links"])])
    report.timings["links"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    writer = ix.writer(limitmb=256, compound=False)
    try:
        stale_slugs = {previous[s]["slug"] for s in report.removed}
        stale_slugs |= {previous[s]["slug"] for s in parsed if s in previous}
        if stale_slugs:  # one searcher for all: Whoosh opens every segment's reader per searcher
            with writer.searcher() as searcher:
                for slug in sorted(stale_slugs):
                    writer.delete_by_term("slug", slug, searcher=searcher)
        vocabulary: dict[str, int] = {}  # articles using each word, gained or lost

        def count(rows, step: int) -> None:
            if mode != "update":
                return  # a full build counts its catalog
            for (text,) in rows:
                for w in json.loads(text):
                    vocabulary[w] = vocabulary.get(w, 0) + step

        totals = [0, 0, 0]  # the catalog's articles, sections and links, gained or lost

        def delete(where: str, *args) -> None:
            rows = conn.execute(f"DELETE FROM articles WHERE {where} RETURNING source, words, sections, "
                                "json_array_length(links)", args).fetchall()
            for source, _, sections, links in rows:
                _unindex_links(conn, source)
                totals[:] = [totals[0] - 1, totals[1] - sections, totals[2] - links]
            count([(text,) for _, text, _, _ in rows], -1)

        for src in report.removed:
            delete("source = ?", src)
        for src, article in parsed.items():
            docs = section_documents(article, targets, phrasings)
            row = _catalog_row(article, docs, targets)
            delete("source = ? OR slug = ?", src, article.slug)
            conn.execute(
                f"INSERT INTO articles ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            _index_links(conn, src, article.slug, article.url, article.canonical,
                         [(lk.href, lk.slug) for lk in article.links])
            count([(row["words"],)], 1)
            totals[:] = [totals[0] + 1, totals[1] + row["sections"], totals[2] + len(article.links)]
            for doc in docs:
                writer.add_document(**doc)
            report.rewritten.append(src)
        # No optimize: rewriting every segment would make a one-article update as slow as a
        # full build. Deleted documents linger in Whoosh's term statistics until a merge;
        # the ranking (service.scoring) computes its statistics from live documents only.
        writer.commit()
    except BaseException:
        writer.cancel()
        raise
    report.timings["write"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Only the segments this build wrote are derived; the others' arrays were hard-linked.
    written = whoosh_index.open_dir(str(tmp))
    write_derived(tmp, written)
    derived = open_derived(tmp, written)
    if derived is not None and derived.documents is not None:  # else _check refuses the generation
        write_suggestions(tmp, derived.documents, derived.live)
        if alternates.phrasings:  # the live sections' ids, from the document table just written
            ids = derived.documents.column("id")
            report.issues += unknown_sections(alternates, (ids[d] for d in np.flatnonzero(derived.live).tolist()))
    del derived  # its memory maps
    report.timings["derive"] = time.perf_counter() - t0
    for name, data in side_files.items():
        # The copied generation's file is a hard link to the served one: unlink it before
        # writing, or writing would change the served generation in place.
        (tmp / name).unlink(missing_ok=True)
        if data is not None:
            (tmp / name).write_bytes(data)
    conn.execute("DELETE FROM meta")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", str(SCHEMA_VERSION)), LINK_INDEX])
    conn.commit()
    served = _served_totals(current[1]) if mode == "update" and current is not None else None
    if served is not None:  # the served generation's totals and this update's changes to them
        report.articles, report.sections, report.links = (a + b for a, b in zip(served, totals, strict=True))
    else:
        report.articles, report.sections = conn.execute("SELECT COUNT(*), COALESCE(SUM(sections), 0) "
                                                        "FROM articles").fetchone()
        report.links = conn.execute("SELECT COALESCE(SUM(json_array_length(links)), 0) FROM articles").fetchone()[0]
    t0 = time.perf_counter()
    # The speller's vocabulary and table, once here rather than in every worker at start-up;
    # an update applies its changes to the served generation's arrays when it can.
    if mode != "update" or current is None or not update_vocabulary(tmp, vocabulary):
        write_vocabulary(tmp, count_words(json.loads(r[0]) for r in conn.execute("SELECT words FROM articles")))
    report.timings["vocabulary"] = time.perf_counter() - t0
    conn.close()
    report.rewritten.sort()


PARALLEL_PARSE_MIN = 200  # below this many pages, worker processes cost more than they save
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(parent: int, lock_fds: tuple[int, ...]) -> None:
    """Make a forked parse worker hold no build lock and die with the build.

    A worker forked while the lock is held inherits its fd; if it outlived a killed build
    it would hold the lock forever. So it closes the fd, asks Linux to SIGKILL it when its
    parent dies, and exits at once if the parent already died before that request.
    """
    for fd in lock_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _parse_options(config: Config) -> dict:
    return {"selector": config.content_selector, "max_bytes": config.max_file_bytes,
            "site_url": config.site_url, "max_sections": config.max_sections_per_article}


def _parse_one(args: tuple[bytes, str, dict]):
    data, source, options = args
    return parse_page(data, source, **options)


def parse_all(sources: list[str], datas: dict[str, bytes], config: Config, report: BuildReport,
               progress: Callable | None) -> dict[str, Article]:
    """Parse pages, in one process per core when there are many (parsing is pure)."""
    parsed: dict[str, Article] = {}
    options = _parse_options(config)
    jobs = [(datas[src], src, options) for src in sources]
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) >= PARALLEL_PARSE_MIN and workers > 1:
        # fork: workers inherit the imported modules (spawn costs each worker a fresh import);
        # _init_worker drops the inherited lock fd and ties the worker's life to ours.
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(os.getpid(), tuple(_held_lock_fds))) as pool:
            results = pool.map(_parse_one, jobs, chunksize=32)
            results = progress(results, total=len(jobs)) if progress else results
            outcomes = list(results)
    else:
        outcomes = [_parse_one(job) for job in (progress(jobs) if progress else jobs)]
    for src, (article, issues) in zip(sources, outcomes, strict=True):
        if article is None:
            report.issues += issues
            continue
        article.issues = issues
        report.issues += [i for i in issues if i.code != "broken-link"]
        parsed[src] = article
    return parsed


def drop_duplicate_slugs(parsed: dict[str, Article], unchanged: dict[str, dict], report: BuildReport) -> None:
    """Two files with one slug: the first by path wins, in a full build and an update alike
    (a new file with an earlier path displaces an indexed one)."""
    slugs = {src: a.slug for src, a in parsed.items()} | {src: r["slug"] for src, r in unchanged.items()}
    owners: dict[str, str] = {}
    for src in sorted(slugs):
        slug = slugs[src]
        owner = owners.setdefault(slug, src)
        if owner == src:
            continue
        report.issues.append(
            Issue(src, f"duplicate slug {slug!r}: {owner} already uses it; this file is skipped", "error", "duplicate-slug")
        )
        parsed.pop(src, None)
        unchanged.pop(src, None)


def _update_base(current, config: Config, report: BuildReport, verified: dict[tuple[int, int], dict],
                 records: HashRecords | None = None) -> dict[str, dict] | None:
    """The catalog an update starts from, or None when it must be a full build: nothing is
    served, it was built another way, a file it would reuse is damaged (or cannot be checked:
    no manifest), or its catalog cannot be read. ``verified`` receives the checked files;
    ``records`` spares reading the files it vouches for and receives the hashes read."""
    if current is None or _built_with(current[1]) != _build_settings(config):
        return None  # nothing to update from, or built another way
    name, folder = current
    damage = verify_folder(folder, records)
    if damage is None:
        report.issues.append(Issue("(index)", f"the served generation {name} has no manifest (built before "
                                   "manifests), so its files cannot be checked for reuse; built in full",
                                   "info", "unverified"))
        return None
    if damage:
        shown = "; ".join(str(d) for d in damage[:5]) + ("; …" if len(damage) > 5 else "")
        report.issues.append(Issue("(index)", f"the served generation {name} is damaged ({shown}); "
                                   "built in full instead of reusing its files", "warning", "damaged"))
        return None
    try:
        previous = _read_base_catalog(folder / CATALOG)
    except BuildError as exc:
        report.issues.append(Issue("(index)", f"{exc}; built in full instead", "warning", "damaged"))
        return None
    manifest = read_manifest(folder) or {"files": {}}
    for file, entry in manifest["files"].items():
        st = os.stat(folder / file)
        verified[(st.st_dev, st.st_ino)] = entry
    return previous


def _write_and_check_manifest(tmp: Path, verified: dict[tuple[int, int], dict],
                              records: HashRecords | None = None) -> None:
    """Write the new generation's manifest and check the folder against it before publishing.

    Files hard-linked from the served generation were checked for reuse and are not read
    again; every file this build wrote is hashed from disk (into ``records``).
    """
    def known(path: Path) -> dict | None:
        st = os.stat(path)
        entry = verified.get((st.st_dev, st.st_ino))
        return entry if entry is not None and entry["size"] == st.st_size else None

    write_manifest(tmp, known, records=records)
    damage = check_sizes(tmp, read_manifest(tmp))
    if damage:
        raise BuildError(f"the new generation does not match its manifest ({damage[0]}); not published")


def _copy_generation(src: Path, dst: Path) -> None:
    """Hard-link Whoosh's write-once segment files; copy the catalog, which is rewritten."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name in (GENERATION_INFO, MANIFEST) or "LOCK" in path.name or path.is_dir():
            continue
        if path.name == CATALOG:
            shutil.copy2(path, dst / path.name)
            continue
        try:
            os.link(path, dst / path.name)
        except OSError:
            shutil.copy2(path, dst / path.name)


# Settings that, besides the files, decide a generation's documents: a change forces a full build.
_BUILD_SETTINGS = ("content_selector", "site_url", "max_sections_per_article")


def _build_settings(config: Config) -> dict:
    return {"schema_version": SCHEMA_VERSION, **{k: getattr(config, k) for k in _BUILD_SETTINGS}}


def _built_with(path: Path) -> dict | None:
    try:
        info = load_generation_info(path)
    except (OSError, ValueError):
        return None
    return {key: info.get(key) for key in ("schema_version", *_BUILD_SETTINGS)}


def _file_bytes(path: Path) -> bytes | None:
    """A generation's own file (written by a build, never a link), or None when it has none."""
    return path.read_bytes() if path.is_file() else None


def _check(tmp: Path, report: BuildReport) -> None:
    """Open the new generation as the service will and check it is complete."""
    if report.sections == 0:
        raise BuildError("the corpus produced no sections; nothing was published")
    ix = whoosh_index.open_dir(str(tmp))
    with ix.searcher() as searcher:
        count = searcher.doc_count()
        if count != report.sections:
            raise BuildError(f"index holds {count} sections but the catalog lists {report.sections}; not published")
        # A live document found again by its id: terms, postings and stored fields answer. (A
        # search for every document would cost as much as the index is large.)
        first = next(iter(searcher.reader().all_doc_ids()), None)
        if first is None or len(searcher.search(Term("id", searcher.stored_fields(first)["id"]), limit=1)) == 0:
            raise BuildError("the new index answers no query; not published")
    problem = check_derived(tmp, ix)
    if problem is None:
        with ix.reader() as reader:
            problem = check_suggestions(tmp, reader.doc_count_all())
    if problem:
        raise BuildError(f"{problem}; not published")
    conn = sqlite3.connect(tmp / CATALOG)
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BuildError("the new catalog failed SQLite's integrity check; not published")
    finally:
        conn.close()


def _check_loss(current, report: BuildReport, max_loss: float, force: bool) -> None:
    if current is None:
        return
    try:
        info = json.loads((current[1] / GENERATION_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    before = int(info.get("sections", 0))
    if before and report.sections < before * (1 - max_loss):
        lost = before - report.sections
        message = (
            f"the new generation has {report.sections} sections, {lost} fewer than the "
            f"{before} served ({lost / before:.0%}, more than the {max_loss:.0%} allowed): "
            "a half-deployed site or a broken template? Nothing was published; "
            "rerun with --force if the loss is intended"
        )
        if not force:
            raise PublishRefused(message)
        report.issues.append(Issue("(index)", message.split(": a half")[0] + "; published anyway (--force)", code="loss"))


def load_generation_info(path: Path) -> dict:
    return json.loads((path / GENERATION_INFO).read_text(encoding="utf-8"))
