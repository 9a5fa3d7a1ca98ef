"""The crawler against a real HTTP server on 127.0.0.1 serving the fixture site in fixtures/site.

The site has a sitemap index (one part gzipped), robots.txt, a redirect, a 500, a 404, a slow
page, a non-HTML file and ETags; the server logs every request with its headers.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from indexer.cli import main
from indexer.crawl import STATE, crawl, file_for
from indexer.exitcodes import ExitCode
from indexer.publish import build
from service.search import Engine

SITE = Path(__file__).parent / "fixtures" / "site"
LAST_MODIFIED = "Sun, 01 Nov 2026 10:00:00 GMT"
pytestmark = pytest.mark.usefixtures("clean_env")


class Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.log: list[tuple[float, str, dict[str, str]]] = []
        self.status: dict[str, int] = {}  # path -> forced status
        self.routes: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body)
        self.redirects = {"/old-fees/": "/fees/"}
        self.headers: dict[str, dict[str, str]] = {}  # path -> extra response headers
        self.drip: dict[str, float] = {}  # path -> seconds between the body's single bytes
        self.slow = 2.0
        self.delay = 0.0  # seconds each page takes (to see concurrency)
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        text = "text/plain; charset=utf-8"
        html = "text/html; charset=utf-8"
        for name, path, ctype in (("robots.txt", "/robots.txt", text), ("sitemap.xml", "/sitemap.xml", "application/xml"),
                                  ("sitemap-other.xml", "/sitemap-other.xml", "application/xml"),
                                  ("index.html", "/", html), ("sleep-hygiene.html", "/sleep-hygiene/", html),
                                  ("fees.html", "/fees/", html), ("fees.html", "/private/staff/", html),
                                  ("slow.html", "/slow/", html), ("notes.txt", "/notes/", text)):
            self.routes[path] = (ctype, self.fill(SITE / name))
        self.routes["/sitemap-articles.xml.gz"] = ("application/gzip",
                                                   gzip.compress(self.fill(SITE / "sitemap-articles.xml")))

    def fill(self, path: Path) -> bytes:
        return path.read_bytes().replace(b"http://SITE", self.origin.encode())

    def requests_for(self, path: str) -> list[dict[str, str]]:
        return [headers for _, p, headers in self.log if p == path]


class Handler(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        site = self.server
        with site.lock:
            site.log.append((time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()}))
            site.in_flight += 1
            site.max_in_flight = max(site.max_in_flight, site.in_flight)
        self.counted = True
        try:
            self.answer(site)
        finally:
            self.release()

    def release(self) -> None:
        """A request stops counting as in flight before its response is sent: once the client
        has it, the next request may arrive before this thread would get to count down."""
        if getattr(self, "counted", False):
            self.counted = False
            with self.server.lock:
                self.server.in_flight -= 1

    def answer(self, site: Site) -> None:
        path = self.path
        if site.delay and path not in ("/robots.txt",):
            time.sleep(site.delay)
        if path in site.status:
            return self.reply(site.status[path], b"forced status")
        if path in site.redirects:
            return self.reply(301, b"", {"Location": site.redirects[path]})
        if path == "/broken/":
            return self.reply(500, b"internal error")
        if path not in site.routes:
            return self.reply(404, b"not found")
        if path == "/slow/":
            time.sleep(site.slow)
        ctype, body = site.routes[path]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            return self.reply(304, b"", {"ETag": etag})
        headers = {"Content-Type": ctype, "ETag": etag, "Last-Modified": LAST_MODIFIED, **site.headers.get(path, {})}
        if path in site.drip:
            return self.reply(200, body, headers, drip=site.drip[path])
        self.reply(200, body, headers)

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None, drip: float = 0.0) -> None:
        self.release()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                if not drip:
                    self.wfile.write(body)
                for i in range(len(body) if drip else 0):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(drip)


@contextlib.contextmanager
def serving():
    server = Site()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site():
    with serving() as server:
        yield server


@pytest.fixture
def other_site():
    """A second server on another port: another origin, which the crawler must never read."""
    with serving() as server:
        yield server


@pytest.fixture
def crawl_config(make_config, tmp_path):
    return make_config(tmp_path / "corpus", crawl_timeout=0.5)


def sitemap(*urls: str) -> tuple[str, bytes]:
    """A sitemap route listing ``urls``."""
    entries = "".join(f"<url><loc>{url}</loc></url>" for url in urls)
    return "application/xml", (f'<?xml version="1.0" encoding="UTF-8"?><urlset '
                               f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>').encode()


def html(title: str, body: str = "<p>Some text.</p>") -> tuple[str, bytes]:
    """A small page route."""
    return "text/html; charset=utf-8", f"<html><body><h1>{title}</h1>{body}</body></html>".encode()


def mirror(corpus: Path) -> dict[str, int]:
    """Mirror files and their modification times (ns)."""
    return {str(p.relative_to(corpus)): p.stat().st_mtime_ns for p in corpus.rglob("*.html")}


def test_sitemap_crawl_mirrors_the_pages_and_publishes_them_for_search(site, crawl_config):
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert sorted(mirror(crawl_config.corpus_dir)) == ["fees.html", "index.html", "sleep-hygiene.html"]
    assert (report.fetched, report.written, report.not_modified) == (3, 3, 0)
    assert report.failed == {"http-500": 1, "http-404": 1, "timeout": 1}
    assert report.skipped == {"robots": 1, "not-html": 1}
    assert report.removed == []
    assert site.requests_for("/private/staff/") == []  # robots.txt said no
    assert all(h["user-agent"] == crawl_config.crawl_user_agent for _, _, h in site.log)
    summary = report.summary()
    assert summary.startswith(f"crawled {site.origin}/sitemap.xml: fetched 3 (written 3), not modified 0, ")
    assert "failed 3 (http-404 1, http-500 1, timeout 1), skipped 2 (not-html 1, robots 1), removed 0" in summary

    build(crawl_config)
    results = Engine(crawl_config).search("when should I stop drinking coffee")["results"]
    assert results[0]["id"] == "sleep-hygiene#caffeine"
    assert results[0]["url"] == "/sleep-hygiene/#caffeine"


def test_redirect_follows_to_the_final_url_whose_canonical_names_the_file(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert [h for h in site.requests_for("/fees/")]  # reached only through /old-fees/'s 301
    assert not (crawl_config.corpus_dir / "old-fees.html").exists()
    assert "sliding-scale places" in (crawl_config.corpus_dir / "fees.html").read_text(encoding="utf-8")


def test_redirect_loops_and_off_site_redirects_are_skipped_after_a_bounded_number_of_hops(site, crawl_config):
    site.redirects.update({"/loop/": "/loop/", "/away/": "https://elsewhere.example/page/"})
    loop = crawl(f"{site.origin}/loop/", crawl_config.corpus_dir, crawl_config, max_depth=0)
    assert loop.skipped == {"too-many-redirects": 1}
    assert len(site.requests_for("/loop/")) == crawl_config.crawl_max_redirects + 1
    away = crawl(f"{site.origin}/away/", crawl_config.corpus_dir, crawl_config, max_depth=0)
    assert away.skipped == {"off-site-redirect": 1} and mirror(crawl_config.corpus_dir) == {}


def test_recrawl_sends_conditional_requests_and_rewrites_nothing(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    before = mirror(crawl_config.corpus_dir)
    site.log.clear()
    time.sleep(0.01)
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert (report.fetched, report.written, report.not_modified) == (0, 0, 3)
    for path in ("/", "/sleep-hygiene/", "/fees/"):
        (headers,) = site.requests_for(path)
        assert headers["if-none-match"].startswith('"')
        assert headers["if-modified-since"] == LAST_MODIFIED
    assert mirror(crawl_config.corpus_dir) == before


def test_recrawl_of_an_unchanged_50_page_site_downloads_no_page_bodies(site, crawl_config):
    links = "".join(f'<a href="/p/{i}/">page {i}</a> ' for i in range(50))
    site.routes["/"] = ("text/html", f"<html><body><h1>Home</h1><p>{links}</p></body></html>".encode())
    for i in range(50):
        site.routes[f"/p/{i}/"] = ("text/html", f"<html><body><h1>Page {i}</h1><p>Text {i}.</p></body></html>".encode())
    first = crawl(f"{site.origin}/", crawl_config.corpus_dir, crawl_config, max_depth=1)
    assert first.fetched == 51
    site.log.clear()
    second = crawl(f"{site.origin}/", crawl_config.corpus_dir, crawl_config, max_depth=1)
    assert (second.fetched, second.not_modified) == (0, 51)
    pages = [headers for _, path, headers in site.log if path != "/robots.txt"]
    assert len(pages) == 51 and all("if-none-match" in h for h in pages)


def test_a_500_or_a_timeout_on_recrawl_keeps_the_page(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    before = mirror(crawl_config.corpus_dir)
    site.status["/sleep-hygiene/"] = 500
    site.status["/fees/"] = 503
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert report.failed["http-500"] == 2 and report.failed["http-503"] == 1
    assert report.removed == []
    assert mirror(crawl_config.corpus_dir) == before
    assert any("sleep-hygiene/: http-500" in p and "previous copy is kept" in p for p in report.problems)


def test_a_404_on_recrawl_removes_the_page(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    site.status["/sleep-hygiene/"] = 410
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert report.removed == ["sleep-hygiene.html"]
    assert sorted(mirror(crawl_config.corpus_dir)) == ["fees.html", "index.html"]


def test_a_page_missing_from_a_complete_sitemap_is_removed_but_not_when_a_sitemap_failed(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    smaller = site.fill(SITE / "sitemap-articles.xml").replace(b"/sleep-hygiene/", b"/fees/")
    site.routes["/sitemap-articles.xml.gz"] = ("application/gzip", gzip.compress(smaller))
    site.status["/sitemap-other.xml"] = 500
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert report.removed == [] and report.failed["sitemap"] == 1
    assert "sleep-hygiene.html" in mirror(crawl_config.corpus_dir)
    del site.status["/sitemap-other.xml"]
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert report.removed == ["sleep-hygiene.html"]


def test_a_sitemap_cut_short_by_max_pages_removes_nothing(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    smaller = site.fill(SITE / "sitemap-articles.xml").replace(b"/sleep-hygiene/", b"/fees/")
    site.routes["/sitemap-articles.xml.gz"] = ("application/gzip", gzip.compress(smaller))
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config, max_pages=2)
    assert report.removed == [] and report.skipped["max-pages"] == 5
    assert "sleep-hygiene.html" in mirror(crawl_config.corpus_dir)


def test_files_the_crawler_did_not_write_are_never_removed(site, crawl_config):
    corpus = crawl_config.corpus_dir
    corpus.mkdir(parents=True)
    (corpus / "editors-page.html").write_text("<h1>Hand made</h1><p>Kept.</p>", encoding="utf-8")
    crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert (corpus / "editors-page.html").is_file()


def test_start_page_crawl_follows_same_origin_links_breadth_first_within_the_bounds(site, crawl_config):
    report = crawl(f"{site.origin}/", crawl_config.corpus_dir, crawl_config, max_depth=1)
    assert sorted(mirror(crawl_config.corpus_dir)) == ["fees.html", "index.html", "sleep-hygiene.html"]
    assert site.requests_for("/slow/") == []  # linked only from depth 1
    assert report.skipped["not-html"] == 2  # /guide.pdf (not requested) and /notes/ (text/plain)
    assert report.skipped["robots"] == 1
    assert not [p for _, p, _ in site.log if "elsewhere" in p]
    limited = crawl(f"{site.origin}/", crawl_config.corpus_dir, crawl_config, max_pages=2)
    assert limited.fetched + limited.not_modified + sum(limited.failed.values()) <= 2
    assert limited.skipped["max-pages"] >= 1


def test_at_most_the_configured_requests_are_open_at_once(site, make_config, tmp_path):
    site.delay, site.slow = 0.05, 0.1  # no timeouts: an abandoned request would still count here
    for n in (1, 2):
        config = make_config(tmp_path / f"corpus{n}", crawl_concurrency=n, crawl_timeout=1.0)
        site.max_in_flight = 0
        crawl(f"{site.origin}/sitemap.xml", config.corpus_dir, config)
        assert site.max_in_flight == n


def test_crawl_delay_from_robots_txt_spaces_the_requests(site, crawl_config):
    site.routes["/robots.txt"] = ("text/plain", b"User-agent: *\nCrawl-delay: 1\n")
    site.routes["/"] = ("text/html", b'<html><body><h1>Home</h1><a href="/fees/">fees</a></body></html>')
    crawl(f"{site.origin}/", crawl_config.corpus_dir, crawl_config, max_depth=1)
    starts = [t for t, p, _ in site.log if p != "/robots.txt"]
    assert len(starts) == 2 and starts[1] - starts[0] >= 0.9


def test_robots_txt_server_error_crawls_nothing_and_deletes_nothing(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    before = mirror(crawl_config.corpus_dir)
    site.log.clear()
    site.status["/robots.txt"] = 503
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert [p for _, p, _ in site.log] == ["/robots.txt"]
    assert report.failed == {"robots-txt": 1} and mirror(crawl_config.corpus_dir) == before


def test_pages_over_the_size_cap_are_skipped(site, make_config, tmp_path):
    config = make_config(tmp_path / "corpus", max_file_bytes=300, crawl_timeout=0.5)
    report = crawl(f"{site.origin}/sitemap.xml", config.corpus_dir, config)
    assert report.skipped["too-large"] == 3 and report.fetched == 0


def test_the_state_file_beside_the_mirror_is_not_read_as_a_page(site, crawl_config):
    crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert (crawl_config.corpus_dir / STATE).is_file()
    report = build(crawl_config)
    assert report.articles == 3 and not [i for i in report.issues if STATE in i.source]


@pytest.mark.parametrize(("url", "name"), [
    ("http://h/", "index.html"), ("http://h/a/b/", "a/b.html"), ("http://h/x.html", "x.html"),
    ("http://h/blog/index.html", "blog.html"), ("http://h/Caf%C3%A9/", "cafe.html"),
])
def test_the_mirror_file_is_named_from_the_url_path(url, name):
    assert file_for(url) == name


def test_cli_crawl_then_update_publishes_and_prints_the_summary(site, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAQ_CRAWL_TIMEOUT", "0.5")
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    code = main(["crawl", f"{site.origin}/sitemap.xml", "--corpus", str(corpus), "--index", str(index), "--update"])
    out = capsys.readouterr().out
    assert code == ExitCode.OK
    assert "fetched 3 (written 3), not modified 0" in out
    assert "published generation" in out


def test_cli_crawl_refuses_a_non_http_url(tmp_path, capsys):
    assert main(["crawl", "file:///etc/passwd", "--corpus", str(tmp_path / "c")]) == ExitCode.USAGE
    assert "not an http(s) URL" in capsys.readouterr().err


# ------------------------------------------------------------------ the security review's cases


def test_sitemap_entries_on_another_origin_are_skipped_and_never_requested(site, other_site, crawl_config):
    other_site.routes["/secret/"] = html("Secret", "<p>Internal only.</p>")
    site.routes["/sitemap.xml"] = sitemap(f"{site.origin}/fees/", f"{other_site.origin}/secret/",
                                          f"//127.0.0.1:{other_site.server_address[1]}/secret/")
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert other_site.log == []
    assert sorted(mirror(crawl_config.corpus_dir)) == ["fees.html"]
    assert report.skipped == {"off-site": 2} and report.fetched == 1


def test_links_to_another_origin_are_never_followed(site, other_site, crawl_config):
    other_site.routes["/secret/"] = html("Secret")
    site.routes["/"] = html("Home", f'<a href="{other_site.origin}/secret/">x</a> <a href="/fees/">fees</a>')
    crawl(f"{site.origin}/", crawl_config.corpus_dir, crawl_config, max_depth=2)
    assert other_site.log == []
    assert sorted(mirror(crawl_config.corpus_dir)) == ["fees.html", "index.html"]


def test_a_robots_txt_inflating_past_its_cap_is_refused_and_nothing_is_crawled(site, crawl_config):
    rules = b"User-agent: *\nDisallow: /private/\n" + b"# padding\n" * 100_000  # 1 MB inflated
    site.routes["/robots.txt"] = ("text/plain", gzip.compress(rules))
    site.headers["/robots.txt"] = {"Content-Encoding": "gzip"}
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert [p for _, p, _ in site.log] == ["/robots.txt"]
    assert report.failed == {"robots-txt": 1}
    assert "cap" in report.problems[0] and "crawled nothing" in report.problems[0]


@pytest.mark.parametrize("coding", ["gzip, gzip", "gzip,deflate", "br", "compress"])
def test_a_page_with_stacked_or_unknown_content_codings_is_refused(site, crawl_config, coding):
    ctype, body = html("Layered")
    site.routes["/layered/"] = (ctype, gzip.compress(gzip.compress(body)))
    site.headers["/layered/"] = {"Content-Encoding": coding}
    report = crawl(f"{site.origin}/layered/", crawl_config.corpus_dir, crawl_config, max_depth=0)
    assert report.skipped == {"content-encoding": 1} and mirror(crawl_config.corpus_dir) == {}


def test_a_sitemap_with_stacked_content_codings_is_refused(site, crawl_config):
    ctype, body = site.routes["/sitemap-other.xml"]
    site.routes["/sitemap-other.xml"] = (ctype, gzip.compress(gzip.compress(body)))
    site.headers["/sitemap-other.xml"] = {"Content-Encoding": "gzip, gzip"}
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert report.failed["sitemap"] == 1
    assert any("sitemap-other.xml: content-encoding" in p for p in report.problems)
    assert site.requests_for("/slow/") == []  # listed only in the refused sitemap


@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress),
    ("deflate", lambda b: (lambda c: c.compress(b) + c.flush())(zlib.compressobj(wbits=-zlib.MAX_WBITS))),
    ("identity", lambda b: b),
])
def test_a_gzip_or_deflate_page_is_inflated(site, crawl_config, coding, encode):
    ctype, body = html("Packed", "<p>Packed text.</p>")
    site.routes["/packed/"] = (ctype, encode(body))
    site.headers["/packed/"] = {"Content-Encoding": coding}
    report = crawl(f"{site.origin}/packed/", crawl_config.corpus_dir, crawl_config, max_depth=0)
    assert report.fetched == 1
    assert (crawl_config.corpus_dir / "packed.html").read_bytes() == body


def test_a_gzip_page_inflating_past_the_size_cap_is_skipped(site, make_config, tmp_path):
    config = make_config(tmp_path / "corpus", max_file_bytes=10_000, crawl_timeout=0.5)
    ctype, body = html("Bomb", "<p>" + "a" * 5_000_000 + "</p>")
    site.routes["/bomb/"] = (ctype, gzip.compress(body))
    site.headers["/bomb/"] = {"Content-Encoding": "gzip"}
    report = crawl(f"{site.origin}/bomb/", config.corpus_dir, config, max_depth=0)
    assert report.skipped == {"too-large": 1} and mirror(config.corpus_dir) == {}


def test_a_crawl_delay_over_a_minute_is_refused_instead_of_slept(site, tmp_path):
    site.routes["/robots.txt"] = ("text/plain", b"User-agent: *\nCrawl-delay: 99999999\n")
    site.routes["/"] = html("Home", '<a href="/fees/">fees</a>')
    # A process of its own: before the fix it slept for three years, and a sleeping crawl
    # thread would also keep pytest from exiting.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAQ_")} | {"FAQ_CRAWL_TIMEOUT": "0.5"}
    done = subprocess.run(
        [sys.executable, "-m", "indexer.cli", "crawl", f"{site.origin}/", "--json", "--max-depth", "1",
         "--corpus", str(tmp_path / "corpus")], capture_output=True, text=True, timeout=60, env=env)
    report = json.loads(done.stdout)
    assert report["failed"] == {"crawl-delay": 1} and [p for _, p, _ in site.log] == ["/robots.txt"]
    assert "Crawl-delay of 99999999 s is over the 60 s" in done.stderr


def test_a_page_dripped_slower_than_the_timeout_allows_fails_as_a_timeout(site, crawl_config):
    site.routes["/drip/"] = html("Drip")
    site.drip["/drip/"] = 0.1  # every read well within the 0.5 s timeout; 5 s for the whole body
    report = crawl(f"{site.origin}/drip/", crawl_config.corpus_dir, crawl_config, max_depth=0)
    assert report.failed == {"timeout": 1} and mirror(crawl_config.corpus_dir) == {}


def test_a_page_with_a_very_long_path_is_mirrored_under_a_bounded_name(site, crawl_config):
    deep = "/" + "/".join(["x" * 100] * 60) + "/"
    site.routes[deep] = html("Deep")
    site.routes["/sitemap.xml"] = sitemap(f"{site.origin}{deep}", f"{site.origin}/fees/")
    report = crawl(f"{site.origin}/sitemap.xml", crawl_config.corpus_dir, crawl_config)
    assert report.fetched == 2 and report.failed == {}
    (name,) = [n for n in mirror(crawl_config.corpus_dir) if n != "fees.html"]
    assert name == file_for(f"{site.origin}{deep}")


def test_the_mirror_file_name_is_bounded_in_depth_and_length():
    urls = ["http://h/" + "/".join([c * 100] * 60) + "/" for c in "xy"]
    urls += ["http://h/" + "/".join(["z" * 100] * 3), "http://h/" + "/".join("abcdefghij")]
    names = [file_for(url) for url in urls]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 200 and n.count("/") < 8 and n.endswith(".html") for n in names)
    assert names[0].startswith("x" * 100 + "/")  # the first folders are kept


def test_a_page_that_cannot_be_written_fails_alone_and_the_crawl_goes_on(site, crawl_config):
    corpus = crawl_config.corpus_dir
    corpus.mkdir(parents=True)
    (corpus / "blog").write_text("a file where the crawler wants a folder", encoding="utf-8")
    site.routes["/blog/tips/"] = html("Tips")
    site.routes["/sitemap.xml"] = sitemap(f"{site.origin}/blog/tips/", f"{site.origin}/fees/")
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert report.failed == {"write-error": 1} and sorted(mirror(corpus)) == ["fees.html"]
    assert any("blog/tips/: write-error" in p and "blog/tips.html" in p for p in report.problems)


def test_a_symlink_leading_out_of_the_corpus_is_never_written_or_removed_through(site, crawl_config, tmp_path):
    corpus, outside = crawl_config.corpus_dir, tmp_path / "outside"
    site.routes["/articles/grief/"] = html("Grief")
    site.routes["/sitemap.xml"] = sitemap(f"{site.origin}/articles/grief/", f"{site.origin}/fees/")
    crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    (corpus / "articles").rename(outside)  # the folder moves out; a symlink stays in its place
    (corpus / "articles").symlink_to(outside, target_is_directory=True)
    site.status["/articles/grief/"] = 410
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert (outside / "grief.html").is_file() and report.removed == []
    assert report.skipped["outside-corpus"] == 1

    (outside / "grief.html").unlink()
    del site.status["/articles/grief/"]
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert list(outside.iterdir()) == [] and report.skipped["outside-corpus"] == 1


def test_a_state_file_symlinked_out_of_the_corpus_stops_the_crawl(site, crawl_config, tmp_path):
    corpus, outside = crawl_config.corpus_dir, tmp_path / "elsewhere.sqlite"
    corpus.mkdir(parents=True)
    (corpus / STATE).symlink_to(outside)
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert report.failed == {"outside-corpus": 1} and site.log == [] and not outside.exists()


def test_an_editors_file_with_a_crawled_pages_name_is_neither_overwritten_nor_removed(site, crawl_config):
    corpus = crawl_config.corpus_dir
    corpus.mkdir(parents=True)
    mine = corpus / "sleep-hygiene.html"
    mine.write_text("<h1>Mine</h1><p>Hand made.</p>", encoding="utf-8")
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert mine.read_text(encoding="utf-8") == "<h1>Mine</h1><p>Hand made.</p>"
    assert report.skipped["not-ours"] == 1 and report.fetched == 2
    site.status["/sleep-hygiene/"] = 410
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert mine.is_file() and report.removed == []


def test_a_mirrored_file_an_editor_changed_is_not_removed_when_the_page_goes(site, crawl_config):
    corpus = crawl_config.corpus_dir
    crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    (corpus / "sleep-hygiene.html").write_text("<h1>Sleep</h1><p>Edited by hand.</p>", encoding="utf-8")
    site.status["/sleep-hygiene/"] = 410
    report = crawl(f"{site.origin}/sitemap.xml", corpus, crawl_config)
    assert report.removed == [] and report.skipped["not-ours"] == 1
    assert "Edited by hand" in (corpus / "sleep-hygiene.html").read_text(encoding="utf-8")
