"""The real server: gunicorn with gunicorn.conf.py, two workers, loopback only, bounded time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import REPO, Site

START_TIMEOUT = 30
OLD_HEADING, NEW_HEADING = ">What Is Psychotherapy?</h2>", ">What Is Zanzibar Psychotherapy?</h2>"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, dict(res.headers), json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


class Server:
    def __init__(self, site: Site, tmp_path: Path, **extra_env: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout = tmp_path / "gunicorn.out"
        self.stderr = tmp_path / "gunicorn.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAQ_")}
        env.update({
            "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2", "FAQ_THREADS": "1",
            "FAQ_INDEX_DIR": str(site.index), "FAQ_CORPUS_DIR": str(site.corpus), "FAQ_LOG_LEVEL": "info",
            **extra_env,
        })
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "service.app:create_app()"],
                cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )

    def logs(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]

    def access_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.read_text().splitlines() if line.startswith("{")]

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                status, _, body = get(self.base + "/readyz", timeout=2)
                if status == 200:
                    return body
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        pytest.fail(f"gunicorn was not ready within {START_TIMEOUT} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def server(tmp_path):
    site = Site(tmp_path)
    site.build()
    srv = Server(site, tmp_path)
    srv.site = site
    try:
        yield srv
    finally:
        srv.stop()


def test_gunicorn_serves_and_switches_to_a_new_generation_in_every_worker(server):
    ready = server.wait_ready()
    assert ready["status"] == "ready" and ready["articles"] == 4

    status, headers, body = get(server.base + "/v1/search?q=what+is+psychotherapy")
    assert status == 200
    assert body["results"][0]["id"] == "goals-of-psychotherapy#what-is-psychotherapy"
    assert body["results"][0]["url"] == "/goals-of-psychotherapy/#what-is-psychotherapy"
    assert headers["x-content-type-options"] == "nosniff" and headers["etag"].startswith('W/"')
    assert "Server" in headers  # gunicorn answered, not a test client

    search = server.base + "/v1/search?q=zanzibar+psychotherapy"
    with ThreadPoolExecutor(4) as pool:  # warm both workers' caches with the old answer
        before = list(pool.map(lambda _: get(search)[2]["results"][0]["question"], range(8)))
    assert "What Is Zanzibar Psychotherapy?" not in before

    server.site.edit("goals-of-psychotherapy", OLD_HEADING, NEW_HEADING)
    new_generation = server.site.build()
    seen_lines = len(server.access_lines())

    pids: set[int] = set()
    for _ in range(5):  # concurrent requests reach both sync workers; retry a few rounds if not
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: get(search), range(16)))
        for status, _, body in answers:
            assert status == 200
            assert body["results"][0]["question"] == "What Is Zanzibar Psychotherapy?"
        with ThreadPoolExecutor(4) as pool:
            readies = list(pool.map(lambda _: get(server.base + "/readyz")[2], range(8)))
        assert {r["generation"] for r in readies} == {new_generation}
        time.sleep(0.2)  # let the workers' log lines reach the file
        pids = {line["pid"] for line in server.access_lines()[seen_lines:]}
        if len(pids) >= 2:
            break
    assert len(pids) == 2, f"requests were served by {pids}"

    lines = server.access_lines()
    assert lines and all(set(line) >= {"method", "path", "status", "duration_ms", "client"} for line in lines)
    assert all(line["client"] == "127.0.0.0" for line in lines)
    assert not any("zanzibar" in json.dumps(line).lower() for line in lines)
    assert "GET /v1/search" not in server.logs()  # gunicorn's own access log is off

    server.stop()
    assert server.proc.returncode == 0, server.logs()


def raw_request(port: int, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send ``data`` as is over a loopback socket; the status code and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            part = sock.recv(65536)
            if not part:
                break
            chunks.append(part)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def chunked_post(port: int, body: bytes, token: str | None = "t0ken") -> tuple[int, bytes]:
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    head = (b"POST /v1/reindex HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + auth
            + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    return raw_request(port, head + chunked(body))


@pytest.fixture
def reindex_server(tmp_path):
    site = Site(tmp_path)
    site.build()
    srv = Server(site, tmp_path, FAQ_REINDEX_TOKEN="t0ken")
    srv.site = site
    try:
        yield srv
    finally:
        srv.stop()


def test_chunked_reindex_bodies_are_read_and_checked_like_any_other(reindex_server):
    srv = reindex_server
    srv.wait_ready()
    status, body = chunked_post(srv.port, b'{"mode": "bogus"}')
    assert status == 400, body
    assert b"mode" in body
    status, body = chunked_post(srv.port, b'{"mode": ' + b" " * 70_000 + b'"full"}')
    assert status == 413, body
    status, body = chunked_post(srv.port, b"not json")
    assert status == 400, body
    status, body = chunked_post(srv.port, b'{"mode": "full"}')
    assert status == 202, body
    assert json.loads(body)["mode"] == "full"


def test_a_section_whose_anchor_holds_a_slash_can_be_fetched(tmp_path):
    site = Site(tmp_path)
    site.edit("goals-of-psychotherapy", 'id="what-is-psychotherapy"', 'id="part-1/2"')
    site.build()
    srv = Server(site, tmp_path)
    try:
        srv.wait_ready()
        status, _, body = get(srv.base + "/v1/search?q=what+is+psychotherapy")
        assert body["results"][0]["id"] == "goals-of-psychotherapy#part-1/2"
        status, _, body = get(srv.base + "/v1/faqs/goals-of-psychotherapy/part-1%2F2")
        assert status == 200, body
        assert body["id"] == "goals-of-psychotherapy#part-1/2"
    finally:
        srv.stop()
