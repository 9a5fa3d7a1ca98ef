"""Mirror the live site into the corpus folder, politely, so that ``update`` can publish it.

Why: editors publish in a CMS, and the service should read the site as visitors see it.
The crawler reads a sitemap (or follows same-origin links breadth-first from a start page),
obeys robots.txt (rules and ``Crawl-delay``), keeps at most ``crawl_concurrency`` requests
open at once, caps each page's size and waits at most ``crawl_timeout`` per request.

Only the start URL's origin is ever requested (sitemap entries, links, redirects, canonicals).
A hostile or broken server must not exhaust memory, hang the crawl or write outside the corpus:
bodies (robots.txt and sitemaps too) are inflated here, with output bounded by the cap, and at
most one content-coding is accepted; each download has a wall-clock deadline; a ``Crawl-delay``
over a minute is refused; mirror paths are bounded and must resolve inside the corpus folder.

Conditional refetch: each page's ``ETag``/``Last-Modified`` is kept beside the mirror in
``.crawl.sqlite`` (a hidden file, which the indexer's file walk skips); a recrawl sends
``If-None-Match``/``If-Modified-Since``, and a ``304`` rewrites nothing.

Faults never delete content: a timeout, a 5xx, a DNS or TLS error keeps the previous copy
and is reported. Only a ``404``/``410``, or absence from a sitemap that was read completely,
removes a page, and only a page this crawler wrote (never a file an editor put there). A file
is the crawler's when ``.crawl.sqlite`` records it with the bytes it now has; any other file
is neither overwritten nor removed (reported as ``not-ours``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import sqlite3
import threading
import time
import urllib.robotparser
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from bs4 import BeautifulSoup
from lxml import etree

from indexer.corpus import safe_slug
from indexer.split import safe_href

STATE = ".crawl.sqlite"
HTML_TYPES = ("text/html", "application/xhtml+xml")
#: Link targets that are plainly not pages: not requested at all.
_NOT_PAGES = re.compile(
    r"\.(pdf|jpe?g|png|gif|webp|svg|ico|css|js|json|xml|gz|zip|rar|7z|mp[34]|m4a|mov|avi|webm|"
    r"docx?|xlsx?|pptx?|txt|csv|woff2?|ttf|eot)$", re.I)
_MAX_SITEMAPS = 50  # sitemaps read per crawl (an index may list many)
_MAX_SITEMAP_BYTES = 50_000_000  # the sitemap protocol's own limit, uncompressed
_MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB
_MAX_CRAWL_DELAY = 60.0  # seconds; a longer Crawl-delay is refused rather than slept
_MAX_SEGMENTS = 8  # folders + file of a mirror path
_MAX_NAME_CHARS = 200  # a mirror path, relative to the corpus folder
#: Content-codings undone here (wbits for zlib); brotli/zstd are not installed, so not offered.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_ACCEPT_ENCODING = "gzip, deflate"

_STATE_SQL = """
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,      -- the URL as requested
    file TEXT NOT NULL,        -- path of the mirror file, relative to the corpus folder
    etag TEXT,
    last_modified TEXT,
    sha256 TEXT NOT NULL,
    fetched TEXT NOT NULL
);
"""


@dataclass
class CrawlReport:
    """What a crawl did, for the summary line (and ``--json``)."""

    start: str
    fetched: int = 0  # 200 responses with an HTML page
    written: int = 0  # of those, files that are new or changed
    not_modified: int = 0  # 304 responses (or an unchanged body)
    failed: Counter = field(default_factory=Counter)  # reason -> count; previous copies kept
    skipped: Counter = field(default_factory=Counter)  # reason -> count; not requested or not a page
    removed: list[str] = field(default_factory=list)  # corpus files deleted
    problems: list[str] = field(default_factory=list)  # "url: reason" lines for people

    def summary(self) -> str:
        def by_reason(counter: Counter) -> str:
            total = sum(counter.values())
            inner = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
            return f"{total} ({inner})" if inner else "0"

        return (f"crawled {self.start}: fetched {self.fetched} (written {self.written}), "
                f"not modified {self.not_modified}, failed {by_reason(self.failed)}, "
                f"skipped {by_reason(self.skipped)}, removed {len(self.removed)}")

    def as_dict(self) -> dict:
        return {"start": self.start, "fetched": self.fetched, "written": self.written,
                "not_modified": self.not_modified, "failed": dict(self.failed),
                "skipped": dict(self.skipped), "removed": self.removed, "problems": self.problems}


@dataclass
class _Response:
    status: int
    headers: httpx.Headers
    final: str  # the URL after redirects
    body: bytes = b""


@dataclass
class _Result:
    url: str
    outcome: str  # "fetched" | "not-modified" | "failed" | "skipped" | "gone"
    reason: str = ""
    final: str = ""
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


def file_for(url: str) -> str:
    """The mirror file of a page, from its URL path: ``/a/b/`` → ``a/b.html``, ``/`` →
    ``index.html``; each segment made safe as a slug is. A path deeper than ``_MAX_SEGMENTS``
    or longer than ``_MAX_NAME_CHARS`` keeps its first folders and ends in a hash of the whole
    path, so that no URL can make a name the file system refuses."""
    path = unquote(urlsplit(url).path)
    path = re.sub(r"(^|/)index\.html?$", "", path, flags=re.I)
    path = re.sub(r"\.html?$", "", path, flags=re.I)
    segments = [safe_slug(s) or "page" for s in path.split("/") if s] or ["index"]
    name = "/".join(segments)
    if len(segments) > _MAX_SEGMENTS or len(name) + len(".html") > _MAX_NAME_CHARS:
        tag = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        last = f"{segments[-1][:40].strip('-')}-{tag}"
        kept: list[str] = []
        for segment in segments[:-1][:_MAX_SEGMENTS - 1]:
            if len("/".join([*kept, segment, last])) + len(".html") > _MAX_NAME_CHARS:
                break
            kept.append(segment)
        name = "/".join([*kept, last])
    return name + ".html"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _normalise(url: str) -> str:
    """The URL without its fragment (one page, however many anchors link into it)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def is_sitemap_url(url: str) -> bool:
    return bool(re.search(r"\.xml(\.gz)?$", urlsplit(url).path, re.I))


