"""gunicorn's own error log truncates client addresses like the app's access log does."""

from __future__ import annotations

import runpy
import socket
import time

import pytest

from service.middleware import truncate_address

from .conftest import REPO, Site
from .test_gunicorn import Server


@pytest.fixture
def server(tmp_path):
    site = Site(tmp_path)
    site.build()
    srv = Server(site, tmp_path)
    try:
        yield srv
    finally:
        srv.stop()


def test_invalid_request_from_a_client_is_logged_with_its_network_only(server):
    server.wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"THIS IS NOT HTTP\x01\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]

    deadline = time.monotonic() + 10
    while "Invalid request from ip=" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.stderr.read_text(errors="replace")
    assert "Invalid request from ip=127.0.0.0:" in log, log[-3000:]
    assert "127.0.0.1" not in log, log[-3000:]
    server.stop()
    assert server.proc.returncode == 0, server.logs()


@pytest.fixture(scope="module")
def conf() -> dict:
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


@pytest.mark.parametrize("address", ["203.0.113.77", "2001:db8:abcd:12::5", "::ffff:198.51.100.23", "::1",
                                     "fe80::1%eth0"])
def test_every_address_form_is_truncated_as_the_access_log_does(conf, address):
    text = f"Invalid request from ip={address}: Invalid HTTP request line: 'x'"
    out = conf["truncate_addresses"](text)
    assert out == f"Invalid request from ip={truncate_address(address)}: Invalid HTTP request line: 'x'"


@pytest.mark.parametrize("text", ["[2026-01-12 10:48:47 +0000] [42] [INFO] Booting worker with pid: 42",
                                  "gunicorn 27.0.1", "abc:def: nothing"])
def test_text_without_addresses_is_unchanged(conf, text):
    assert conf["truncate_addresses"](text) == text


def test_the_filter_rewrites_arguments_and_exceptions(conf):
    import logging

    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, "from %s port %d",
                               ("192.0.2.200", 5555), None)
    try:
        raise OSError("peer 192.0.2.200 reset")
    except OSError:
        import sys
        record.exc_info = sys.exc_info()
    assert conf["ClientAddressFilter"]().filter(record)
    assert record.getMessage() == "from 192.0.2.0 port 5555"
    assert "192.0.2.200" not in record.exc_text and "peer 192.0.2.0 reset" in record.exc_text


def test_a_malformed_request_line_is_logged_without_its_query_string(server):
    server.wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /search?q=SECRETQ2\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(4096)
    deadline = time.monotonic() + 10
    while "Invalid" not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.stderr.read_text(errors="replace")
    assert "Invalid" in log, log[-3000:]
    assert "SECRETQ2" not in log, log[-3000:]


def test_query_strings_are_dropped_from_quoted_request_lines(conf):
    text = "Invalid HTTP request line: 'GET /search?q=my+secret HTTP/1.1'"
    assert conf["without_query_strings"](text) == "Invalid HTTP request line: 'GET /search?… HTTP/1.1'"
