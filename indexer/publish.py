"""Build index generations and publish them atomically.

Layout of the index folder::

    CURRENT                 name of the served generation (replaced with os.replace)
    LOCK                    flock'd while a build runs
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
from urllib.parse import quote

import numpy as np
from whoosh import index as whoosh_index
from whoosh.query import Every

from indexer.alternates import ALTERNATES, load_alternates, unknown_sections
from indexer.corpus import (
    HTML_SUFFIXES,
    Article,
    Issue,
    LinkMap,
    fingerprint,
    iter_files,
    parse_page,
    resolve_links,
    sha256,
)
from indexer.derived import check_derived, open_derived, write_derived
from indexer.exitcodes import ExitCode
from indexer.manifest import MANIFEST, check_sizes, read_manifest, verify_folder, write_manifest
from indexer.schema import SCHEMA, SCHEMA_VERSION, words
from indexer.settings import Config
from indexer.spelltable import count_words, write_vocabulary
from indexer.suggesttable import check_suggestions, write_suggestions

CURRENT = "CURRENT"
GENERATIONS = "generations"
CATALOG = "catalog.sqlite"
GENERATION_INFO = "GENERATION.json"
SYNONYMS = "synonyms.txt"


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


def _fsync_dir(path: Path) -> None:
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
    _fsync_dir(index_dir)


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
"""


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
          progress: Callable | None = None) -> BuildReport:
    """Build a generation from ``config.corpus_dir`` and publish it.

    ``mode="update"`` starts from the served generation and rewrites only the articles whose
    source changed, appeared or disappeared, plus those whose links now resolve differently;
    the result holds exactly the documents a full build would.
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
        if mode == "update":
            previous = _update_base(current, config, report, verified)
            if previous is None:
                report.mode = mode = "full"
                previous = {}
        tmp = index_dir / GENERATIONS / f".tmp-{os.getpid()}-{int(time.time() * 1000)}"
        try:
            _build_into(tmp, config, corpus_dir, current, previous, mode, report, progress)
            if mode == "update" and not (report.rewritten or report.removed) and all(
                _same_file(config.corpus_dir, current[1], name) for name in (SYNONYMS, ALTERNATES)
            ):
                report.generation = current[0]  # nothing changed: keep serving it as it is
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
            _write_and_check_manifest(tmp, verified)
            report.timings["manifest"] = time.perf_counter() - t0
            final = index_dir / GENERATIONS / name
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            publish_pointer(index_dir, name)
            report.published = True
            prune(index_dir, config.keep_generations)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            report.seconds = time.perf_counter() - started
    return report


def check_corpus_dir(corpus_dir: Path) -> None:
    """Refuse a corpus path that is missing or not a folder: a usage error, not "0 problems"."""
    if not corpus_dir.exists():
        raise CorpusError(f"corpus folder {corpus_dir} does not exist")
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} is not a folder")


def read_corpus(corpus_dir: Path, report: BuildReport, max_bytes: int | None = None) -> dict[str, bytes]:
    """Every page's bytes by path relative to the corpus; unreadable files become issues.

    A file over ``max_bytes`` is rejected from its size, before it is read. A corpus with
    no ``.html``/``.htm`` file at all is a ``BuildError``: publishing or passing nothing
    would hide a wrong path.
    """
    check_corpus_dir(corpus_dir)
    datas: dict[str, bytes] = {}
    for path in iter_files(corpus_dir, report.issues):
        source = str(path.relative_to(corpus_dir))
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    report.issues.append(Issue(source, f"file is {size:,} bytes, over the {max_bytes:,}-byte cap",
                                               "error", "too-large"))
                    continue
                data = fh.read(max_bytes + 1 if max_bytes is not None else -1)
        except OSError as exc:
            report.issues.append(Issue(source, f"cannot read the file: {exc.strerror}", "error", "unreadable"))
            continue
        datas[source] = data  # parse_page rejects it if it grew past the cap since the stat
    if not any(Path(path).suffix.lower() in HTML_SUFFIXES for path in datas) and not any(
        i.code in ("too-large", "unreadable") for i in report.issues
    ):
        raise BuildError(f"corpus folder {corpus_dir} holds no .html or .htm file; nothing to index")
    return datas


def _build_into(tmp: Path, config: Config, corpus_dir: Path, current, previous: dict[str, dict],
                mode: str, report: BuildReport, progress: Callable | None) -> None:
    datas = read_corpus(corpus_dir, report, config.max_file_bytes)
    to_parse: list[str] = []
    for source, data in datas.items():
        prev = previous.get(source)
        if prev is None:
            to_parse.append(source)
            report.added.append(source)
        elif prev["sha256"] != sha256(data):
            to_parse.append(source)
            report.changed.append(source)
    report.removed = sorted(set(previous) - set(datas))
    if mode == "full":
        report.added = sorted(datas)

    t0 = time.perf_counter()
    parsed = parse_all(to_parse, datas, config, report, progress)
    report.timings["parse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Unchanged articles come from the catalog: what they link to is all that is needed
    # to decide whether their documents must be rewritten. A changed file that no longer
    # parses is not unchanged: its old documents go, as a full build would not have them.
    unchanged = {src: row for src, row in previous.items() if src in datas and src not in to_parse}
    entries = [(a.slug, a.url, a.canonical, a.source) for a in parsed.values()]
    entries += [(r["slug"], r["url"], r["canonical"], r["source"]) for r in unchanged.values()]
    drop_duplicate_slugs(parsed, unchanged, report)
    for row in unchanged.values():
        report.issues += [Issue(**i) for i in row["issues"] if i["code"] != "broken-link"]
    dropped = {src for src in previous if src in datas and src not in parsed and src not in unchanged}
    report.removed = sorted(set(report.removed) | dropped)  # indexed before, not any more
    link_map = LinkMap(
        [e for e in entries if e[3] in parsed or e[3] in unchanged], config.site_url
    )
    targets = {a.slug: (a.title, a.url) for a in parsed.values()}
    targets.update({r["slug"]: (r["title"], r["url"]) for r in unchanged.values()})

    for article in parsed.values():
        resolve_links(article, link_map)
    alternates = load_alternates(corpus_dir / ALTERNATES)
    report.issues += alternates.issues
    phrasings = alternates.by_section()
    old_phrasings = load_alternates(current[1] / ALTERNATES).slugs() if mode == "update" and current else {}
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
        for lk in row["links"]:
            new = link_map.resolve(lk["section"], lk["href"], lk["text"])
            title, url = targets.get(new.slug, ("", "")) if new.slug else ("", "")
            if (new.kind, new.slug, title, url) != (lk["kind"], lk["slug"], lk["title"], lk["url"]):
                rewrite(src)
                break
    for article in parsed.values():
        report.issues += [i for i in article.issues if i.code == "broken-link"]
    for row in unchanged.values():
        report.issues += [Issue(**i) for i in row["issues"] if i["code"] == "broken-link"]

    if mode == "update" and current is not None:
        _copy_generation(current[1], tmp)
        ix = whoosh_index.open_dir(str(tmp))
    else:
        tmp.mkdir(parents=True)
        ix = whoosh_index.create_in(str(tmp), SCHEMA)
    conn = open_catalog(tmp / CATALOG)
    report.timings["links"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    writer = ix.writer(limitmb=256, compound=False)
    try:
        stale_slugs = {previous[s]["slug"] for s in report.removed}
        stale_slugs |= {previous[s]["slug"] for s in parsed if s in previous}
        for slug in sorted(stale_slugs):
            writer.delete_by_term("slug", slug)
        for src in report.removed:
            conn.execute("DELETE FROM articles WHERE source = ?", (src,))
        for src, article in parsed.items():
            docs = section_documents(article, targets, phrasings)
            row = _catalog_row(article, docs, targets)
            conn.execute("DELETE FROM articles WHERE source = ? OR slug = ?", (src, article.slug))
            conn.execute(
                f"INSERT INTO articles ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
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
    for name in (SYNONYMS, ALTERNATES):
        # The copied generation's file is a hard link to the served one: unlink it before
        # writing, or copying would change the served generation in place.
        (tmp / name).unlink(missing_ok=True)
        if (corpus_dir / name).is_file():
            shutil.copy2(corpus_dir / name, tmp / name)
    conn.execute("DELETE FROM meta")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", str(SCHEMA_VERSION))])
    conn.commit()
    totals = conn.execute("SELECT COUNT(*), COALESCE(SUM(sections), 0) FROM articles").fetchone()
    report.articles, report.sections = totals[0], totals[1]
    report.links = sum(len(json.loads(r[0])) for r in conn.execute("SELECT links FROM articles"))
    t0 = time.perf_counter()
    # The speller's vocabulary and table, once here rather than in every worker at start-up.
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


def _update_base(current, config: Config, report: BuildReport,
                 verified: dict[tuple[int, int], dict]) -> dict[str, dict] | None:
    """The catalog an update starts from, or None when it must be a full build: nothing is
    served, it was built another way, a file it would reuse is damaged (or cannot be checked:
    no manifest), or its catalog cannot be read. ``verified`` receives the checked files."""
    if current is None or _built_with(current[1]) != _build_settings(config):
        return None  # nothing to update from, or built another way
    name, folder = current
    damage = verify_folder(folder)
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
        previous = read_catalog(folder / CATALOG)
    except BuildError as exc:
        report.issues.append(Issue("(index)", f"{exc}; built in full instead", "warning", "damaged"))
        return None
    manifest = read_manifest(folder) or {"files": {}}
    for file, entry in manifest["files"].items():
        st = os.stat(folder / file)
        verified[(st.st_dev, st.st_ino)] = entry
    return previous


def _write_and_check_manifest(tmp: Path, verified: dict[tuple[int, int], dict]) -> None:
    """Write the new generation's manifest and check the folder against it before publishing.

    Files hard-linked from the served generation were hashed when they were checked for reuse
    and are not read again; every file this build wrote is hashed from disk.
    """
    def known(path: Path) -> dict | None:
        st = os.stat(path)
        entry = verified.get((st.st_dev, st.st_ino))
        return entry if entry is not None and entry["size"] == st.st_size else None

    write_manifest(tmp, known)
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


def _same_file(dir_a, dir_b, name: str) -> bool:
    a, b = Path(dir_a) / name, Path(dir_b) / name
    return (a.read_bytes() if a.is_file() else None) == (b.read_bytes() if b.is_file() else None)


def _check(tmp: Path, report: BuildReport) -> None:
    """Open the new generation as the service will and check it is complete."""
    if report.sections == 0:
        raise BuildError("the corpus produced no sections; nothing was published")
    ix = whoosh_index.open_dir(str(tmp))
    with ix.searcher() as searcher:
        count = searcher.doc_count()
        if count != report.sections:
            raise BuildError(f"index holds {count} sections but the catalog lists {report.sections}; not published")
        if len(searcher.search(Every(), limit=1)) == 0:
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
