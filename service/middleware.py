"""Cross-cutting HTTP behaviour: access log, request ids, security headers, CORS and HTTP caching.

Order matters. Falcon runs ``process_request`` in list order and ``process_response`` in
reverse, and (with independent middleware, Falcon's default) every ``process_response``
runs even when an earlier middleware short-circuited the request (a preflight, a 304). So
``AccessLog`` comes first: it starts the clock before anything else and logs the final
status after everything else.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import re
import time
from datetime import UTC, datetime

import falcon

from service.generations import NoIndex

access_log = logging.getLogger("faq.access")

ALLOWED_METHODS = ("GET", "POST")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
PREFLIGHT_MAX_AGE = 600


# --------------------------------------------------------------------------- access log


# A dotted-quad IPv4 address as ``ipaddress`` accepts it (ASCII digits, no leading zeros):
# what a socket peer or nginx's $remote_addr always is, so the usual case skips its parser.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def truncate_address(addr: str | None) -> str:
    """The client's network, never the client: IPv4 to its /24, IPv6 to its /48."""
    if not addr:
        return "-"
    if _PLAIN_IPV4.fullmatch(addr):
        return addr[:addr.rfind(".")] + ".0"
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return "-"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def client_address(req: falcon.Request) -> str | None:
    """The visitor's address: the peer's, or, when the peer is a proxy on this machine (the
    deployment's nginx, which sets ``X-Forwarded-For $remote_addr``), the address it forwards.
    Without this every visitor behind the proxy would share one address (one throttle bucket)."""
    peer = req.remote_addr
    forwarded = req.get_header("X-Forwarded-For")
    if forwarded and peer:
        try:
            if _is_loopback(peer):
                last = forwarded.split(",")[-1].strip()
                if not _PLAIN_IPV4.fullmatch(last):
                    ipaddress.ip_address(last.split("%", 1)[0])
                return last
        except ValueError:
            pass
    return peer


def _is_loopback(addr: str) -> bool:
    if _PLAIN_IPV4.fullmatch(addr):
        return addr.startswith("127.")
    return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback


class AccessLog:
    """One JSON line per request on ``faq.access``.

    Logged: time, method, path (without the query string), status, duration, the client's
    truncated network address and the worker pid. Not logged: the query string (visitors'
    questions are about their mental health), headers, bodies, or the full address.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        if not access_log.isEnabledFor(logging.INFO):
            return
        access_log.info(json.dumps({
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": req.method,
            "path": req.path[:300],
            "status": resp.status_code,
            "duration_ms": round(duration, 2),
            "client": truncate_address(client_address(req)),
            "pid": os.getpid(),
            "request_id": getattr(req.context, "request_id", None),
        }, ensure_ascii=True))  # one line whatever the path holds (U+0085, U+2028 break lines)


# --------------------------------------------------------------------------- request ids

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, what ``uuid.uuid4().hex`` gives, without
    building a ``UUID`` object (a sixth of the cost: this runs on every request)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    return b.hex()


class RequestId:
    """Each request gets an id, echoed in ``X-Request-Id`` and the access log line.

    A well-formed incoming ``X-Request-Id`` (8 to 128 letters, digits, ``.``, ``_``, ``:`` or
    ``-``: what proxies generate) is kept, so one id follows a request through the proxy's
    logs and ours; anything else is replaced by a random one, so a client cannot put
    arbitrary text into the logs. It goes right after ``AccessLog``.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID_HEADER)
        req.context.request_id = given if given and _REQUEST_ID.fullmatch(given) else new_request_id()

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            resp.set_header(REQUEST_ID_HEADER, request_id)


# --------------------------------------------------------------------------- security headers


class SecurityHeaders:
    def process_response(self, req, resp, resource, req_succeeded) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")


# --------------------------------------------------------------------------- CORS


