"""Prometheus metrics: what operators scrape from ``GET /metrics``.

Under gunicorn every worker is its own process, so the metrics use prometheus_client's
multiprocess mode: each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
(created and emptied by ``gunicorn.conf.py``) and a scrape, whichever worker answers it,
adds them up. Without that variable (tests, a single process) they live in memory.

No label ever carries what a visitor typed: labels are route templates, status classes,
reindex modes and outcomes, and the served generation's id.
"""

from __future__ import annotations

import os
import time
import weakref
from datetime import datetime
from functools import lru_cache

import falcon
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from service.generations import NoIndex

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chose file-backed values (or not) when it was imported: follow that choice.
_MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) or None
UNMATCHED = "unmatched"  # the route label of requests that matched no route (404s, preflights)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SUGGEST_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512)
_RESULT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 1000)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_REINDEX_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

REQUESTS = Counter("faq_http_requests", "HTTP requests, by route template and status class.",
                   ("route", "status_class"))
LATENCY = Histogram("faq_http_request_duration_seconds",
                    "Time from the first middleware to the response, by route template and status class.",
                    ("route", "status_class"), buckets=_LATENCY_BUCKETS)
SUGGEST_LATENCY = Histogram("faq_suggest_duration_seconds",
                            "Time to answer GET /v1/suggest (finer buckets than the request histogram).",
                            buckets=_SUGGEST_BUCKETS)
SEARCH_RESULTS = Histogram("faq_search_results", "Sections found per search (GET /v1/search, first page).",
                           buckets=_RESULT_BUCKETS)
ZERO_RESULTS = Counter("faq_search_zero_results", "Searches (first page) that found no section.")
ANSWER_CONFIDENCE = Histogram("faq_answer_confidence", "Confidence of the best section per GET /v1/answer.",
                              buckets=_CONFIDENCE_BUCKETS)
NULL_ANSWERS = Counter("faq_answer_null", "GET /v1/answer responses with answer: null.")
GENERATION_INFO = Gauge("faq_generation_info", "1 for the generation a live worker serves.",
                        ("generation",), multiprocess_mode="livemax")
GENERATION_CREATED = Gauge("faq_generation_created_timestamp_seconds",
                           "When the served generation was built (Unix time; newest over live workers).",
                           multiprocess_mode="livemax")
GENERATION_AGE = Gauge("faq_generation_age_seconds",
                       "Age of the served generation (oldest over live workers; fresh from the one scraped).",
                       multiprocess_mode="livemax")
GENERATION_ARTICLES = Gauge("faq_generation_articles", "Articles in the served generation.",
                            multiprocess_mode="livemax")
GENERATION_SECTIONS = Gauge("faq_generation_sections", "Sections in the served generation.",
                            multiprocess_mode="livemax")
GENERATION_SWITCHES = Counter("faq_generation_switches",
                              "Times a worker switched to a newly published generation (each worker counts its own).")
REINDEX_RUNS = Counter("faq_reindex_runs", "Finished reindex jobs (POST /v1/reindex), by mode and outcome.",
                       ("mode", "outcome"))
REINDEX_DURATION = Histogram("faq_reindex_duration_seconds", "Run time of reindex jobs, by mode and outcome.",
                             ("mode", "outcome"), buckets=_REINDEX_BUCKETS)
ANALYTICS_DROPPED = Counter("faq_analytics_not_stored",
                            "Queries search analytics refused to store, by reason (never the query).",
                            ("reason",))

_served: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine → the generation last reported


def multiprocess_dir() -> str | None:
    """The multiprocess folder, when this process runs under the gunicorn config."""
    return _MULTIPROC_DIR


def status_class(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code < 600 else "other"


# (route, status class) → its counter and histogram children. ``labels()`` takes a lock and
# builds the label tuple on every call; routes and classes are few, the children live for the
# process (and follow it across a fork: prometheus_client checks the pid on every write).
_request_children: dict[tuple[str, str], tuple] = {}


def observe_request(route: str | None, code: int, seconds: float) -> None:
    route = route or UNMATCHED
    cls = status_class(code)
    children = _request_children.get((route, cls))
    if children is None:
        children = _request_children[(route, cls)] = (REQUESTS.labels(route, cls), LATENCY.labels(route, cls))
    children[0].inc()
    children[1].observe(seconds)
    if route == "/v1/suggest" and cls == "2xx":
        SUGGEST_LATENCY.observe(seconds)


def observe_search(result: dict, offset: int = 0) -> None:
    """A ``/v1/search`` response body; later pages are the same search, not a new one."""
    if offset:
        return
    SEARCH_RESULTS.observe(result["total"])
    if not result["total"]:
        ZERO_RESULTS.inc()


def observe_answer(result: dict) -> None:
    """A ``/v1/answer`` response body."""
    ANSWER_CONFIDENCE.observe(result["confidence"])
    if result["answer"] is None:
        NULL_ANSWERS.inc()


def observe_reindex(mode: str, outcome: str, seconds: float | None) -> None:
    REINDEX_RUNS.labels(mode, outcome).inc()
    if seconds is not None:
        REINDEX_DURATION.labels(mode, outcome).observe(max(seconds, 0.0))


@lru_cache(maxsize=16)
def _timestamp(created: str | None) -> float | None:
    if not created:
        return None
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def observe_generation(engine, gen=None) -> None:
    """Report the generation ``engine`` serves (cheap when it has not changed: one stat), or
    ``gen``, the one it was just found to serve (then not even the stat)."""
    if gen is None:
        try:
            gen = engine.generation()
        except NoIndex:
            return
    previous = _served.get(engine)
    created = _timestamp(gen.info.get("created"))
    if created is not None:
        GENERATION_AGE.set(max(time.time() - created, 0.0))
    if gen.name == previous:
        return
    _served[engine] = gen.name
    if previous is not None:
        GENERATION_INFO.labels(previous).set(0)
        GENERATION_SWITCHES.inc()
    GENERATION_INFO.labels(gen.name).set(1)
    GENERATION_ARTICLES.set(len(gen.articles))
    GENERATION_SECTIONS.set(gen.doc_count)
    if created is not None:
        GENERATION_CREATED.set(created)


def exposition() -> bytes:
    """Every metric in the text format: summed over all workers in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


class MetricsResource:
    """``GET /metrics``: the Prometheus text format. Never cached by HTTP caches."""

    http_cache = False

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        observe_generation(self.engine)
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = exposition()


class RequestMetrics:
    """Middleware: count and time every request by route template and status class.

    It goes right after ``AccessLog`` so it times what the access log times. The route is
    Falcon's template (``/v1/articles/{slug}``), never the path or the query string.
    """

    def __init__(self, engine):
        self.engine = engine

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "metrics_started", None)
        seconds = time.perf_counter() - started if started is not None else 0.0
        route = req.uri_template if resource is not None else None
        observe_request(route, resp.status_code, seconds)
        if getattr(resource, "engine", None) is self.engine:
            observe_generation(self.engine, getattr(req.context, "generation", None))
