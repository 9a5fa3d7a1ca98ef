"""The API's resources: parameters in, engine results and job records out.

Parameter rules, identical on every endpoint:

* ``q`` is required on ``/v1/search``, ``/v1/answer`` and ``/v1/suggest``. Whitespace is
  collapsed and the text stripped (``/v1/suggest`` keeps one trailing space, which means
  "the last word is complete"); missing, empty or blank → 400; longer than
  ``FAQ_MAX_QUERY_CHARS`` after that normalisation → 400.
* Integers (``limit``, ``offset``) are plain decimal digits within the documented range,
  else 400 naming the parameter and the range.
* A parameter given twice → 400. Unknown parameters are ignored.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable

import falcon

from indexer.settings import Config
from service import metrics
from service.cache import ResponseCache
from service.jobs import JobConflict, JobStore
from service.middleware import client_address, truncate_address
from service.query import normalise_query
from service.search import Engine
from service.throttle import throttle_for

MAX_BODY_BYTES = 64 * 1024


# --------------------------------------------------------------------------- parameters


def _single(req: falcon.Request, name: str) -> str | None:
    value = req.params.get(name)
    if isinstance(value, list):
        raise falcon.HTTPBadRequest(description=f"The {name} parameter may be given only once.")
    return value


def query_param(req: falcon.Request, config: Config, keep_trailing_space: bool = False) -> str:
    limit = config.max_query_chars
    raw = _single(req, "q")
    if raw is None:
        raise falcon.HTTPBadRequest(
            description=f"The q parameter is required: the text to search for, 1 to {limit} characters."
        )
    q = normalise_query(raw, keep_trailing_space)
    if not q.strip():
        raise falcon.HTTPBadRequest(description="The q parameter must not be empty or only whitespace or control characters.")
    if len(q.rstrip()) > limit:
        raise falcon.HTTPBadRequest(
            description=f"The q parameter is too long: {len(q.rstrip())} characters, at most {limit} are allowed."
        )
    return q


_INT = re.compile(r"[0-9]{1,9}")


def int_param(req: falcon.Request, name: str, default: int, low: int, high: int) -> int:
    raw = _single(req, name)
    if raw is None:
        return default
    text = raw.strip()
    value = int(text) if _INT.fullmatch(text) else None
    if value is None or not low <= value <= high:
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        raise falcon.HTTPBadRequest(
            description=f"The {name} parameter must be an integer from {low} to {high} (got {shown!r})."
        )
    return value


# --------------------------------------------------------------------------- query resources


class _Cached:
    """A query resource: its answers are cached per generation and are private to the asker."""

    carries_query = True

    def __init__(self, engine: Engine, config: Config, cache: ResponseCache, analytics=None):
        self.engine = engine
        self.config = config
        self.cache = cache
        self.analytics = analytics  # service.analytics.Analytics: counts for editors, None in bare setups

    def cached(self, endpoint: str, q: str, params: tuple, compute: Callable[[], dict],
               req: falcon.Request | None = None) -> dict:
        # The generation HttpCache found for the ETag, when it ran: no second look-up.
        gen = getattr(req.context, "generation", None) if req is not None else None
        generation = (gen if gen is not None else self.engine.generation()).name
        key = (generation, endpoint, q, params)
        return self.cache.get_or_compute(
            key, compute, lambda: self.engine.generation().name == generation
        )


def _timed(result: dict, started: float, after: str) -> dict:
    """``result`` with ``took_ms`` inserted after the key ``after`` (the cached dict is not touched)."""
    took = round((time.perf_counter() - started) * 1000, 2)
    out: dict = {}
    for key, value in result.items():
        out[key] = value
        if key == after:
            out["took_ms"] = took
    out.setdefault("took_ms", took)
    return out


class SearchResource(_Cached):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = time.perf_counter()
        q = query_param(req, self.config)
        limit = int_param(req, "limit", 10, 1, 50)
        offset = int_param(req, "offset", 0, 0, 1000)
        article = _single(req, "article") or None
        result = self.cached(
            "search", q, (limit, offset, article),
            lambda: self.engine.search(q, limit=limit, offset=offset, article=article), req,
        )
        metrics.observe_search(result, offset)
        if self.analytics is not None:
            self.analytics.record_search(q, result, offset)
        resp.media = _timed(result, started, after="total")


    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A whole message from another service: ``{"text", "limit", "offset"}``, not cached."""
        started = time.perf_counter()
        body = text_body(req, self.config, {"limit": (10, 1, 50), "offset": (0, 0, 1000)})
        result = self.engine.search(body["text"], limit=body["limit"], offset=body["offset"])
        resp.media = _timed(result, started, after="total")


