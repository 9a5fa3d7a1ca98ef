"""The site's search box for people, not programs: the embeddable widget's static files
(``/widget/{file}``), a demo page that embeds it (``/``) and a server-rendered results page
(``/search``) so that search works, and can be linked, with JavaScript off.

Everything else in the service is JSON; these are HTML, CSS and JavaScript, so they render
their own errors as HTML pages. The results page asks the same ``Engine`` as ``/v1/search``.
Visitors' queries are never logged, and every page forbids inline scripts (CSP) and sends no
referrer, so a query in ``/search?q=`` never leaks to the page a result links to.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import falcon
import jinja2

from indexer.settings import Config
from service import metrics
from service.generations import NoIndex
from service.query import normalise_query
from service.search import Engine

HERE = Path(__file__).resolve().parent
WIDGET_DIR = HERE / "widget"
TEMPLATE_DIR = HERE / "templates"
PAGE_SIZE = 10
MAX_OFFSET = 1000
STATIC_MAX_AGE = 365 * 24 * 3600  # versioned URLs never change
UNVERSIONED_MAX_AGE = 3600  # the embed URL: an hour, then a revalidation against the ETag

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

error_log = logging.getLogger("faq.error")

FALLBACK_PAGE = ("<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>Search failed</title>"
                 "<h1>Something went wrong</h1><p>Search failed unexpectedly. Please try again later.</p>")

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_MARK = re.compile(r"(<mark>|</mark>)")


# --------------------------------------------------------------------------- snippets


def snippet_parts(snippet: str) -> list[tuple[bool, str]]:
    """The API's snippet as ``(marked, text)`` pieces of plain text.

    The API escapes every character of a snippet and adds only ``<mark>``/``</mark>``; the
    pieces between those literal tags are unescaped back to text here, so a template escapes
    them exactly once and nothing of the snippet is ever trusted as markup.
    """
    parts: list[tuple[bool, str]] = []
    marked = False
    for piece in _MARK.split(snippet or ""):
        if piece == "<mark>":
            marked = True
        elif piece == "</mark>":
            marked = False
        elif piece:
            parts.append((marked, html.unescape(piece)))
    return parts


# --------------------------------------------------------------------------- static files


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    version: str  # first 12 hex digits of the content's SHA-256

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def load_assets(folder: Path = WIDGET_DIR) -> dict[str, Asset]:
    """Every servable file of the widget folder, read and compressed once per worker."""
    assets = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in _TYPES and path.is_file():
            body = path.read_bytes()
            assets[path.name] = Asset(body, gzip.compress(body, 9, mtime=0), _TYPES[path.suffix],
                                      hashlib.sha256(body).hexdigest()[:12])
    return assets


class WidgetResource:
    """``GET /widget/{file}``: the widget's JavaScript and CSS.

    ``?v=<version>`` URLs (what the pages link) are immutable for a year; the bare URL that
    embedders paste is cached an hour and revalidated with a strong ETag of the content.
    """

    own_cache_headers = True  # service.middleware.HttpCache leaves these headers alone

    def __init__(self, assets: dict[str, Asset]):
        self.assets = assets

    def on_get(self, req: falcon.Request, resp: falcon.Response, file: str) -> None:
        asset = self.assets.get(file)
        if asset is None:
            raise falcon.HTTPNotFound(description=f"There is no widget file {file!r}.")
        versioned = req.get_param("v") == asset.version
        max_age = STATIC_MAX_AGE if versioned else UNVERSIONED_MAX_AGE
        resp.set_header("Cache-Control", f"public, max-age={max_age}" + (", immutable" if versioned else ""))
        resp.set_header("Cross-Origin-Resource-Policy", "cross-origin")  # other sites embed it
        resp.vary = ("Accept-Encoding",)
        resp.etag = asset.etag
        wanted = req.get_header("If-None-Match") or ""
        if asset.etag in {t.strip().removeprefix("W/") for t in wanted.split(",")}:
            resp.status = falcon.HTTP_304
            return
        resp.content_type = asset.content_type
        if "gzip" in (req.get_header("Accept-Encoding") or "").lower():
            resp.set_header("Content-Encoding", "gzip")
            resp.data = asset.gzipped
        else:
            resp.data = asset.body


# --------------------------------------------------------------------------- pages


class _Page:
    """An HTML page: rendered with autoescaping, with the pages' security headers."""

    def __init__(self, engine: Engine, config: Config, env: jinja2.Environment, assets: dict[str, Asset]):
        self.engine = engine
        self.config = config
        self.env = env
        self.versions = {name: a.version for name, a in assets.items()}

    def render(self, resp: falcon.Response, template: str, status: str = falcon.HTTP_200, **context) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_HTML
        for name, value in PAGE_HEADERS.items():
            resp.set_header(name, value)
        resp.text = self.env.get_template(template).render(
            asset=lambda name: f"/widget/{name}?v={self.versions[name]}",
            max_query_chars=self.config.max_query_chars, **context,
        )

    def error_page(self, resp: falcon.Response, status: str, title: str, message: str, q: str = "") -> None:
        self.render(resp, "error.html", status, title=title, message=message, q=q)

    def guarded(self, req: falcon.Request, resp: falcon.Response, respond) -> None:
        """Run ``respond``; a missing index or a bug becomes an HTML page, not JSON."""
        try:
            respond()
        except NoIndex:
            resp.set_header("Retry-After", "30")
            self.error_page(resp, falcon.HTTP_503, "Search is not available right now",
                            "The search index is being prepared. Please try again in a minute.")
        except Exception:
            error_log.exception("unexpected error on %s %s", req.method, req.path)  # never the query
            try:
                self.error_page(resp, falcon.HTTP_500, "Something went wrong",
                                "Search failed unexpectedly. Please try again later.")
            except Exception:  # the templates themselves are broken: still an HTML answer
                error_log.exception("the error page failed to render")
                resp.status, resp.content_type, resp.text = falcon.HTTP_500, falcon.MEDIA_HTML, FALLBACK_PAGE