class _State:
    """``.crawl.sqlite``: validators and files of the pages this crawler wrote."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.executescript(_STATE_SQL)
        self.lock = threading.Lock()

    def get(self, url: str) -> dict | None:
        with self.lock:
            row = self.conn.execute("SELECT file, etag, last_modified, sha256 FROM pages WHERE url = ?",
                                    (url,)).fetchone()
        return dict(zip(("file", "etag", "last_modified", "sha256"), row, strict=True)) if row else None

    def all(self) -> dict[str, str]:
        with self.lock:
            return dict(self.conn.execute("SELECT url, file FROM pages").fetchall())

    def owns(self, file: str, digest: str) -> bool:
        """Whether this crawler wrote ``file`` with exactly these bytes (under any URL)."""
        with self.lock:
            return self.conn.execute("SELECT 1 FROM pages WHERE file = ? AND sha256 = ?",
                                     (file, digest)).fetchone() is not None

    def put(self, url: str, file: str, etag: str | None, last_modified: str | None, digest: str) -> None:
        with self.lock, self.conn:
            self.conn.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?)",
                              (url, file, etag, last_modified, digest, formatdate(usegmt=True)))

    def delete(self, url: str) -> None:
        with self.lock, self.conn:
            self.conn.execute("DELETE FROM pages WHERE url = ?", (url,))

    def close(self) -> None:
        self.conn.close()


class Crawler:
    """One crawl of one site into one corpus folder (see the module docstring)."""

    def __init__(self, start: str, corpus_dir: Path, *, user_agent: str, concurrency: int = 2,
                 timeout: float = 10.0, max_bytes: int = 5_000_000, max_pages: int = 1000,
                 max_depth: int = 5, max_redirects: int = 5, transport: httpx.BaseTransport | None = None):
        self.start = _normalise(start)
        self.origin = _origin(self.start)
        self.corpus_dir = corpus_dir
        self.user_agent = user_agent
        self.concurrency = concurrency
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.max_depth = max_depth
        self.max_redirects = max_redirects
        self.timeout = timeout
        self.report = CrawlReport(self.start)
        self.client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport,
                                   headers={"User-Agent": user_agent, "Accept-Encoding": _ACCEPT_ENCODING})
        self.robots = urllib.robotparser.RobotFileParser()
        self.delay = 0.0
        self._next_request = 0.0
        self._pace = threading.Lock()
        self._written: dict[str, str] = {}  # file -> URL that wrote it in this crawl
        self._files_lock = threading.Lock()
        self._root = corpus_dir  # resolved in run()

    # ----------------------------------------------------------------- politeness

    def _wait_turn(self) -> None:
        """Crawl-delay: requests start at least ``delay`` seconds apart."""
        if self.delay <= 0:
            return
        with self._pace:
            now = time.monotonic()
            wait = self._next_request - now
            self._next_request = max(now, self._next_request) + self.delay
        if wait > 0:
            time.sleep(wait)

    def _read_robots(self) -> bool:
        """False when the site must not be crawled now (robots.txt unreachable: RFC 9309 asks
        crawlers to assume a full disallow on a server error)."""
        url = urlunsplit((*self.origin, "/robots.txt", "", ""))
        try:
            deadline = time.monotonic() + self.timeout
            with self.client.stream("GET", url) as response:
                status = response.status_code
                # RFC 9309: a 4xx (401 and 403 included) means no rules; a 5xx means "assume
                # none allowed".
                if status >= 500 or status == 429:
                    self.report.problems.append(f"{url}: HTTP {status}; crawled nothing")
                    self.report.failed["robots-txt"] += 1
                    return False
                body = b"" if status >= 400 else self._read(response, "robots-txt-too-large",
                                                               _MAX_ROBOTS_BYTES, deadline)
                encoding = response.charset_encoding or "utf-8"
        except (httpx.HTTPError, _Skip) as exc:
            why = f"{exc.reason} ({exc.detail})" if isinstance(exc, _Skip) else _reason(exc)
            self.report.problems.append(f"{url}: {why}; crawled nothing")
            self.report.failed["robots-txt"] += 1
            return False
        try:
            text = body.decode(encoding, errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        self.robots.parse(text.splitlines())
        delay = self.robots.crawl_delay(self.user_agent)
        rate = self.robots.request_rate(self.user_agent)
        self.delay = max(float(delay or 0), rate.seconds / rate.requests if rate and rate.requests else 0.0)
        if self.delay > _MAX_CRAWL_DELAY:
            self.report.problems.append(
                f"{url}: a Crawl-delay of {self.delay:.12g} s is over the {_MAX_CRAWL_DELAY:g} s this "
                "crawler waits between requests; crawled nothing")
            self.report.failed["crawl-delay"] += 1
            return False
        return True

    def allowed(self, url: str) -> bool:
        return self.robots.can_fetch(self.user_agent, url)

    # ----------------------------------------------------------------- fetching

    def _get(self, url: str, headers: dict[str, str]) -> _Response:
        """GET with bounded redirects, each hop checked against the origin and robots.txt; an
        HTML body is read only up to the size cap."""
        for _ in range(self.max_redirects + 1):
            self._wait_turn()
            deadline = time.monotonic() + self.timeout
            with self.client.stream("GET", url, headers=headers) as response:
                if response.is_redirect and "location" in response.headers:
                    target = _normalise(urljoin(url, response.headers["location"]))
                    if _origin(target) != self.origin:
                        raise _Skip("off-site-redirect", target)
                    if not self.allowed(target):
                        raise _Skip("robots", target)
                    url = target
                    continue
                if response.status_code != 200:
                    return _Response(response.status_code, response.headers, url)
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype not in HTML_TYPES:
                    raise _Skip("not-html", ctype or "no content type")
                return _Response(200, response.headers, url, self._read(response, "too-large", deadline=deadline))
        raise _Skip("too-many-redirects", url)

    def _read(self, response: httpx.Response, reason: str, cap: int | None = None,
              deadline: float | None = None) -> bytes:
        """The body, decoded, of at most ``cap`` bytes, by ``deadline`` (monotonic).

        The raw stream is inflated here rather than by httpx, whose decoders inflate each
        chunk whole (and through every listed coding): a few hundred bytes can become
        gigabytes before any cap is checked. ``max_length`` keeps each step within the cap.
        The deadline is checked between reads, each bounded by the read timeout."""
        cap = self.max_bytes if cap is None else cap
        codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _CODINGS):
            raise _Skip("content-encoding", ", ".join(codings))
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise _Skip(reason, f"{length} bytes, over the {cap}-byte cap")
        inflate = _Inflater(codings[0]) if codings else None
        chunks, raw_size, size = [], 0, 0
        for raw in response.iter_raw():
            if deadline is not None and time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"no whole response within {self.timeout:g} s")
            raw_size += len(raw)
            if raw_size > cap:
                raise _Skip(reason, f"over the {cap}-byte cap")
            while raw:
                chunk, raw = inflate.step(raw, cap + 1 - size) if inflate else (raw, b"")
                size += len(chunk)
                if size > cap:
                    raise _Skip(reason, f"over the {cap}-byte cap")
                chunks.append(chunk)
        return b"".join(chunks)

    def fetch(self, url: str) -> _Result:
        """One page: never raises; the outcome says what happened."""
        state = self._state.get(url)
        headers = {"Accept": "text/html,application/xhtml+xml"}
        copy = self._target(state["file"]) if state else None
        if state and copy is not None and copy.is_file():
            if state["etag"]:
                headers["If-None-Match"] = state["etag"]
            if state["last_modified"]:
                headers["If-Modified-Since"] = state["last_modified"]
        try:
            response = self._get(url, headers)
        except _Skip as skip:
            return _Result(url, "skipped", skip.reason, final=skip.detail)
        except httpx.HTTPError as exc:
            return _Result(url, "failed", _reason(exc))
        status = response.status
        if status == 304 and len(headers) > 1:
            return _Result(url, "not-modified", final=response.final)
        if status in (404, 410):
            return _Result(url, "gone", f"http-{status}", final=response.final)
        if status != 200:
            return _Result(url, "failed", f"http-{status}", final=response.final)
        return _Result(url, "fetched", final=response.final, body=response.body,
                       etag=response.headers.get("etag"), last_modified=response.headers.get("last-modified"))

    # ----------------------------------------------------------------- the mirror

    def _store(self, result: _Result) -> list[str]:
        """Write a fetched page (only when its bytes changed) and return its same-origin links."""
        soup = BeautifulSoup(result.body, "lxml")
        robots_meta = " ".join(str(m.get("content", "")) for m in soup.find_all("meta", attrs={"name": re.compile(
            r"^robots$", re.I)})).lower()
        links = [] if "nofollow" in robots_meta else self._links(soup, result.final)
        if "noindex" in robots_meta:
            self.report.skipped["noindex"] += 1
            return links
        canonical = None
        for link in soup.find_all("link", href=True):
            if "canonical" in [r.lower() for r in (link.get("rel") or [])]:
                candidate = _normalise(urljoin(result.final, str(link["href"]).strip()))
                if _origin(candidate) == self.origin:
                    canonical = candidate
                break
        name = file_for(canonical or result.final)
        with self._files_lock:
            earlier = self._written.get(name)
            if earlier is not None and earlier != result.url:
                self.report.skipped["duplicate"] += 1
                self.report.problems.append(f"{result.url}: same page as {earlier} ({name}); skipped")
                return links
            self._written[name] = result.url
        digest = hashlib.sha256(result.body).hexdigest()
        path = self._target(name)
        if path is None:
            self._refuse(result.url, "outside-corpus", f"{name} leads out of the corpus folder; not written")
            return links
        try:
            current = _digest(path)
            if current is not None and not self._state.owns(name, current):
                self._refuse(result.url, "not-ours", f"{name} is not a file this crawler wrote; not overwritten")
                return links
            if current != digest:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.crawl-tmp")
                tmp.unlink(missing_ok=True)  # never write through a symlink left in its place
                try:
                    tmp.write_bytes(result.body)
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
                self.report.written += 1
        except OSError as exc:
            self.report.failed["write-error"] += 1
            self.report.problems.append(f"{result.url}: write-error {name}: {exc.strerror or exc}")
            return links
        self.report.fetched += 1
        self._state.put(result.url, name, result.etag, result.last_modified, digest)
        return links

    def _target(self, name: str) -> Path | None:
        """The mirror file ``name``, or None when it would resolve outside the corpus folder
        (a symlinked file or folder leading out of it)."""
        path = self.corpus_dir / name
        try:
            inside = path.resolve().is_relative_to(self._root)
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        return path if inside else None

    def _refuse(self, url: str, reason: str, why: str) -> None:
        self.report.skipped[reason] += 1
        self.report.problems.append(f"{url}: {reason}: {why}")

    def _links(self, soup: BeautifulSoup, base: str) -> list[str]:
        found = []
        for a in soup.find_all("a", href=True):
            rel = [r.lower() for r in (a.get("rel") or [])]
            href = safe_href(str(a["href"]))
            if href is None or "nofollow" in rel or href.lower().startswith(("mailto:", "tel:")):
                continue
            url = _normalise(urljoin(base, href))
            if _origin(url) == self.origin:
                found.append(url)
        return found

    def _links_of_copy(self, url: str) -> list[str]:
        """A 304's links come from the copy already in the mirror."""
        state = self._state.get(url)
        copy = self._target(state["file"]) if state else None
        try:
            data = copy.read_bytes() if copy is not None else b""
        except OSError:
            return []
        return self._links(BeautifulSoup(data, "lxml"), url) if data else []

    def _remove(self, url: str, why: str) -> None:
        state = self._state.get(url)
        if state is None:
            return
        name = state["file"]
        if name not in self._written:
            path = self._target(name)
            try:
                current = _digest(path) if path is not None else None
                if path is None:
                    self._refuse(url, "outside-corpus", f"{why}; {name} leads out of the corpus folder; not removed")
                elif current is not None and not self._state.owns(name, current):
                    self._refuse(url, "not-ours", f"{why}; {name} changed since this crawler wrote it; not removed")
                else:
                    path.unlink(missing_ok=True)
                    self.report.removed.append(name)
                    self.report.problems.append(f"{url}: {why}; removed {name}")
            except OSError as exc:
                self.report.failed["write-error"] += 1
                self.report.problems.append(f"{url}: {why}; write-error {name}: {exc.strerror or exc}; not removed")
                return
        self._state.delete(url)

    # ----------------------------------------------------------------- sitemaps

    def _sitemap_urls(self, url: str) -> tuple[list[str], bool]:
        """Page URLs of a sitemap or sitemap index (``.xml.gz`` too), and whether every
        sitemap was read completely (only then may absence from it remove a page)."""
        pages: list[str] = []
        queue, seen, complete = [url], set(), True
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=False)
        while queue and len(seen) < _MAX_SITEMAPS:
            sitemap = queue.pop(0)
            if sitemap in seen:
                continue
            seen.add(sitemap)
            if _origin(sitemap) != self.origin or not self.allowed(sitemap):
                self.report.skipped["sitemap-off-site-or-robots"] += 1
                complete = False
                continue
            try:
                self._wait_turn()
                deadline = time.monotonic() + self.timeout
                with self.client.stream("GET", sitemap) as response:
                    response.raise_for_status()
                    data = self._read(response, "sitemap-too-large", _MAX_SITEMAP_BYTES, deadline)
                if data[:2] == b"\x1f\x8b":
                    with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                        data = gz.read(_MAX_SITEMAP_BYTES + 1)
                if len(data) > _MAX_SITEMAP_BYTES:
                    raise ValueError("sitemap over 50 MB uncompressed")
                root = etree.fromstring(data, parser)
            except (httpx.HTTPError, OSError, ValueError, etree.XMLSyntaxError, _Skip) as exc:
                self.report.failed["sitemap"] += 1
                why = f"{exc.reason} ({exc.detail})" if isinstance(exc, _Skip) else _reason(exc)
                self.report.problems.append(f"{sitemap}: {why}")
                complete = False
                continue
            kind = etree.QName(root).localname
            locs = [(el.text or "").strip() for el in root.iter("{*}loc")]
            locs = [_normalise(urljoin(sitemap, loc)) for loc in locs if loc]
            if kind != "sitemapindex":
                for loc in [loc for loc in locs if _origin(loc) != self.origin]:
                    self.report.skipped["off-site"] += 1
                    self.report.problems.append(f"{loc}: off-site (listed in {sitemap}); not requested")
                locs = [loc for loc in locs if _origin(loc) == self.origin]
            (queue if kind == "sitemapindex" else pages).extend(locs)
        if queue:
            complete = False
        return list(dict.fromkeys(pages)), complete

    # ----------------------------------------------------------------- the crawl

    def run(self, progress: Callable[[], None] | None = None) -> CrawlReport:
        """Crawl; ``progress`` is called once per page requested."""
        self.corpus_dir.mkdir(parents=True, exist_ok=True)
        self._root = self.corpus_dir.resolve()
        if self._target(STATE) is None:
            self.report.failed["outside-corpus"] += 1
            self.report.problems.append(f"{self.corpus_dir / STATE}: leads out of the corpus folder; crawled nothing")
            self.client.close()
            return self.report
        self._state = _State(self.corpus_dir / STATE)
        try:
            if self._read_robots():
                self._crawl(progress)
        finally:
            self._state.close()
            self.client.close()
        return self.report

    def _crawl(self, progress) -> None:
        sitemap_mode = is_sitemap_url(self.start)
        complete = False
        if sitemap_mode:
            frontier, complete = self._sitemap_urls(self.start)
            max_depth = 0
        else:
            frontier, max_depth = [self.start], self.max_depth
        if len(frontier) > self.max_pages:
            complete = False  # the pages past the cap are counted as skipped below
        tick = progress or (lambda: None)
        seen: set[str] = set(frontier)
        listed: set[str] = set(frontier)
        requested = 0
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="crawl") as pool:
            for depth in range(max_depth + 1):
                batch = []
                for url in frontier:
                    if _origin(url) != self.origin:
                        self.report.skipped["off-site"] += 1
                    elif _NOT_PAGES.search(urlsplit(url).path):
                        self.report.skipped["not-html"] += 1
                    elif urlsplit(url).query:
                        self.report.skipped["query-string"] += 1
                    elif not self.allowed(url):
                        self.report.skipped["robots"] += 1
                    elif requested >= self.max_pages:
                        self.report.skipped["max-pages"] += 1
                    else:
                        batch.append(url)
                        requested += 1
                next_frontier: list[str] = []
                for result in pool.map(self.fetch, batch):
                    links = self._settle(result)
                    tick()
                    if depth < max_depth:
                        for link in links:
                            if link not in seen:
                                seen.add(link)
                                next_frontier.append(link)
                if not next_frontier:
                    break
                frontier = next_frontier
        if sitemap_mode and complete:
            for url in self._state.all():
                if url not in listed:
                    self._remove(url, "no longer in the sitemap")

    def _settle(self, result: _Result) -> list[str]:
        report = self.report
        if result.outcome == "fetched":
            return self._store(result)
        if result.outcome == "not-modified":
            report.not_modified += 1
            state = self._state.get(result.url)
            if state:
                with self._files_lock:
                    self._written.setdefault(state["file"], result.url)
            return self._links_of_copy(result.url)
        if result.outcome == "gone":
            if self._state.get(result.url):
                self._remove(result.url, result.reason)
            else:
                report.failed[result.reason] += 1
                report.problems.append(f"{result.url}: {result.reason} (a broken link?)")
            return []
        counter = report.failed if result.outcome == "failed" else report.skipped
        counter[result.reason] += 1
        kept = " (the previous copy is kept)" if result.outcome == "failed" and self._state.get(result.url) else ""
        detail = f" {result.final}" if result.final else ""
        report.problems.append(f"{result.url}: {result.reason}{detail}{kept}")
        return []


