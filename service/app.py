"""The Falcon application: ``gunicorn 'service.app:create_app()'``.

Every response, errors included, is JSON. Errors are ``{"title", "description"}``; an
unexpected exception becomes a 500 whose description says nothing about its cause (the
traceback goes to the ``faq.error`` log, never to the client).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path

import falcon
import orjson
from falcon import media

from indexer.settings import Config, load_config
from service import pages
from service import resources as r
from service.analytics import Analytics, AnalyticsResource
from service.cache import ResponseCache
from service.generations import NoIndex
from service.jobs import JobStore
from service.metrics import MetricsResource, RequestMetrics, observe_generation
from service.middleware import AccessLog, Cors, HttpCache, RequestId, SecurityHeaders
from service.openapi import OpenApiResource, load_document
from service.search import Engine, NotFound

OPENAPI_PATH = Path(__file__).with_name("openapi.json")

error_log = logging.getLogger("faq.error")

_DEFAULT_DESCRIPTIONS = {
    400: "The request is not valid.",
    401: "Authentication is required.",
    404: "There is nothing at this path.",
    405: "This method is not allowed on this path; the Allow header lists those that are.",
    409: "The request conflicts with the current state of the service.",
    413: "The request body is too large.",
    500: "An unexpected error occurred; it has been logged.",
    503: "The service is not available right now; try again shortly.",
}


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Every error as JSON ``{"title", "description"}``, whatever the client accepts."""
    description = exc.description or _DEFAULT_DESCRIPTIONS.get(exc.status_code, "")
    if isinstance(exc, falcon.HTTPMethodNotAllowed):
        description = f"{req.method} is not allowed on {req.path}; the Allow header lists the methods that are."
    elif isinstance(exc, falcon.HTTPRouteNotFound):
        description = f"There is no resource at {req.path}; see /openapi.json for the API's paths."
    resp.content_type = falcon.MEDIA_JSON
    resp.data = json.dumps({"title": exc.title, "description": description}, ensure_ascii=False).encode("utf-8")


_last_no_index_log = [0.0]


def _no_index(req, resp, exc: NoIndex, params) -> None:
    now = time.monotonic()
    if now - _last_no_index_log[0] > 60:  # once a minute, not once a request
        _last_no_index_log[0] = now
        error_log.warning("no index to serve (503 until one is published): %s", exc)
    # The client is not told the folder (exc says it): the server log is.
    raise falcon.HTTPServiceUnavailable(
        description="The search index is not available: no index has been built yet, or the served one "
                    "cannot be opened. Try again shortly.",
        retry_after=30,
    )


def _not_found(req, resp, exc: NotFound, params) -> None:
    raise falcon.HTTPNotFound(description=f"{str(exc)[:1].upper()}{str(exc)[1:]}.")


def _unexpected(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError | falcon.HTTPStatus):  # pragma: no cover - handled by Falcon
        raise exc
    error_log.exception("unexpected error on %s %s (request id %s)", req.method, req.path,  # never the query string
                        getattr(req.context, "request_id", "-"))
    raise falcon.HTTPInternalServerError(description=_DEFAULT_DESCRIPTIONS[500])


# What, besides the index generation, decides a response body: the API document, the code
# that ranks and renders, and the settings that change answers or URLs. All go into the ETag,
# so a deploy or a settings change never earns a stale 304.
_RESPONSE_CODE = ("service/search.py", "service/query.py", "service/scoring.py", "service/highlight.py",
                  "service/suggest.py", "service/spelling.py", "service/related.py", "service/resources.py",
                  "service/lexicon.py", "service/equivalences.txt",
                  "service/pages.py", "service/templates/base.html", "service/templates/_form.html",
                  "service/templates/index.html", "service/templates/search.html",
                  "service/templates/error.html", "indexer/schema.py")
_RESPONSE_SETTINGS = ("site_url", "answer_threshold", "max_query_chars", "cache_public")


