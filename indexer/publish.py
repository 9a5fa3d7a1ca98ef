"""Build index generations and publish them atomically.

Layout of the index folder::

    CURRENT                 name of the served generation (replaced with os.replace)
    LOCK                    flock'd while a build runs
    generations/000007-…/   a complete generation: Whoosh files, catalog.sqlite, GENERATION.json
    generations/.tmp-…/     a build in progress (removed by the next build if it was killed)

A build always writes a new folder; the pointer moves only after the new generation has
been opened and checked, so a killed or failed build never changes what is served. The
catalog (SQLite) records each article's content hash, metadata and resolved links: it is
the manifest that lets ``update`` rewrite only the articles that changed, and the table the
service reads article pages from.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import multiprocessing
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.query import Every

from indexer.corpus import (
    Article,
    Issue,
    LinkMap,
    fingerprint,
    iter_files,
    parse_page,
    resolve_links,
    sha256,
)
from indexer.schema import SCHEMA, SCHEMA_VERSION, words
from indexer.settings import Config

CURRENT = "CURRENT"
GENERATIONS = "generations"
CATALOG = "catalog.sqlite"
GENERATION_INFO = "GENERATION.json"
SYNONYMS = "synonyms.txt"


class BuildError(Exception):
    """A build that cannot go on; the served generation is unchanged. ``exit_code`` for the CLI."""

    exit_code = 1


class BuildLocked(BuildError):
    exit_code = 3


class PublishRefused(BuildError):
    exit_code = 4


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


@contextlib.contextmanager
def build_lock(index_dir: Path, wait: bool = False) -> Iterator[None]:
    """One build at a time per index folder; the OS frees the lock if the process dies."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / "LOCK", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                holder = _read_holder(fh)
                raise BuildLocked(
                    f"another build is running on {index_dir}{holder}; "
                    "wait for it, or pass --wait to queue behind it"
                ) from None
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {_now()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_holder(fh) -> str:
    fh.seek(0)
    text = fh.read().strip()
    return f" ({text})" if text else ""


def _now() -> str:
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
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
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
    return out


# --------------------------------------------------------------------------- documents


def section_documents(article: Article, targets: dict[str, tuple[str, str]]) -> list[dict]:
    """Whoosh documents of an article's sections; everything a response needs is stored."""
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
        docs.append(
            {
                "id": f"{article.slug}#{s.anchor}",
                "slug": article.slug,
                "question": s.question,
                "title": article.title,
                "breadcrumbs": " \u203a ".join(s.breadcrumbs[1:]),
                "answer": s.answer,
                "position": s.position,
                "meta": {
                    "anchor": s.anchor,
                    "answer_hash": sha256(" ".join(s.answer.split()).lower().encode("utf-8"))[:20],
                    "url": f"{article.url}#{s.anchor}",
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
    if not corpus_dir.is_dir():
        raise BuildError(f"corpus folder {corpus_dir} does not exist")
    started = time.perf_counter()
    with build_lock(index_dir, wait=wait):
        report = BuildReport(mode=mode)
        (index_dir / GENERATIONS).mkdir(parents=True, exist_ok=True)
        prune(index_dir, config.keep_generations)  # leftovers of killed builds
        current = current_generation(index_dir)
        previous = read_catalog(current[1] / CATALOG) if current and mode == "update" else {}
        if mode == "update" and (current is None or _built_with(current[1]) != _build_settings(config)):
            report.mode = mode = "full"  # nothing to update from, or built another way
            previous = {}
        tmp = index_dir / GENERATIONS / f".tmp-{os.getpid()}-{int(time.time() * 1000)}"
        try:
            _build_into(tmp, config, corpus_dir, current, previous, mode, report, progress)
            if mode == "update" and not (report.rewritten or report.removed) and _same_file(
                config.corpus_dir, current[1], SYNONYMS
            ):
                report.generation = current[0]  # nothing changed: keep serving it as it is
                return report
            t0 = time.perf_counter()
            _check(tmp, report)
            report.timings["check"] = time.perf_counter() - t0
            _check_loss(current, report, config.max_section_loss, force)
            name = _next_generation_name(index_dir)
            report.generation = name
            info = {**report.as_dict(), "id": name, "created": _now(), "corpus": str(corpus_dir),
                    **_build_settings(config)}
            info.pop("issues")
            info["seconds"] = round(time.perf_counter() - started, 3)
            (tmp / GENERATION_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
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


def read_corpus(corpus_dir: Path, report: BuildReport) -> dict[str, bytes]:
    """Every page's bytes by path relative to the corpus; unreadable files become issues."""
    datas: dict[str, bytes] = {}
    for path in iter_files(corpus_dir):
        source = str(path.relative_to(corpus_dir))
        try:
            datas[source] = path.read_bytes()
        except OSError as exc:
            report.issues.append(Issue(source, f"cannot read the file: {exc.strerror}", "error", "unreadable"))
    return datas


def _build_into(tmp: Path, config: Config, corpus_dir: Path, current, previous: dict[str, dict],
                mode: str, report: BuildReport, progress: Callable | None) -> None:
    datas = read_corpus(corpus_dir, report)
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
    # An unchanged article is rewritten when one of its links now resolves differently or
    # points at an article whose title or URL changed.
    for src, row in list(unchanged.items()):
        for lk in row["links"]:
            new = link_map.resolve(lk["section"], lk["href"], lk["text"])
            title, url = targets.get(new.slug, ("", "")) if new.slug else ("", "")
            if (new.kind, new.slug, title, url) != (lk["kind"], lk["slug"], lk["title"], lk["url"]):
                article, issues = _parse_one((datas[src], src, config.content_selector, config.max_file_bytes))
                report.issues = [i for i in report.issues if i.source != src]
                report.issues += issues
                if article is not None:
                    article.issues = issues
                    resolve_links(article, link_map)
                    parsed[src] = article
                del unchanged[src]
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
            docs = section_documents(article, targets)
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
    synonyms = corpus_dir / SYNONYMS
    # The copied generation's file is a hard link to the served one: unlink it before
    # writing, or copying would change the served generation in place.
    (tmp / SYNONYMS).unlink(missing_ok=True)
    if synonyms.is_file():
        shutil.copy2(synonyms, tmp / SYNONYMS)
    conn.execute("DELETE FROM meta")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", str(SCHEMA_VERSION))])
    conn.commit()
    totals = conn.execute("SELECT COUNT(*), COALESCE(SUM(sections), 0) FROM articles").fetchone()
    report.articles, report.sections = totals[0], totals[1]
    report.links = sum(len(json.loads(r[0])) for r in conn.execute("SELECT links FROM articles"))
    conn.close()
    report.rewritten.sort()


PARALLEL_PARSE_MIN = 200  # below this many pages, worker processes cost more than they save


def _parse_one(args: tuple[bytes, str, str | None, int | None]):
    data, source, selector, max_bytes = args
    return parse_page(data, source, selector=selector, max_bytes=max_bytes)


def parse_all(sources: list[str], datas: dict[str, bytes], config: Config, report: BuildReport,
               progress: Callable | None) -> dict[str, Article]:
    """Parse pages, in one process per core when there are many (parsing is pure)."""
    parsed: dict[str, Article] = {}
    jobs = [(datas[src], src, config.content_selector, config.max_file_bytes) for src in sources]
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) >= PARALLEL_PARSE_MIN and workers > 1:
        ctx = multiprocessing.get_context("fork")  # workers inherit the imported modules
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
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


def _copy_generation(src: Path, dst: Path) -> None:
    """Hard-link Whoosh's write-once segment files; copy the catalog, which is rewritten."""
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name in (GENERATION_INFO,) or "LOCK" in path.name or path.is_dir():
            continue
        if path.name == CATALOG:
            shutil.copy2(path, dst / path.name)
            continue
        try:
            os.link(path, dst / path.name)
        except OSError:
            shutil.copy2(path, dst / path.name)


# Settings that, besides the files, decide a generation's documents: a change forces a full build.
_BUILD_SETTINGS = ("content_selector", "site_url")


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
