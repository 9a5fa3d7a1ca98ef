"""gunicorn.conf.py's logger: gunicorn's own access log stays off without gunicorn building
every request's access-log fields first, and its error log is the usual one."""

from __future__ import annotations

import datetime
import logging
import runpy

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from .conftest import REPO


@pytest.fixture(scope="module")
def conf() -> dict:
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


@pytest.fixture(autouse=True)
def logging_restored():
    """gunicorn's Logger applies the logconfig to this process: put every logger it touches
    back as it was (``faq.access`` stops propagating under it, which caplog relies on)."""
    names = ["", "gunicorn.error", "gunicorn.access", "faq", "faq.access", *logging.root.manager.loggerDict]
    saved = {}
    for name in names:
        lg = logging.getLogger(name)
        saved[name] = (lg.level, list(lg.handlers), list(lg.filters), lg.propagate, lg.disabled)
    yield
    for name, (level, handlers, filters, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.filters[:] = filters
        lg.propagate, lg.disabled = propagate, disabled


def gunicorn_config(conf: dict) -> Config:
    cfg = Config()
    for name in ("logger_class", "logconfig_dict", "accesslog", "loglevel"):
        cfg.set(name, conf[name])
    return cfg


class Fake:
    status = "200 OK"
    sent = 12
    headers = [("Content-Type", "application/json")]


def access(logger: Logger) -> None:
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/v1/search?q=private+question", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1"}
    logger.access(Fake(), Fake(), environ, datetime.timedelta(milliseconds=3))


def test_the_configured_logger_builds_no_access_log_fields(conf, monkeypatch):
    cfg = gunicorn_config(conf)
    logger = cfg.logger_class(cfg)
    assert isinstance(logger, Logger) and not logger.access_log_enabled

    def atoms(*args):
        raise AssertionError("access-log fields were built")

    monkeypatch.setattr(logger, "atoms", atoms)
    access(logger)


def test_gunicorns_default_logger_under_this_logconfig_would_build_them(conf, monkeypatch):
    """What the configured logger saves: the default one builds each request's fields, then
    drops the line (gunicorn.access is at CRITICAL)."""
    cfg = gunicorn_config(conf)
    cfg.set("logger_class", "gunicorn.glogging.Logger")
    logger = cfg.logger_class(cfg)
    built = []
    monkeypatch.setattr(logger, "atoms", lambda *args: built.append(args) or {})
    access(logger)
    assert built and logging.getLogger("gunicorn.access").getEffectiveLevel() == logging.CRITICAL


def test_the_configured_logger_still_writes_errors(conf, capsys):
    cfg = gunicorn_config(conf)
    logger = cfg.logger_class(cfg)
    logger.error("Invalid request from ip=%s: %s", "198.51.100.23", "bad request line")
    err = capsys.readouterr().err
    assert "Invalid request from ip=198.51.100.0: bad request line" in err