class DemoPage(_Page):
    """``GET /``: the widget embedded over the served corpus, with the articles it covers."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        def respond() -> None:
            try:
                articles = self.engine.articles()["articles"]
            except NoIndex:
                articles = []
            self.render(resp, "index.html", articles=articles)

        self.guarded(req, resp, respond)


class SearchPage(_Page):
    """``GET /search?q=&offset=``: the results page that works without JavaScript."""

    carries_query = True  # service.middleware.HttpCache: Cache-Control private
    analytics = None  # set by add_routes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guarded(req, resp, lambda: self._respond(req, resp))

    def _single(self, req: falcon.Request, name: str) -> str | None:
        value = req.params.get(name)
        return value[0] if isinstance(value, list) else value

    def _respond(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = normalise_query(self._single(req, "q") or "")
        raw_offset = (self._single(req, "offset") or "0").strip()
        if not re.fullmatch(r"[0-9]{1,9}", raw_offset) or int(raw_offset) > MAX_OFFSET:
            self.error_page(resp, falcon.HTTP_400, "That page of results does not exist",
                            f"The page position must be a whole number from 0 to {MAX_OFFSET}.", q=q)
            return
        offset = int(raw_offset)
        if len(q) > self.config.max_query_chars:
            self.error_page(resp, falcon.HTTP_400, "That search is too long",
                            f"Please use at most {self.config.max_query_chars} characters.",
                            q=q[:self.config.max_query_chars])
            return
        if not q:
            self.render(resp, "search.html", q="", result=None, answer=None)
            return
        result = self.engine.search(q, limit=PAGE_SIZE, offset=offset)
        answered = self.engine.answer(q) if offset == 0 else None
        answer = answered["answer"] if answered else None
        metrics.observe_search(result, offset)  # a search from the page counts like /v1/search
        if self.analytics is not None:
            self.analytics.record_search(q, result, offset)
        if answered is not None:
            metrics.observe_answer(answered)
            if self.analytics is not None:
                self.analytics.record_answer(q, answered)
        shown = len(result["results"])
        self.render(
            resp, "search.html", q=q, result=result, answer=answer, offset=offset,
            first=offset + 1, last=offset + shown, page_size=PAGE_SIZE,
            previous=max(offset - PAGE_SIZE, 0) if offset > 0 else None,
            next=offset + PAGE_SIZE if offset + shown < min(result["total"], MAX_OFFSET + PAGE_SIZE)
            and offset + PAGE_SIZE <= MAX_OFFSET else None,
        )


def environment() -> jinja2.Environment:
    """Jinja2 with autoescaping on for every template (they are all HTML)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["snippet_parts"] = snippet_parts
    return env


def add_routes(app: falcon.App, engine: Engine, config: Config, analytics=None) -> None:
    """Route ``/``, ``/search`` and ``/widget/{file}`` on ``app``; searches made on the results
    page are counted in the metrics and (``analytics``, a ``service.analytics.Analytics``) for
    editors like those of ``/v1/search``."""
    assets = load_assets()
    env = environment()
    app.add_route("/", DemoPage(engine, config, env, assets))
    search_page = SearchPage(engine, config, env, assets)
    search_page.analytics = analytics
    app.add_route("/search", search_page)
    app.add_route("/widget/{file}", WidgetResource(assets))
