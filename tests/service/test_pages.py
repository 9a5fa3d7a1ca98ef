"""The HTML side of the service: the demo page, the no-JavaScript results page and the
widget's static files (their behaviour in a browser is in tests/browser)."""

from __future__ import annotations

import gzip
import re

import pytest
from falcon import testing

from service.app import create_app
from service.pages import MAX_OFFSET, load_assets, snippet_parts

SCRIPT_CSP = re.compile(r"script-src ([^;]*)")


def page_headers_are_safe(res) -> None:
    csp = res.headers["content-security-policy"]
    assert "unsafe-inline" not in SCRIPT_CSP.search(csp).group(1)
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert res.headers["referrer-policy"] == "no-referrer"
    assert res.headers["content-type"].startswith("text/html")


def test_snippet_parts_unescape_text_once_and_keep_only_the_marks():
    parts = snippet_parts("a &lt;img src=x&gt; <mark>cop</mark>ing &amp;amp; <b>")
    assert parts == [(False, "a <img src=x> "), (True, "cop"), (False, "ing &amp; <b>")]
    assert snippet_parts("") == []


def test_demo_page_embeds_the_versioned_widget_and_lists_the_articles(client):
    res = client.simulate_get("/")
    assert res.status_code == 200
    page_headers_are_safe(res)
    assets = load_assets()
    assert f'/widget/search-box.js?v={assets["search-box.js"].version}' in res.text
    assert 'data-faq-search' in res.text and 'action="/search"' in res.text and 'method="get"' in res.text
    assert "Goals of Psychotherapy" in res.text
    assert "<script>" not in res.text  # no inline script at all


def test_results_page_renders_the_same_results_as_the_api_escaped(client):
    api = client.simulate_get("/v1/search", params={"q": "coping skills"}).json
    res = client.simulate_get("/search", params={"q": "coping skills"})
    assert res.status_code == 200
    page_headers_are_safe(res)
    assert res.headers["cache-control"].startswith("private")
    assert '<meta name="robots" content="noindex">' in res.text
    listed = res.text.split('<ol class="faq-search__list"', 1)[1]
    hrefs = re.findall(r'<h2 class="faq-search__question"><a href="([^"]+)"', listed)
    assert hrefs == [r["url"] for r in api["results"]]
    assert "<mark>coping</mark>" in res.text.lower()
    best = client.simulate_get("/search", params={"q": "how long does psychoanalysis take"}).text
    assert "Best answer" in best.split('<ol class="faq-search__list"', 1)[0]


def test_results_page_escapes_a_hostile_query(client):
    res = client.simulate_get("/search", params={"q": '<img src=x onerror="alert(1)"> therapy'})
    assert res.status_code == 200
    assert "<img src=x" not in res.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; therapy" in res.text


def test_results_page_pages_with_offset(client):
    first = client.simulate_get("/search", params={"q": "therapy"})
    assert 'rel="next" href="/search?q=therapy&amp;offset=10"' in first.text
    second = client.simulate_get("/search", params={"q": "therapy", "offset": "10"})
    assert second.status_code == 200
    assert '<ol class="faq-search__list" start="11">' in second.text
    assert 'rel="prev" href="/search?q=therapy&amp;offset=0"' in second.text


def test_empty_or_absent_query_shows_the_form_without_an_error(client):
    for params in ({}, {"q": ""}, {"q": "   "}):
        res = client.simulate_get("/search", params=params)
        assert res.status_code == 200
        assert 'name="q"' in res.text and "No results" not in res.text


def test_no_results_has_a_clear_empty_state(client):
    res = client.simulate_get("/search", params={"q": "xylophone zebra"})
    assert res.status_code == 200 and "No results for “xylophone zebra”" in res.text


@pytest.mark.parametrize("offset", ["-1", "abc", "1.5", str(MAX_OFFSET + 1)])
def test_a_bad_offset_is_a_friendly_html_400(client, offset):
    res = client.simulate_get("/search", params={"q": "therapy", "offset": offset})
    assert res.status_code == 400
    page_headers_are_safe(res)
    assert "<h1>That page of results does not exist</h1>" in res.text
    assert 'value="therapy"' in res.text  # the form keeps the query


def test_a_query_over_the_limit_is_a_friendly_html_400(client):
    res = client.simulate_get("/search", params={"q": "a" * 300})
    assert res.status_code == 400 and "That search is too long" in res.text


def test_pages_without_an_index_say_so_in_html(make_client, tmp_path):
    client = make_client(index_dir=tmp_path / "none")
    res = client.simulate_get("/search", params={"q": "therapy"})
    assert res.status_code == 503 and res.headers["content-type"].startswith("text/html")
    assert client.simulate_get("/").status_code == 200


def test_widget_files_are_small_cacheable_and_compressed(client):
    assets = load_assets()
    js, css = assets["search-box.js"], assets["search-box.css"]
    assert len(js.gzipped) + len(css.gzipped) <= 6 * 1024
    res = client.simulate_get("/widget/search-box.js", params={"v": js.version})
    assert res.status_code == 200 and res.content == js.body
    assert res.headers["content-type"] == "text/javascript; charset=utf-8"
    assert res.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert res.headers["etag"] == js.etag  # the content's own, not the index generation's
    assert res.headers["cross-origin-resource-policy"] == "cross-origin"
    bare = client.simulate_get("/widget/search-box.js")
    assert bare.headers["cache-control"] == "public, max-age=3600"
    zipped = client.simulate_get("/widget/search-box.css", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip" and gzip.decompress(zipped.content) == css.body
    again = client.simulate_get("/widget/search-box.css", headers={"If-None-Match": zipped.headers["etag"]})
    assert again.status_code == 304


def test_an_unknown_widget_file_is_404(client):
    assert client.simulate_get("/widget/nope.js").status_code == 404
    assert client.simulate_get("/widget/..%2Fapp.py").status_code == 404


def test_pages_never_log_the_query(client, caplog):
    with caplog.at_level("INFO", logger="faq"):
        client.simulate_get("/search", params={"q": "zanzibar secret worry"})
    assert "zanzibar" not in caplog.text


def test_a_search_from_the_results_page_counts_for_editors_like_an_api_search(site):
    client = testing.TestClient(create_app(site.config()))
    client.app.analytics.min_count = 1
    for _ in range(2):
        client.simulate_get("/search", params={"q": "coping skills"})
    client.app.analytics.flush()
    report = client.app.analytics.report(client.app.engine, days=1)
    assert {"query": "coping skills", "count": 2} in [
        {k: row[k] for k in ("query", "count")} for row in report["top_queries"]]
