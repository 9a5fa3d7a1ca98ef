"""service/openapi.py: the served document's ``servers`` follows FAQ_SITE_URL or the request, safely."""

from __future__ import annotations

import json
from types import SimpleNamespace

import falcon
import pytest
from falcon import testing

from indexer.settings import load_config
from service import openapi
from service.openapi import OpenApiResource, load_document, server_url

DOC = json.loads(openapi.DOCUMENT_PATH.read_text(encoding="utf-8"))


def make_client(site_url: str = "", **kwargs) -> testing.TestClient:
    app = falcon.App()
    app.add_route("/openapi.json", OpenApiResource(load_document(), load_config(env={}, site_url=site_url), **kwargs))
    return testing.TestClient(app)


def servers(res) -> list[dict]:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"].startswith("application/json")
    return res.json["servers"]


def test_load_document_is_the_packaged_file_read_once():
    openapi._document_bytes.cache_clear()
    first = load_document()
    second = load_document()
    assert first == second == DOC
    assert first is not second  # callers may change their copy
    info = openapi._document_bytes.cache_info()
    assert (info.misses, info.hits) == (1, 1)


def test_the_document_is_unchanged_apart_from_servers():
    res = make_client().simulate_get("/openapi.json", host="api.example.org")
    body = res.json
    assert servers(res) == [{"url": "http://api.example.org"}]
    assert list(body)[:3] == ["openapi", "jsonSchemaDialect", "info"] and list(body)[3] == "servers"
    assert {k: v for k, v in body.items() if k != "servers"} == {k: v for k, v in DOC.items() if k != "servers"}


def test_site_url_wins_over_the_request():
    client = make_client(site_url="https://www.mypsychotherapy.example/")
    for host in ("api.example.org", "evil.example"):
        res = client.simulate_get("/openapi.json", host=host, headers={"X-Forwarded-Host": "evil.example"})
        assert servers(res) == [{"url": "https://www.mypsychotherapy.example"}]


@pytest.mark.parametrize(("protocol", "host", "root_path", "expected"), [
    ("http", "localhost", "", "http://localhost"),
    ("https", "API.Example.org", "", "https://api.example.org"),
    ("http", "127.0.0.1:8000", "", "http://127.0.0.1:8000"),
    ("http", "[::1]:8000", "", "http://[::1]:8000"),
    ("https", "search.example.org", "/faq", "https://search.example.org/faq"),
])
def test_server_is_the_request_base_url(protocol, host, root_path, expected):
    res = make_client().simulate_get("/openapi.json", protocol=protocol, headers={"Host": host}, root_path=root_path)
    assert servers(res) == [{"url": expected}]


ODD_HOSTS = [
    'evil.example"><script>alert(1)</script>',
    "evil.example/path",
    "user@evil.example",
    "evil.example:99999",
    "evil.example:",
    "evil.example:8o",
    "-evil.example",
    "evil..example",
    "ëvil.example",
    "[::1",
    "[::1]x",
    "[::g]",
    "[fe80::1%25eth0]",
    "999.1.1.1",
    "a" * 300 + ".example",
    "evil.example\r\nX-Injected: 1",
    "",
]


@pytest.mark.parametrize("host", ODD_HOSTS)
def test_an_odd_host_gets_the_relative_server_and_is_not_reflected(host):
    res = make_client().simulate_get("/openapi.json", headers={"Host": host})
    assert servers(res) == [{"url": "/"}]
    if host:
        assert host not in res.text
        assert all(host not in value for value in res.headers.values())


def test_forwarded_headers_are_ignored_unless_trusted():
    headers = {"X-Forwarded-Host": "public.example.org", "X-Forwarded-Proto": "https"}
    res = make_client().simulate_get("/openapi.json", host="10.0.0.5", headers=headers)
    assert servers(res) == [{"url": "http://10.0.0.5"}]
    assert "vary" not in res.headers

    trusting = make_client(trust_forwarded=True)
    res = trusting.simulate_get("/openapi.json", host="10.0.0.5", headers=headers)
    assert servers(res) == [{"url": "https://public.example.org"}]
    assert "X-Forwarded-Host" in res.headers["vary"]
    res = trusting.simulate_get("/openapi.json", host="10.0.0.5",
                                headers={"X-Forwarded-Host": "evil.example/<x>", "X-Forwarded-Proto": "https"})
    assert servers(res) == [{"url": "/"}]


@pytest.mark.parametrize("configured", ["javascript:alert(1)", "ftp://files.example", "https://", "not a url",
                                        "https://user:pw@site.example", "https://site.example/?q=1"])
def test_an_invalid_site_url_is_ignored(configured):
    # load_config refuses most of these; the resource does not rely on it.
    app = falcon.App()
    app.add_route("/openapi.json", OpenApiResource(load_document(), SimpleNamespace(site_url=configured)))
    res = testing.TestClient(app).simulate_get("/openapi.json", host="api.example.org")
    assert servers(res) == [{"url": "http://api.example.org"}]


@pytest.mark.parametrize(("url", "expected"), [
    ("https://site.example", "https://site.example"),
    ("HTTPS://Site.Example:443/", "https://site.example:443"),
    ("http://site.example/base/path/", "http://site.example/base/path"),
    ("https://site.example/a b", None),
    ("https://site.example#top", None),
    ("https://site.example/%2e%2e", None),
    ("//site.example", None),
    (None, None),
])
def test_server_url(url, expected):
    assert server_url(url) == expected


def test_rendered_documents_are_bounded():
    resource = OpenApiResource(load_document(), load_config(env={}))
    for i in range(200):
        resource.render(f"http://host{i}.example")
    assert len(resource._rendered) <= openapi._CACHED_URLS
