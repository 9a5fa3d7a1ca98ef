"""Serve the OpenAPI document at ``GET /openapi.json`` with a ``servers`` entry naming this deployment.

That is this module's one job. ``servers`` is ``[{"url": FAQ_SITE_URL}]`` when that setting
holds a valid http(s) URL, else the scheme, host and mount point the request was sent to,
so "try it" buttons and generated clients call the server the document came from.

The request's host is client-supplied text. It only ever goes into this JSON document, and
only after a strict check (a DNS name, an IPv4 address or a bracketed IPv6 address, an
optional port, a plain path); anything else gets the relative server URL ``/``, which means
"the host this document was fetched from". ``X-Forwarded-*``/``Forwarded`` headers are used
only with ``trust_forwarded=True`` (a proxy that overwrites them sits in front); by default
the scheme is the WSGI ``url_scheme`` (gunicorn sets it from ``X-Forwarded-Proto`` only for
``forwarded_allow_ips``) and the host is the ``Host`` header.

Usage (``service/app.py``)::

    from service.openapi import OpenApiResource, load_document
    app.add_route("/openapi.json", OpenApiResource(load_document(), config))
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import falcon

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")
RELATIVE_SERVER = "/"
MAX_URL_CHARS = 300
_CACHED_URLS = 64

log = logging.getLogger("faq.service")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_PORT = re.compile(r"[0-9]{1,5}")
_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)*")


@functools.cache
def _document_bytes() -> bytes:
    return DOCUMENT_PATH.read_bytes()


def load_document() -> dict:
    """The packaged ``openapi.json`` (read from disk once per process), as a fresh dict."""
    return json.loads(_document_bytes())


def _valid_host(netloc: str) -> str | None:
    """``host[:port]`` lower-cased when it is a DNS name, IPv4 or [IPv6] with a valid port, else None."""
    if netloc.startswith("["):
        end = netloc.find("]")
        literal, rest = netloc[1:end], netloc[end + 1:]
        if end < 0 or not _IPV6.fullmatch(literal) or (rest and not rest.startswith(":")):
            return None
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return None
        hostname, port = f"[{literal.lower()}]", rest[1:] if rest else None
    else:
        hostname, sep, port = netloc.partition(":")
        port = port if sep else None
        if _IPV4.fullmatch(hostname):
            try:
                ipaddress.IPv4Address(hostname)
            except ValueError:
                return None
        elif len(hostname) > 253 or not _DNS_NAME.fullmatch(hostname):
            return None
        hostname = hostname.lower()
    if port is None:
        return hostname
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        return None
    return f"{hostname}:{int(port)}"


def _base_url(scheme: str, netloc: str, path: str) -> str | None:
    scheme = (scheme or "").lower()
    if scheme not in ("http", "https") or not netloc or not netloc.isascii():
        return None
    host = _valid_host(netloc)
    path = (path or "").rstrip("/")
    if host is None or not _PATH.fullmatch(path) or len(path) > MAX_URL_CHARS:
        return None
    return f"{scheme}://{host}{path}"


def server_url(url: str | None) -> str | None:
    """``url`` normalised (``scheme://host[:port][/path]``, no trailing slash) if it is a plain
    http(s) base URL that passes the strict host check; ``None`` otherwise."""
    if not url or len(url) > MAX_URL_CHARS or not url.isascii() or any(c.isspace() for c in url):
        return None
    if url.endswith(("?", "#")):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.query or parts.fragment:
        return None
    return _base_url(parts.scheme, parts.netloc, parts.path)


class OpenApiResource:
    """``GET /openapi.json``: ``document`` with ``servers`` set for the request.

    ``config.site_url`` (FAQ_SITE_URL), when it is a valid http(s) URL, is the server for
    every request; otherwise it is the request's own base URL: ``req.scheme``, ``req.netloc``
    and ``req.root_path`` (the parts of ``req.prefix``), or with ``trust_forwarded`` the parts of
    ``req.forwarded_prefix``; each part is checked on its own, and ``/`` replaces an odd one.
    """

    def __init__(self, document: dict, config: Any, *, trust_forwarded: bool = False):
        self.document = copy.deepcopy(document)
        self.trust_forwarded = trust_forwarded
        configured = str(getattr(config, "site_url", "") or "").strip()
        self.site_url = server_url(configured)
        if configured and self.site_url is None:
            log.warning("FAQ_SITE_URL is not a plain http(s) URL; /openapi.json names the request's host instead")
        self._rendered: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def server_for(self, req: falcon.Request) -> str:
        if self.site_url:
            return self.site_url
        try:
            if self.trust_forwarded:
                scheme, netloc = req.forwarded_scheme, req.forwarded_host
            else:
                scheme, netloc = req.scheme, req.netloc
            root = req.root_path or ""
        except Exception:  # a malformed Host/Forwarded header: not worth a 500
            return RELATIVE_SERVER
        return _base_url(scheme, netloc, root) or RELATIVE_SERVER

    def render(self, url: str) -> bytes:
        """The document as JSON bytes with ``servers: [{"url": url}]``; a small LRU per URL."""
        with self._lock:
            body = self._rendered.get(url)
            if body is not None:
                self._rendered.move_to_end(url)
                return body
        out: dict = {}
        for key, value in self.document.items():
            if key == "servers":
                continue
            out[key] = value
            if key == "info":
                out["servers"] = [{"url": url}]
        out.setdefault("servers", [{"url": url}])
        body = json.dumps(out, ensure_ascii=False, indent=2).encode("utf-8")
        with self._lock:
            self._rendered[url] = body
            while len(self._rendered) > _CACHED_URLS:
                self._rendered.popitem(last=False)
        return body

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.render(self.server_for(req))
        if not self.site_url and self.trust_forwarded:
            resp.append_header("Vary", "Forwarded, X-Forwarded-Host, X-Forwarded-Proto")
