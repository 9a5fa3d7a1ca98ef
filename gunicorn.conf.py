"""Gunicorn settings: ``gunicorn -c gunicorn.conf.py 'service.app:create_app()'``.

Every value comes from the settings table (``indexer/settings.py``) through ``load_config``,
so the environment variables documented in the README are the only knobs:
``HOST``/``PORT`` (bind), ``WEB_CONCURRENCY`` (workers), ``FAQ_THREADS`` (threads per worker),
``FAQ_LOG_LEVEL``.

Client addresses never reach a log in full: the app's access log truncates them
(``service.middleware.truncate_address``), and ``ClientAddressFilter`` below applies the same
truncation to gunicorn's own error log ("Invalid request from ip=1.2.3.4: ...").
"""

import ipaddress
import logging
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `indexer` and `service` importable

from gunicorn.glogging import Logger  # noqa: E402

from indexer.settings import load_config  # noqa: E402
from service.middleware import truncate_address  # noqa: E402

_config = load_config()

wsgi_app = "service.app:create_app()"  # the default when no app is named on the command line

_host = str(_config.host)
bind = [f"[{_host}]:{_config.port}" if ":" in _host and not _host.startswith("[") else f"{_host}:{_config.port}"]

workers = max(int(_config.workers), 1)
# Worker class and count, chosen by measurement. A search is ~4 ms of pure-Python CPU and
# the GIL lets one thread of a process run at a time, so throughput comes from processes,
# one per core; threads or extra processes only add switching and memory (each worker holds
# its own ~220 MB copy of the MedQuAD-scale generation). Measured on the 2-core machine,
# MedQuAD index, response cache off, wrk -t1 -c8 -d6s with rotating queries (requests/s):
#
#   workers × threads   /healthz   /v1/search   /v1/suggest
#   2 × 1 (sync)          4,308        372         2,306
#   2 × 4 (gthread)       5,019        330         2,026
#   4 × 1 (sync)          4,834        255         1,987
#
# So: sync workers, WEB_CONCURRENCY = cores (default 2). Sync workers need a buffering
# proxy (nginx) in front for slow clients; FAQ_THREADS > 1 switches gunicorn to gthread.
worker_class = "sync"
threads = max(int(_config.threads), 1)

# Each worker builds its own Engine in create_app(): nothing is shared across a fork.
preload_app = False

timeout = 30  # a worker silent this long is killed and replaced
graceful_timeout = 20  # time to finish in-flight requests on SIGTERM / reload
keepalive = 5  # seconds; used by threaded workers behind a proxy

# No periodic recycling: a new worker must load the generation again (seconds at MedQuAD
# scale, during which it answers nothing), and every per-worker cache is bounded.
max_requests = 0

# Request-size limits (gunicorn's defaults, stated): q is capped far lower by the app.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# The control socket (gunicornc) would default to a single path under $HOME shared by every
# instance on the machine; this service does not use it.
control_socket_disable = True

proc_name = "faq-search"

# Logging: gunicorn's own access log is off; the app writes one JSON line per request on
# the `faq.access` logger (no query strings, truncated client addresses) to stdout.
accesslog = None
errorlog = "-"
loglevel = str(_config.log_level).lower()


class QuietAccessLogger(Logger):
    """gunicorn's logger without its access log. With ``logconfig_dict`` set, gunicorn builds
    every request's access-log fields (a dict of the whole environ and all headers, a
    strftime) before its logger, set to CRITICAL below, drops the line: up to 0.1 ms per
    request on the 2-core machine, a sixth of the worker time of a /healthz request."""

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp, req, environ, request_time) -> None:
        return None


logger_class = QuietAccessLogger

# Metrics: every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's
# multiprocess mode) and /metrics adds them up. The folder is set up in the master before any
# worker forks (the operator's, emptied; else a private temporary one, removed at exit); a dead
# worker's live gauges are dropped, its counters stay in the sums. Search analytics batches are
# written when a worker exits. Hooks, not module code: tests import this file.
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_multiproc_dir: list[str] = []


def on_starting(server) -> None:
    path = os.environ.get(_MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="faq-metrics-")
        _own_multiproc_dir.append(path)
        os.environ[_MULTIPROC_ENV] = path


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess  # not service.metrics: its metrics belong in workers

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    from service.analytics import flush_all

    flush_all()


def on_exit(server) -> None:
    for path in _own_multiproc_dir:
        shutil.rmtree(path, ignore_errors=True)


_IPV4 = r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?\d)"
_IPV6 = r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?:%[\w.-]+)?(?![\w.])"
_ADDRESS = re.compile(f"{_IPV6}|{_IPV4}")


def _truncated(match: re.Match) -> str:
    text = match.group(0)
    # "ip=::1: Invalid request" matches with the message's own colon: try without it.
    for candidate in (text, text.rstrip(":")):
        try:
            ipaddress.ip_address(candidate.split("%", 1)[0])
        except ValueError:
            continue
        return truncate_address(candidate) + text[len(candidate):]
    return text  # not an address (a time such as 10:48:47, a version number...)


def truncate_addresses(text: str) -> str:
    """Every IPv4/IPv6 literal in ``text`` replaced by its network, as the access log shows it."""
    return _ADDRESS.sub(_truncated, text)


# "Invalid HTTP request line: 'GET /search?q=… HTTP/1.1'": a visitor's question quoted back.
_QUERY_STRING = re.compile(r"\?[^\s'\"]*")


def without_query_strings(text: str) -> str:
    """``text`` with every ``?query`` of a quoted URL or request line dropped, as the access
    log drops it."""
    return _QUERY_STRING.sub("?…", text)


class ClientAddressFilter(logging.Filter):
    """Rewrites a record's message (its format and arguments, and the text of an exception)
    so that every IP address in it is truncated like the access log's ``client``, and no
    query string survives in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        cleaned = without_query_strings(truncate_addresses(message))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = without_query_strings(truncate_addresses(record.exc_text))
        return True


_level = str(_config.log_level).upper()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _level, "handlers": ["stderr"], "filters": ["client_addresses"], "propagate": False,
                           "qualname": "gunicorn.error"},
        # logconfig_dict would otherwise switch gunicorn's access log back on.
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
        "faq.access": {"level": _level, "handlers": ["access"], "propagate": False},
        "faq": {"level": _level, "handlers": ["stderr"], "propagate": False},
    },
    "handlers": {
        "access": {"class": "logging.StreamHandler", "formatter": "json_line", "stream": "ext://sys.stdout"},
        # The filter on the handler too: it covers the `faq` loggers and anything that propagates to root.
        "stderr": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr",
                   "filters": ["client_addresses"]},
    },
    # A callable (not a dotted path) for "()": this file is not an importable module.
    "filters": {"client_addresses": {"()": ClientAddressFilter}},
    "formatters": {
        "json_line": {"format": "%(message)s", "class": "logging.Formatter"},
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
            "class": "logging.Formatter",
        },
    },
}