def _dumps(obj: object) -> bytes:
    """JSON as UTF-8 bytes, non-ASCII unescaped (as the standard encoder with
    ``ensure_ascii=False``), non-string keys written as strings."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def api_version(document: bytes, config: Config | None = None) -> str:
    digest = hashlib.sha256(document)
    root = Path(__file__).resolve().parent.parent
    for name in _RESPONSE_CODE:
        with contextlib.suppress(OSError):
            digest.update((root / name).read_bytes())
    if config is not None:
        digest.update(json.dumps({k: getattr(config, k) for k in _RESPONSE_SETTINGS}, default=str).encode())
    return digest.hexdigest()[:12]


class FaqApp(falcon.App):
    """``falcon.App`` that keeps a handle on its engine, cache and job store."""

    engine: Engine
    cache: ResponseCache
    jobs: JobStore
    analytics: Analytics
    config: Config


def create_app(config: Config | None = None) -> falcon.App:
    """The WSGI app with its own ``Engine`` (one per worker process)."""
    config = config if config is not None else load_config()
    logging.getLogger("faq").setLevel(str(config.log_level).upper())
    engine = Engine(config)
    # Open the served generation now rather than on the first request. Without an index,
    # /healthz still answers and everything else is 503 until one is published.
    with contextlib.suppress(NoIndex):
        engine.generation()
    observe_generation(engine)  # the generation gauges are right before the first request
    cache = ResponseCache(config.cache_size)
    jobs = JobStore(config)
    analytics = Analytics(config)
    document = OPENAPI_PATH.read_bytes()

    app = FaqApp(
        middleware=[
            AccessLog(),
            RequestId(),
            RequestMetrics(engine),
            SecurityHeaders(),
            Cors(config.cors_origins),
            HttpCache(engine, config.cache_max_age, api_version(document, config), config.cache_public),
        ],
    )
    app.req_options.strip_url_path_trailing_slash = False
    # Responses are encoded by orjson: a search page carries ten answers (~19 KB on MedQuAD),
    # which the standard library's encoder took a tenth of a request to write. Request
    # bodies are still read by the standard library (its errors and number rules).
    json_out = media.JSONHandler(dumps=_dumps, loads=json.loads)
    app.resp_options.media_handlers.update({falcon.MEDIA_JSON: json_out})
    app.resp_options.secure_cookies_by_default = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(NoIndex, _no_index)
    app.add_error_handler(NotFound, _not_found)

    app.add_route("/v1/search", r.SearchResource(engine, config, cache, analytics))
    app.add_route("/v1/answer", r.AnswerResource(engine, config, cache, analytics))
    app.add_route("/v1/suggest", r.SuggestResource(engine, config, cache))
    app.add_route("/v1/articles", r.ArticlesResource(engine))
    app.add_route("/v1/articles/{slug}", r.ArticleResource(engine))
    app.add_route("/v1/articles/{slug}/related", r.RelatedResource(engine))
    app.add_route("/v1/faqs/{slug}/{anchor:path}", r.FaqResource(engine))  # an anchor may hold "/"
    app.add_route("/v1/reindex", r.ReindexResource(config, jobs))
    app.add_route("/v1/reindex/{job}", r.ReindexJobResource(config, jobs))
    app.add_route("/v1/analytics", AnalyticsResource(config, jobs, engine, analytics))
    app.add_route("/metrics", MetricsResource(engine))
    app.add_route("/healthz", r.HealthResource())
    app.add_route("/readyz", r.ReadyResource(engine))
    app.add_route("/openapi.json", OpenApiResource(load_document(), config))
    pages.add_routes(app, engine, config, analytics)  # the search box: /, /search, /widget/{file}

    # For tests and operators poking at a live worker.
    app.engine, app.cache, app.jobs, app.config = engine, cache, jobs, config
    app.analytics = analytics
    return app