class Cors:
    """CORS for an allowlist of origins (``FAQ_CORS_ORIGINS``); ``*`` in the list allows any.

    An allowed Origin is echoed back; any other origin gets no ``Access-Control-*`` header
    at all, so the browser refuses to hand the response to its page. ``Vary: Origin`` is on
    every response when an allowlist is set, so a shared cache never serves one origin's
    response to another.
    """

    def __init__(self, origins: tuple[str, ...] | list[str]):
        self.any = "*" in origins
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in origins if o.strip() and o != "*")
        self.enabled = bool(self.origins) or self.any

    def allowed(self, origin: str | None) -> bool:
        if not origin or not self.enabled:
            return False
        return self.any or origin.rstrip("/").lower() in self.origins

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method != "OPTIONS":
            return
        method = req.get_header("Access-Control-Request-Method")
        if method is None:
            return
        # A preflight: answered here for every path, without running a responder.
        resp.status = falcon.HTTP_204
        resp.complete = True
        req.context.cors_refused = True
        origin = req.get_header("Origin")
        if not self.allowed(origin) or method.upper() not in ALLOWED_METHODS:
            return
        requested = [h.strip().lower() for h in (req.get_header("Access-Control-Request-Headers") or "").split(",")]
        if any(h and h not in {a.lower() for a in ALLOWED_HEADERS} for h in requested):
            return
        req.context.cors_refused = False
        resp.set_header("Access-Control-Allow-Methods", ", ".join(ALLOWED_METHODS))
        resp.set_header("Access-Control-Allow-Headers", ", ".join(ALLOWED_HEADERS))
        resp.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        if not self.enabled:
            return
        resp.append_header("Vary", "Origin")
        origin = req.get_header("Origin")
        if self.allowed(origin) and not getattr(req.context, "cors_refused", False):
            resp.set_header("Access-Control-Allow-Origin", origin)


# --------------------------------------------------------------------------- HTTP caching


class HttpCache:
    """``Cache-Control`` and ``ETag`` for GET responses, ``If-None-Match`` → 304.

    The ETag is a hash of the served index generation, the API version (a hash of the
    OpenAPI document, the ranking and rendering code and the settings that change answers:
    ``service.app.api_version``), the path and the query string: the same request against the same
    generation gets the same answer, in every worker. Resources with ``own_cache_headers``
    (the widget's static files) set their own. It is weak (``W/``) because ``took_ms``
    differs from one response to the next. Resources with ``http_cache = False`` (reindex,
    health) get ``no-store``, as do all error responses and every non-GET response.

    Responses to a visitor's question (resources with ``carries_query = True``) are
    ``private``: a shared cache must not keep what someone asked a therapy practice's site.
    ``public_queries`` (``FAQ_CACHE_PUBLIC``) opts into ``public`` for a site's own CDN.
    """

    def __init__(self, engine, max_age: int, api_version: str, public_queries: bool = False):
        self.engine = engine
        self.max_age = max(int(max_age), 0)
        self.api_version = api_version
        self.public_queries = public_queries

    def etag(self, req: falcon.Request) -> str | None:
        try:
            generation = self.engine.generation()
        except NoIndex:
            return None
        # Resources (cache keys) and metrics reuse it rather than look the served generation
        # up again (a stat of the CURRENT pointer each time).
        req.context.generation = generation
        # The host too: /openapi.json names the server it was fetched from.
        key = "\0".join((generation.name, self.api_version, req.netloc, req.path, req.query_string or ""))
        return 'W/"' + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32] + '"'

    @staticmethod
    def cacheable(req: falcon.Request, resource) -> bool:
        return req.method == "GET" and resource is not None and getattr(resource, "http_cache", True)

    def _cache_control(self, resp: falcon.Response, resource) -> None:
        private = getattr(resource, "carries_query", False) and not self.public_queries
        resp.set_header("Cache-Control", f"{'private' if private else 'public'}, max-age={self.max_age}")

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if not self.cacheable(req, resource) or getattr(resource, "own_cache_headers", False):
            return
        req.context.etag = tag = self.etag(req)
        wanted = req.get_header("If-None-Match")
        if tag is None or not wanted:
            return
        candidates = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        if tag.removeprefix("W/") in candidates:  # weak comparison; "*" is not honoured
            resp.status = falcon.HTTP_304
            resp.set_header("ETag", tag)
            self._cache_control(resp, resource)
            resp.complete = True

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        if resp.status_code == 304:
            return
        if self.cacheable(req, resource) and req_succeeded and resp.status_code == 200:
            if getattr(resource, "own_cache_headers", False):  # static files: versioned URLs, own ETags
                return
            self._cache_control(resp, resource)
            tag = getattr(req.context, "etag", None)
            if tag:
                resp.set_header("ETag", tag)
        elif req.method != "OPTIONS":
            resp.set_header("Cache-Control", "no-store")