class _Inflater:
    """One gzip or deflate content-coding undone step by step, each step's output bounded."""

    def __init__(self, coding: str):
        self.coding = coding
        self.started = False
        self.z = zlib.decompressobj(_CODINGS[coding])

    def step(self, data: bytes, room: int) -> tuple[bytes, bytes]:
        """At most ``room`` bytes of output, and the input not yet consumed."""
        try:
            out = self.z.decompress(data, room)
        except zlib.error as exc:
            if self.coding != "deflate" or self.started:
                raise httpx.DecodingError(f"{self.coding}: {exc}") from exc
            # "deflate" is often sent raw, without the zlib wrapper (httpx accepts both too).
            self.z = zlib.decompressobj(-zlib.MAX_WBITS)
            self.started = True
            return self.step(data, room)
        self.started = True
        return out, self.z.unconsumed_tail


def _digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes, None when there is no file (``OSError`` for anything else)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return None


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _reason(exc: BaseException) -> str:
    """A short failure reason for the summary: timeout, connect (DNS, refused), tls, ..."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.DecodingError):
        return "decoding"
    if isinstance(exc, httpx.ConnectError):
        return "tls" if "ssl" in str(exc).lower() or "certificate" in str(exc).lower() else "connect"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"http-{exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return "network"
    return type(exc).__name__.lower()


def crawl(start: str, corpus_dir: Path, config, *, max_pages: int | None = None, max_depth: int | None = None,
          progress: Callable[[], None] | None = None,
          transport: httpx.BaseTransport | None = None) -> CrawlReport:
    """Crawl ``start`` (a page or a sitemap) into ``corpus_dir`` with ``config``'s crawl settings."""
    crawler = Crawler(
        start, corpus_dir, user_agent=config.crawl_user_agent, concurrency=config.crawl_concurrency,
        timeout=config.crawl_timeout, max_bytes=config.max_file_bytes,
        max_pages=max_pages if max_pages is not None else config.crawl_max_pages,
        max_depth=max_depth if max_depth is not None else config.crawl_max_depth,
        max_redirects=config.crawl_max_redirects, transport=transport,
    )
    return crawler.run(progress)


def check_start_url(url: str) -> str | None:
    """Why ``url`` cannot start a crawl, or None."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    return None


__all__ = ["CrawlReport", "Crawler", "STATE", "check_start_url", "crawl", "file_for"]
