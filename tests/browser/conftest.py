"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, against real
gunicorn over a private copy of the corpus with one hostile article added.

Without Chromium, Playwright or axe-core the tests skip with the reason, except under CI
(``CI=true``), where they fail: CI must never pass by skipping them. Nothing is downloaded
here; install with ``apt-get install -y chromium`` and ``npm install --prefix
.venv/npm-tools axe-core``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.service.conftest import REPO, Site
from tests.service.test_gunicorn import Server

CHROMIUM = os.environ.get("FAQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
AXE_JS = Path(os.environ.get("FAQ_AXE_JS") or REPO / ".venv/npm-tools/node_modules/axe-core/axe.min.js")
PAYLOAD = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>"

HOSTILE_ARTICLE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Sleep Hygiene &lt;img src=x onerror="window.__pwned=1"&gt; | My Psychotherapy</title></head>
<body><main><article>
<h1>Sleep Hygiene &lt;img src=x onerror="window.__pwned=1"&gt;</h1>
<h2 id="sleep-hygiene-basics">Sleep hygiene &lt;script&gt;window.__pwned=1&lt;/script&gt; basics</h2>
<p>Sleep hygiene means regular hours &lt;img src=x onerror="window.__pwned=1"&gt; and a dark room,
&lt;script&gt;window.__pwned=1&lt;/script&gt; with &amp; without naps. Good sleep hygiene supports
therapy because rested clients cope better with difficult sessions and daily stress.</p>
<script>window.__pwned = 1</script>
<h2 id="sleep-hygiene-routines">Evening routines for sleep hygiene</h2>
<p>A calm evening routine, the same bedtime and less screen light help sleep hygiene; a therapist
can help when worry keeps you awake night after night.</p>
</article></main></body></html>
"""


def require(ok: bool, reason: str) -> None:
    """Skip when something the browser tests need is missing; fail instead under CI."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright for Python is not installed (pip install -e '.[test]')")
    require(os.access(CHROMIUM, os.X_OK), f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def axe_js() -> Path:
    require(AXE_JS.is_file(), f"axe-core not found at {AXE_JS} (npm install --prefix .venv/npm-tools axe-core)")
    return AXE_JS


HOST_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Host</title>
<script src="{api}/widget/search-box.js" defer></script></head>
<body style="font-family: Georgia, serif"><main><h1>Another site</h1>
<form data-faq-search data-api="{api}" data-site="https://practice.example"
      data-label="Find an article" data-placeholder="Ask anything"></form></main></body></html>"""


class Embedder(BaseHTTPRequestHandler):
    """Another site (``http://localhost:<port>``: another origin than ``127.0.0.1``, and a
    real loopback server, so Chromium's local-network checks see what a real embedder is)."""

    api = ""

    def do_GET(self) -> None:
        body = HOST_PAGE.format(api=self.api).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def embedder() -> Iterator[str]:
    """The origin of another site that embeds the widget; its page's ``api`` is set by ``live``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Embedder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


#: Editors' phrasings, one of them markup that must stay text.
ALTERNATES = """goals-of-psychotherapy#what-is-psychotherapy: what does a shrink do
goals-of-psychotherapy#coping-skills: <img src=x onerror="document.title='pwned'"> panic tricks
"""


@pytest.fixture(scope="session")
def live(tmp_path_factory, browser, embedder) -> Iterator[Server]:
    """gunicorn over the corpus plus a hostile article; ``embedder`` is an allowed origin."""
    root = tmp_path_factory.mktemp("browser")
    site = Site(root)
    (site.corpus / "sleep-hygiene.html").write_text(HOSTILE_ARTICLE, encoding="utf-8")
    (site.corpus / "alternates.txt").write_text(ALTERNATES, encoding="utf-8")
    site.build()
    server = Server(site, root, FAQ_CORS_ORIGINS=embedder)
    Embedder.api = server.base
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def clean_live(tmp_path_factory, browser) -> Iterator[Server]:
    """gunicorn over the site's own corpus only: what the README's screenshots show."""
    root = tmp_path_factory.mktemp("browser-clean")
    site = Site(root)
    site.build()
    server = Server(site, root)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    """A page that records uncaught errors in ``page.errors`` (each test asserts none)."""
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    pg.set_default_timeout(5000)
    return pg