class AnswerResource(_Cached):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = query_param(req, self.config)
        resp.media = self.cached("answer", q, (), lambda: self.engine.answer(q), req)
        metrics.observe_answer(resp.media)
        if self.analytics is not None:
            self.analytics.record_answer(q, resp.media)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A whole message: ``{"text", "limit"}``, ``limit`` capping the alternatives."""
        body = text_body(req, self.config, {"limit": (3, 0, 10)})
        resp.media = self.engine.answer(body["text"], alternatives=body["limit"])


class SuggestResource(_Cached):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = query_param(req, self.config, keep_trailing_space=True)
        limit = int_param(req, "limit", 8, 1, 20)
        resp.media = self.cached("suggest", q, (limit,), lambda: self.engine.suggest(q, limit=limit), req)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_body(req: falcon.Request, config: Config, ints: dict[str, tuple[int, int, int]]) -> dict:
    """A JSON body ``{"text": …}`` plus the named integer fields (default, low, high).

    The text is normalised like ``q`` and may hold up to ``FAQ_MAX_TEXT_CHARS`` characters
    (413 beyond); malformed JSON, unknown fields or out-of-range values are 400.
    """
    raw = read_body(req)
    example = '{"text": "…the whole message…", "limit": 5}'
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[… nested thousands deep
        raise falcon.HTTPBadRequest(description=f"The body must be a JSON object such as {example}.") from None
    if not isinstance(data, dict):
        raise falcon.HTTPBadRequest(description=f"The body must be a JSON object such as {example}.")
    unknown = sorted(set(data) - {"text", *ints})
    if unknown:
        allowed = ", ".join(f'"{k}"' for k in ("text", *ints))
        raise falcon.HTTPBadRequest(description=f"Unknown field(s) in the body: {', '.join(unknown)}; "
                                                f"accepted: {allowed}.")
    text = data.get("text")
    if not isinstance(text, str):
        raise falcon.HTTPBadRequest(description='The "text" field is required: a string, the message to answer.')
    text = normalise_query(text)
    if not _encodable(text):
        raise falcon.HTTPBadRequest(description='The "text" field holds a lone surrogate (\\ud800–\\udfff): not valid Unicode text.')
    if not text:
        raise falcon.HTTPBadRequest(description='The "text" field must not be empty or only whitespace or control characters.')
    cap = config.max_text_chars
    if len(text) > cap:
        raise falcon.HTTPContentTooLarge(
            description=f'The "text" field is too long: {len(text)} characters, at most {cap} are accepted.'
        )
    out = {"text": text}
    for name, (default, low, high) in ints.items():
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise falcon.HTTPBadRequest(description=f'The "{name}" field must be an integer from {low} to {high}.')
        out[name] = value
    return out


# --------------------------------------------------------------------------- articles


class ArticlesResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        resp.media = self.engine.articles()


class ArticleResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp, slug: str) -> None:
        resp.media = self.engine.article(slug)


class RelatedResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp, slug: str) -> None:
        limit = int_param(req, "limit", 10, 1, 50)
        resp.media = self.engine.related(slug, limit=limit)


class FaqResource:
    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp, slug: str, anchor: str) -> None:
        resp.media = self.engine.faq(slug, anchor)


# --------------------------------------------------------------------------- health


class HealthResource:
    http_cache = False

    def on_get(self, req, resp) -> None:
        resp.media = {"status": "ok"}


class ReadyResource:
    http_cache = False

    def __init__(self, engine: Engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        status = self.engine.status()  # NoIndex → 503
        problem = self.engine.generations.problem
        if problem:  # still serving, but not the newest published generation
            resp.media = {"status": "degraded", **status, "problem": problem}
        else:
            resp.media = {"status": "ready", **status}


# --------------------------------------------------------------------------- reindex


class _ReindexAuth:
    """Bearer-token check shared by the reindex resources; no token configured → 404."""

    http_cache = False

    def __init__(self, config: Config, jobs: JobStore):
        self.token = config.reindex_token
        self.jobs = jobs
        self.throttle = throttle_for(jobs)

    def authorize(self, req: falcon.Request) -> None:
        if not self.token:
            raise falcon.HTTPNotFound(description="Reindexing over HTTP is off (FAQ_REINDEX_TOKEN is not set).")
        client = truncate_address(client_address(req))
        wait = self.throttle.retry_after(client)
        if wait is not None:
            raise falcon.HTTPTooManyRequests(
                description="Too many failed reindex authentications from your network; try again later.",
                retry_after=wait,
            )
        header = req.get_header("Authorization") or ""
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), self.token.encode("utf-8")
        )
        if not ok:
            self.throttle.failed(client)
            raise falcon.HTTPUnauthorized(
                description="A valid reindex token is required: send 'Authorization: Bearer <token>'.",
                challenges=["Bearer"],
            )


class ReindexResource(_ReindexAuth):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.authorize(req)
        mode = _reindex_mode(req)
        try:
            job = self.jobs.start(mode, getattr(req.context, "request_id", None))
        except JobConflict as exc:
            if exc.job_id:
                description = f"Reindex job {exc.job_id} is still running; poll GET /v1/reindex/{exc.job_id}."
            else:
                description = "Another build holds the index lock (started from the command line or another service)."
            raise falcon.HTTPConflict(description=description) from None
        except OSError as exc:
            raise falcon.HTTPServiceUnavailable(
                description=f"The index folder cannot be written ({exc.strerror or exc}); ask an operator.",
                retry_after=60,
            ) from None
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/reindex/{job['job']}"
        resp.media = job


class ReindexJobResource(_ReindexAuth):
    def on_get(self, req: falcon.Request, resp: falcon.Response, job: str) -> None:
        self.authorize(req)
        found = self.jobs.get(job) if re.fullmatch(r"[0-9a-f]{32}", job) else None
        if found is None:
            raise falcon.HTTPNotFound(description=f"No reindex job {job!r}.")
        resp.media = found


def read_body(req: falcon.Request, cap: int = MAX_BODY_BYTES) -> bytes:
    """The request body, at most ``cap`` bytes, whatever its framing (a length, or chunks).

    Falcon's bounded stream reads nothing when there is no Content-Length, so a chunked body
    used to be ignored; a chunked body is read from the server's terminated input instead.
    """
    length = req.content_length
    if length is not None:
        if length > cap:
            raise falcon.HTTPContentTooLarge(
                description=f"The request body is {length} bytes; at most {cap} are accepted."
            )
        body = req.bounded_stream.read(cap + 1)
    elif req.get_header("Transfer-Encoding"):
        if not req.env.get("wsgi.input_terminated"):
            raise falcon.HTTPLengthRequired(description="A Content-Length is required for this request body.")
        body = req.stream.read(cap + 1)
    else:
        body = b""
    if len(body) > cap:
        raise falcon.HTTPContentTooLarge(description=f"The request body is over {cap} bytes.")
    return body


def _reindex_mode(req: falcon.Request) -> str:
    body = read_body(req)
    if not body.strip():
        return "update"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise falcon.HTTPBadRequest(
            description='The body must be a JSON object such as {"mode": "update"}.'
        ) from None
    if not isinstance(data, dict):
        raise falcon.HTTPBadRequest(description='The body must be a JSON object such as {"mode": "update"}.')
    unknown = sorted(set(data) - {"mode"})
    if unknown:
        raise falcon.HTTPBadRequest(description=f"Unknown field(s) in the body: {', '.join(unknown)}; "
                                                "only \"mode\" is accepted.")
    mode = data.get("mode", "update")
    if mode not in ("update", "full"):
        raise falcon.HTTPBadRequest(description='The mode field must be "update" or "full".')
    return mode
