"""The HTTP API through falcon.testing: contract, parameter bounds, errors, headers, logs."""

from __future__ import annotations

import json
import logging
import re

import pytest
from falcon import testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.middleware import truncate_address
from service.query import normalise_query

from .conftest import ALLOWED_ORIGIN, CORPUS, TOKEN, api_settings

# A heading edit that a test publishes; the new heading's rare word makes it rank first.
OLD_HEADING, NEW_HEADING = ">What Is Psychotherapy?</h2>", ">What Is Zanzibar Psychotherapy?</h2>"
RESULT_KEYS = {"id", "question", "answer", "snippet", "score", "url", "breadcrumbs", "article", "related"}


def first_result(client, q: str, **params) -> dict:
    res = client.simulate_get("/v1/search", params={"q": q, **params})
    assert res.status_code == 200, res.text
    return res.json["results"][0]


# --------------------------------------------------------------------------- search


def test_search_what_is_psychotherapy_returns_the_goals_section_first(client):
    res = client.simulate_get("/v1/search", query_string="q=what+is+psychotherapy")
    assert res.status_code == 200
    body = res.json
    assert set(body) >= {"query", "total", "took_ms", "did_you_mean", "results"}
    assert body["query"] == "what is psychotherapy"
    top = body["results"][0]
    assert top["id"] == "goals-of-psychotherapy#what-is-psychotherapy"
    assert top["url"] == "/goals-of-psychotherapy/#what-is-psychotherapy"
    assert set(top) == RESULT_KEYS
    assert top["article"] == {
        "slug": "goals-of-psychotherapy",
        "title": "Goals of Psychotherapy: What Therapy Can Help You Achieve",
        "url": "/goals-of-psychotherapy/",
    }
    assert body["total"] >= len(body["results"]) and body["took_ms"] >= 0
    assert res.headers["content-type"] == "application/json"


def test_response_bodies_are_utf8_json_with_non_ascii_written_as_itself(client):
    res = client.simulate_get("/v1/search", params={"q": "psychotherapy café …"})
    assert res.status_code == 200
    assert "café …".encode() in res.content and b"\\u2026" not in res.content
    assert json.loads(res.content.decode("utf-8")) == res.json


def test_search_snippet_is_escaped_text_with_only_matched_terms_marked(client):
    top = first_result(client, "what is psychotherapy")
    marked = re.findall(r"<mark>(.*?)</mark>", top["snippet"])
    assert marked and all(m.lower().startswith(("psychotherap", "therap", "talk")) for m in marked)
    assert "<" not in re.sub(r"</?mark>", "", top["snippet"])
    assert "<mark>" not in top["answer"]


def test_search_defaults_to_ten_results(client):
    assert len(client.simulate_get("/v1/search", params={"q": "therapy"}).json["results"]) == 10


def test_search_offset_pages_through_the_same_ranking(client):
    all10 = client.simulate_get("/v1/search", params={"q": "therapy", "limit": "10"}).json["results"]
    page2 = client.simulate_get("/v1/search", params={"q": "therapy", "limit": "5", "offset": "5"}).json["results"]
    assert [r["id"] for r in page2] == [r["id"] for r in all10[5:10]]


def test_search_article_filter_keeps_only_that_articles_sections(client):
    res = client.simulate_get("/v1/search", params={"q": "therapy", "article": "online-therapy-new-york-city"})
    assert res.status_code == 200
    assert res.json["results"] and all(r["article"]["slug"] == "online-therapy-new-york-city" for r in res.json["results"])


def test_search_unknown_article_slug_is_404(client):
    res = client.simulate_get("/v1/search", params={"q": "therapy", "article": "no-such-article"})
    assert res.status_code == 404
    assert "no-such-article" in res.json["description"]


def test_search_empty_article_parameter_is_ignored(client):
    assert client.simulate_get("/v1/search", params={"q": "therapy", "article": ""}).status_code == 200


def test_search_misspelling_offers_did_you_mean(client):
    assert client.simulate_get("/v1/search", params={"q": "psychoterapy goals"}).json["did_you_mean"] == "psychotherapy goals"


@pytest.mark.parametrize(("value", "status", "count"), [
    ("0", 400, None), ("1", 200, 1), ("50", 200, None), ("51", 400, None),
    ("-1", 400, None), ("abc", 400, None), ("1.5", 400, None), ("", 400, None), ("99999999999999999999", 400, None),
])
def test_search_limit_must_be_an_integer_from_1_to_50(client, value, status, count):
    res = client.simulate_get("/v1/search", params={"q": "therapy", "limit": value})
    assert res.status_code == status, res.text
    if status == 400:
        assert "limit" in res.json["description"] and "1 to 50" in res.json["description"]
    elif count is not None:
        assert len(res.json["results"]) == count


@pytest.mark.parametrize(("value", "status"), [
    ("-1", 400), ("0", 200), ("1000", 200), ("1001", 400), ("x", 400), ("2e3", 400),
])
def test_search_offset_must_be_an_integer_from_0_to_1000(client, value, status):
    res = client.simulate_get("/v1/search", params={"q": "therapy", "offset": value})
    assert res.status_code == status, res.text
    if status == 400:
        assert "offset" in res.json["description"] and "0 to 1000" in res.json["description"]
    elif value == "1000":
        assert res.json["results"] == []


# --------------------------------------------------------------------------- q rules


@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer", "/v1/suggest"])
@pytest.mark.parametrize("query_string", ["", "q=", "q=%20%20%09", "limit=5"])
def test_q_missing_empty_or_blank_is_400_on_every_endpoint(client, path, query_string):
    res = client.simulate_get(path, query_string=query_string)
    assert res.status_code == 400
    assert set(res.json) == {"title", "description"}
    assert "q parameter" in res.json["description"]


@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer", "/v1/suggest"])
def test_q_longer_than_max_query_chars_is_400_naming_the_limit(client, path):
    assert client.simulate_get(path, params={"q": "a" * 256}).status_code == 200
    res = client.simulate_get(path, params={"q": "a" * 257})
    assert res.status_code == 400
    assert "q parameter" in res.json["description"] and "256" in res.json["description"]


def test_q_length_limit_follows_the_setting(make_client):
    client = make_client(max_query_chars=20)
    assert client.simulate_get("/v1/search", params={"q": "x" * 21}).status_code == 400
    assert "at most 20" in client.simulate_get("/v1/search", params={"q": "x" * 21}).json["description"]


def test_q_given_twice_is_400(client):
    res = client.simulate_get("/v1/search", query_string="q=therapy&q=notes")
    assert res.status_code == 400 and "only once" in res.json["description"]


def test_q_whitespace_is_collapsed_before_searching(client):
    res = client.simulate_get("/v1/search", params={"q": "  what \t is\n psychotherapy  "})
    assert res.json["query"] == "what is psychotherapy"
    assert res.json["results"][0]["id"] == "goals-of-psychotherapy#what-is-psychotherapy"


def test_normalise_query_keeps_one_trailing_space_only_for_suggestions():
    assert normalise_query("  psy   ther  ") == "psy ther"
    assert normalise_query("  psy   ther  ", keep_trailing_space=True) == "psy ther "
    assert normalise_query("psy", keep_trailing_space=True) == "psy"


@pytest.mark.parametrize("q", [
    "title:foo OR *", '"unbalanced', "a AND (b", "therapy^5 NOT notes", "question:[a TO z]", "*", "?", "~~~",
    "foo\\", "a\x00b\x01", "<script>alert(1)</script>", "DROP TABLE articles; --", "ünïcödé thérapie 心理",
])
@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer", "/v1/suggest"])
def test_user_text_with_query_syntax_never_errors(client, path, q):
    res = client.simulate_get(path, params={"q": q})
    assert res.status_code == 200, res.text


def test_five_hundred_repeated_words_are_refused_by_the_length_cap_not_crashed_on(client, make_client):
    q = "a " * 500
    res = client.simulate_get("/v1/search", params={"q": q})
    assert res.status_code == 400 and "q parameter" in res.json["description"]
    roomy = make_client(max_query_chars=2000)
    for path in ("/v1/search", "/v1/answer", "/v1/suggest"):
        assert roomy.simulate_get(path, params={"q": q}).status_code == 200
    assert roomy.simulate_get("/v1/search", params={"q": "therapy " * 200}).status_code == 200


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/search", "/v1/answer", "/v1/suggest"]), q=st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(list('ab *?:"()[]{}^~\\-+!&|/ ANDORNT\t')), max_size=80),
    st.lists(st.sampled_from(["therapy", "OR", "AND", "NOT", "title:", "*", '"', "(", "notes", "DID"]),
             max_size=40).map(" ".join),
))
def test_random_q_never_gets_a_5xx(client, path, q):
    res = client.simulate_get(path, params={"q": q})
    assert res.status_code < 500, (path, q, res.text)
    assert res.status_code in (200, 400)


# --------------------------------------------------------------------------- answer, suggest


def test_answer_returns_the_best_section_for_an_on_topic_question(client):
    res = client.simulate_get("/v1/answer", params={"q": "how long does psychoanalysis take"})
    assert res.status_code == 200
    body = res.json
    assert set(body) == {"query", "answer", "confidence", "alternatives"}
    assert body["answer"]["id"] == "how-long-does-psychoanalysis-take#how-long-does-psychoanalysis-take"
    assert 0.5 <= body["confidence"] <= 1
    assert all(set(r) == RESULT_KEYS for r in body["alternatives"])


def test_answer_is_null_for_an_off_topic_question(client):
    body = client.simulate_get("/v1/answer", params={"q": "how do I bake sourdough bread"}).json
    assert body["answer"] is None
    assert 0 <= body["confidence"] < 0.5


def test_suggest_completes_the_last_word_as_a_prefix(client):
    res = client.simulate_get("/v1/suggest", params={"q": "psychotherapy tech"})
    assert res.status_code == 200
    top = res.json["suggestions"][0]
    assert set(top) == {"id", "text", "url", "highlight"}
    assert top["id"] == "goals-of-psychotherapy#psychotherapy-techniques"
    assert top["highlight"] == "<mark>Psychotherapy</mark> <mark>Tech</mark>niques"


@pytest.mark.parametrize(("value", "status"), [("0", 400), ("1", 200), ("20", 200), ("21", 400), ("two", 400)])
def test_suggest_limit_must_be_an_integer_from_1_to_20(client, value, status):
    res = client.simulate_get("/v1/suggest", params={"q": "psy", "limit": value})
    assert res.status_code == status
    if status == 400:
        assert "limit" in res.json["description"] and "1 to 20" in res.json["description"]
    else:
        assert 1 <= len(res.json["suggestions"]) <= int(value)


def test_suggest_defaults_to_eight(client):
    assert len(client.simulate_get("/v1/suggest", params={"q": "t"}).json["suggestions"]) == 8


# --------------------------------------------------------------------------- articles, faqs


def test_articles_lists_every_article(client):
    res = client.simulate_get("/v1/articles")
    assert res.status_code == 200
    articles = res.json["articles"]
    assert {a["slug"] for a in articles} == {
        "can-psychotherapy-notes-be-subpoenaed", "goals-of-psychotherapy",
        "how-long-does-psychoanalysis-take", "online-therapy-new-york-city",
    }
    assert all(set(a) == {"slug", "title", "url", "description", "sections", "source"} for a in articles)


def test_article_returns_sections_outline_links_and_related(client):
    res = client.simulate_get("/v1/articles/goals-of-psychotherapy")
    assert res.status_code == 200
    body = res.json
    assert set(body) >= {"slug", "title", "url", "description", "published", "modified", "sections", "links",
                         "related", "outline"}
    ids = [s["id"] for s in body["sections"]]
    assert "goals-of-psychotherapy#what-is-psychotherapy" in ids
    assert set(body["sections"][0]) == {"id", "question", "answer", "url", "breadcrumbs"}
    assert {r["slug"] for r in body["related"]} >= {"can-psychotherapy-notes-be-subpoenaed"}


def test_unknown_article_is_404(client):
    res = client.simulate_get("/v1/articles/nope")
    assert res.status_code == 404 and "nope" in res.json["description"]


def test_related_lists_linked_then_similar_articles(client):
    res = client.simulate_get("/v1/articles/goals-of-psychotherapy/related")
    assert res.status_code == 200
    related = res.json["related"]
    assert res.json["slug"] == "goals-of-psychotherapy"
    assert related and all(r["reason"] in ("links-to", "linked-from", "similar") for r in related)
    assert "goals-of-psychotherapy" not in {r["slug"] for r in related}


@pytest.mark.parametrize(("value", "status"), [("0", 400), ("1", 200), ("50", 200), ("51", 400), ("x", 400)])
def test_related_limit_must_be_an_integer_from_1_to_50(client, value, status):
    res = client.simulate_get("/v1/articles/goals-of-psychotherapy/related", params={"limit": value})
    assert res.status_code == status
    if status == 200:
        assert len(res.json["related"]) <= int(value)


def test_related_of_unknown_article_is_404(client):
    assert client.simulate_get("/v1/articles/nope/related").status_code == 404


def test_faq_returns_one_section_as_a_result(client):
    res = client.simulate_get("/v1/faqs/goals-of-psychotherapy/what-is-psychotherapy")
    assert res.status_code == 200
    assert set(res.json) == RESULT_KEYS
    assert res.json["id"] == "goals-of-psychotherapy#what-is-psychotherapy"
    assert res.json["url"] == "/goals-of-psychotherapy/#what-is-psychotherapy"


@pytest.mark.parametrize("path", ["/v1/faqs/goals-of-psychotherapy/nope", "/v1/faqs/nope/what-is-psychotherapy"])
def test_unknown_faq_slug_or_anchor_is_404(client, path):
    assert client.simulate_get(path).status_code == 404


# --------------------------------------------------------------------------- health, errors


def test_healthz_is_ok(client):
    res = client.simulate_get("/healthz")
    assert res.status_code == 200 and res.json == {"status": "ok"}


def test_readyz_reports_the_served_generation(client):
    res = client.simulate_get("/readyz")
    assert res.status_code == 200
    assert res.json["status"] == "ready"
    assert res.json["articles"] == 4 and res.json["sections"] > 0 and res.json["generation"]


def test_without_an_index_healthz_is_ok_and_the_rest_is_503_json(tmp_path, make_client):
    client = make_client(index_dir=tmp_path / "empty")
    assert client.simulate_get("/healthz").status_code == 200
    for path, params in (("/readyz", None), ("/v1/search", {"q": "therapy"}), ("/v1/articles", None),
                         ("/v1/answer", {"q": "therapy"}), ("/v1/suggest", {"q": "th"})):
        res = client.simulate_get(path, params=params)
        assert res.status_code == 503, path
        assert set(res.json) == {"title", "description"}
        assert "no index has been built" in res.json["description"]
        assert str(tmp_path) not in res.text
        assert res.headers["cache-control"] == "no-store"


def test_unknown_path_is_404_json(client):
    res = client.simulate_get("/v2/nothing")
    assert res.status_code == 404
    assert set(res.json) == {"title", "description"}


def test_errors_are_json_even_when_the_client_asks_for_html(client):
    res = client.simulate_get("/nothing", headers={"Accept": "text/html"})
    assert res.status_code == 404 and res.headers["content-type"] == "application/json"
    assert res.json["title"] == "404 Not Found"


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/search"), ("DELETE", "/v1/articles"),
                                              ("PUT", "/healthz"), ("GET", "/v1/reindex")])
def test_wrong_method_is_405_json_with_allow(make_client, method, path):
    client = make_client(reindex_token=TOKEN)
    res = client.simulate_request(method, path)
    assert res.status_code == 405
    assert set(res.json) == {"title", "description"} and method in res.json["description"]
    assert "allow" in res.headers


def test_unexpected_error_is_a_500_without_traceback(make_client, caplog):
    client = make_client()
    app = client.app

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    app.engine.search = broken
    with caplog.at_level(logging.ERROR, logger="faq.error"):
        res = client.simulate_get("/v1/search", params={"q": "my private question"})
    assert res.status_code == 500
    assert set(res.json) == {"title", "description"}
    assert "secret" not in res.text and "Traceback" not in res.text and "RuntimeError" not in res.text
    assert any("secret internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert all("private question" not in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- headers: CORS, caching


def test_cors_allowed_origin_is_echoed_with_vary(client):
    res = client.simulate_get("/v1/search", params={"q": "therapy"}, headers={"Origin": ALLOWED_ORIGIN})
    assert res.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Origin" in res.headers["vary"]


def test_cors_other_origin_gets_no_cors_headers(client):
    res = client.simulate_get("/v1/search", params={"q": "therapy"}, headers={"Origin": "https://evil.example"})
    assert res.status_code == 200
    assert not [h for h in res.headers if h.lower().startswith("access-control-")]


def test_cors_preflight_from_allowed_origin(client):
    res = client.simulate_options("/v1/reindex", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    })
    assert res.status_code == 204
    assert res.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert set(res.headers["access-control-allow-methods"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert set(res.headers["access-control-allow-headers"].replace(" ", "").split(",")) == {"Authorization",
                                                                                          "Content-Type"}
    assert int(res.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize(("origin", "method", "headers"), [
    ("https://evil.example", "GET", ""),
    (ALLOWED_ORIGIN, "DELETE", ""),
    (ALLOWED_ORIGIN, "GET", "X-Secret"),
])
def test_cors_preflight_refused_gets_no_cors_headers(client, origin, method, headers):
    res = client.simulate_options("/v1/search", headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers,
    })
    assert res.status_code == 204
    assert not [h for h in res.headers if h.lower().startswith("access-control-")]


def test_cors_is_off_without_an_allowlist(make_client):
    res = make_client(cors_origins=()).simulate_get("/healthz", headers={"Origin": ALLOWED_ORIGIN})
    assert "access-control-allow-origin" not in res.headers and "vary" not in res.headers


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/search", {"q": "therapy"}), ("/v1/articles", None), ("/nope", None), ("/v1/search", None), ("/healthz", None),
])
def test_nosniff_on_every_response(client, path, params):
    assert client.simulate_get(path, params=params).headers["x-content-type-options"] == "nosniff"


def test_nosniff_on_304_and_preflight(client):
    etag = client.simulate_get("/v1/articles").headers["etag"]
    assert client.simulate_get("/v1/articles", headers={"If-None-Match": etag}).headers["x-content-type-options"] == "nosniff"
    res = client.simulate_options("/v1/search", headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert res.headers["x-content-type-options"] == "nosniff"


QUERY_GETS = [("/v1/search", {"q": "therapy"}), ("/v1/answer", {"q": "therapy"}), ("/v1/suggest", {"q": "th"})]
CONTENT_GETS = [
    ("/v1/articles", None), ("/v1/articles/goals-of-psychotherapy", None),
    ("/v1/articles/goals-of-psychotherapy/related", None), ("/v1/faqs/goals-of-psychotherapy/top", None),
    ("/openapi.json", None),
]


@pytest.mark.parametrize(("path", "params"), CONTENT_GETS)
def test_successful_content_gets_are_publicly_cacheable_with_an_etag(client, path, params):
    res = client.simulate_get(path, params=params)
    assert res.status_code == 200
    assert res.headers["cache-control"] == "public, max-age=60"
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', res.headers["etag"])


@pytest.mark.parametrize(("path", "params"), QUERY_GETS)
def test_answers_to_a_visitors_question_are_private_to_the_browser(client, path, params):
    res = client.simulate_get(path, params=params)
    assert res.status_code == 200
    assert res.headers["cache-control"] == "private, max-age=60"
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', res.headers["etag"])
    again = client.simulate_get(path, params=params, headers={"If-None-Match": res.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "private, max-age=60"


@pytest.mark.parametrize(("path", "params"), QUERY_GETS)
def test_a_site_behind_its_own_cdn_can_make_query_answers_public(make_client, path, params):
    res = make_client(cache_public=True).simulate_get(path, params=params)
    assert res.headers["cache-control"] == "public, max-age=60"


def test_cache_max_age_follows_the_setting(make_client):
    res = make_client(cache_max_age=300).simulate_get("/v1/articles")
    assert res.headers["cache-control"] == "public, max-age=300"


@pytest.mark.parametrize(("path", "params"), [
    ("/healthz", None), ("/readyz", None), ("/v1/reindex/0123", None), ("/v1/search", {"q": ""}), ("/nope", None),
])
def test_health_reindex_and_errors_are_no_store_without_etag(client, path, params):
    res = client.simulate_get(path, params=params)
    assert res.headers["cache-control"] == "no-store"
    assert "etag" not in res.headers


def test_if_none_match_gives_304_without_body(client):
    first = client.simulate_get("/v1/search", params={"q": "notes subpoena"})
    etag = first.headers["etag"]
    again = client.simulate_get("/v1/search", params={"q": "notes subpoena"}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "private, max-age=60"
    strong = etag.removeprefix("W/")
    assert client.simulate_get("/v1/search", params={"q": "notes subpoena"},
                               headers={"If-None-Match": f'"other", {strong}'}).status_code == 304


def test_etag_depends_on_path_and_query_string(client):
    a = client.simulate_get("/v1/search", params={"q": "notes"}).headers["etag"]
    b = client.simulate_get("/v1/search", params={"q": "notes", "limit": "3"}).headers["etag"]
    c = client.simulate_get("/v1/answer", params={"q": "notes"}).headers["etag"]
    assert len({a, b, c}) == 3
    res = client.simulate_get("/v1/search", params={"q": "notes", "limit": "3"}, headers={"If-None-Match": a})
    assert res.status_code == 200


def test_etag_changes_with_a_new_generation(site):
    client = testing.TestClient(create_app(site.config()))
    old = client.simulate_get("/v1/articles").headers["etag"]
    site.edit("goals-of-psychotherapy", OLD_HEADING, NEW_HEADING)
    site.build()
    res = client.simulate_get("/v1/articles", headers={"If-None-Match": old})
    assert res.status_code == 200
    assert res.headers["etag"] != old


# --------------------------------------------------------------------------- access log


def access_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "faq.access"]


def test_access_log_line_has_no_query_text_and_a_truncated_ipv4(client, caplog):
    with caplog.at_level(logging.INFO, logger="faq.access"):
        client.simulate_get("/v1/search", params={"q": "my panic attacks at night"}, remote_addr="203.0.113.57")
    (line,) = access_lines(caplog)
    assert line["method"] == "GET" and line["path"] == "/v1/search" and line["status"] == 200
    assert line["client"] == "203.0.113.0"
    assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0
    raw = caplog.records[-1].getMessage()
    assert "panic" not in raw and "q=" not in raw and "203.0.113.57" not in raw


def test_access_log_truncates_ipv6_to_48_bits(client, caplog):
    with caplog.at_level(logging.INFO, logger="faq.access"):
        client.simulate_get("/v1/answer", params={"q": "am I depressed"}, remote_addr="2001:db8:abcd:12:3456::1")
    (line,) = access_lines(caplog)
    assert line["client"] == "2001:db8:abcd::"
    assert "depressed" not in json.dumps(line)


def test_access_log_records_errors_and_preflights_too(client, caplog):
    with caplog.at_level(logging.INFO, logger="faq.access"):
        client.simulate_get("/v1/search", params={"q": "x" * 300})
        client.simulate_get("/nope")
        client.simulate_options("/v1/search", headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert [line["status"] for line in access_lines(caplog)] == [400, 404, 204]


@pytest.mark.parametrize(("addr", "expected"), [
    ("198.51.100.200", "198.51.100.0"), ("::ffff:192.0.2.99", "192.0.2.0"), ("2001:db8::1", "2001:db8::"),
    ("fe80::1%eth0", "fe80::"), (None, "-"), ("unix-socket", "-"),
])
def test_truncate_address(addr, expected):
    assert truncate_address(addr) == expected


# --------------------------------------------------------------------------- response cache


def strip_took(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "took_ms"}


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/search", {"q": "how long  is psychoanalysis", "limit": "3"}),
    ("/v1/search", {"q": "notes", "article": "can-psychotherapy-notes-be-subpoenaed"}),
    ("/v1/answer", {"q": "can my therapy notes be subpoenaed"}),
    ("/v1/suggest", {"q": "online "}),
])
def test_cached_response_equals_the_uncached_one(make_client, path, params):
    cached = make_client(cache_size=100)
    uncached = make_client(cache_size=0)
    first = cached.simulate_get(path, params=params).json
    hits = cached.app.cache.hits
    second = cached.simulate_get(path, params=params).json
    assert cached.app.cache.hits == hits + 1
    reference = uncached.simulate_get(path, params=params).json
    assert strip_took(first) == strip_took(second) == strip_took(reference)
    assert len(uncached.app.cache) == 0


def test_cache_key_collapses_whitespace_but_keeps_case(make_client):
    client = make_client(cache_size=100)
    client.simulate_get("/v1/search", params={"q": "online therapy"})
    client.simulate_get("/v1/search", params={"q": "  online \t therapy "})
    assert client.app.cache.hits == 1 and len(client.app.cache) == 1
    client.simulate_get("/v1/search", params={"q": "Online therapy"})
    assert len(client.app.cache) == 2


def test_cache_is_bounded(make_client):
    client = make_client(cache_size=3)
    for word in ("therapy", "notes", "online", "analysis", "goals"):
        client.simulate_get("/v1/search", params={"q": word})
    assert len(client.app.cache) == 3


def test_new_generation_is_never_answered_from_the_old_generations_cache(site):
    client = testing.TestClient(create_app(site.config(cache_size=100)))
    q = "zanzibar psychotherapy"
    before = first_result(client, q)
    assert before["question"] != "What Is Zanzibar Psychotherapy?"
    assert first_result(client, q) == before  # now cached
    assert client.simulate_get("/v1/suggest", params={"q": "what is zan"}).json["suggestions"] == []
    site.edit("goals-of-psychotherapy", OLD_HEADING, NEW_HEADING)
    site.build()
    assert first_result(client, q)["question"] == "What Is Zanzibar Psychotherapy?"
    suggestions = client.simulate_get("/v1/suggest", params={"q": "what is zan"}).json["suggestions"]
    assert [s["text"] for s in suggestions] == ["What Is Zanzibar Psychotherapy?"]


def test_etag_changes_when_a_setting_that_changes_answers_changes(shared_index):
    a = testing.TestClient(create_app(api_settings(CORPUS, shared_index)))
    b = testing.TestClient(create_app(api_settings(CORPUS, shared_index, site_url="https://example.org")))
    c = testing.TestClient(create_app(api_settings(CORPUS, shared_index, answer_threshold=0.9)))
    params = {"q": "what is psychotherapy"}
    tags = {client.simulate_get("/v1/answer", params=params).headers["etag"] for client in (a, b, c)}
    assert len(tags) == 3


@pytest.mark.parametrize("q", ["\x00\x01", " \x7f\t\x9f ", "\x1b"])
@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer", "/v1/suggest"])
def test_a_query_of_only_control_characters_is_400_like_an_empty_one(client, path, q):
    res = client.simulate_get(path, params={"q": q})
    assert res.status_code == 400
    assert "control characters" in res.json["description"]


def test_normalise_query_reads_control_characters_as_spaces():
    assert normalise_query("a\x00b\x1f\x7fc\u0085") == "a b c"


# --------------------------------------------------------------------------- whole messages (POST)

LONG_MESSAGE = (
    "Hello, I have been seeing a counsellor for a few months about stress at work and it has helped, "
    "but a friend told me that psychotherapy goes deeper. I am not sure what the real difference is "
    "between the two or which one would suit me better. My sessions so far were mostly practical advice. "
    "What is the difference between psychotherapy and counselling?"
)


def test_post_search_ranks_a_whole_message_longer_than_the_get_cap(client):
    assert len(LONG_MESSAGE) > 256
    res = client.simulate_post("/v1/search", json={"text": LONG_MESSAGE, "limit": 3})
    assert res.status_code == 200, res.text
    assert len(res.json["results"]) == 3
    assert "goals-of-psychotherapy#psychotherapy-vs-counselling" in [r["id"] for r in res.json["results"]]
    assert res.headers["cache-control"] == "no-store"
    assert client.simulate_get("/v1/search", params={"q": LONG_MESSAGE}).status_code == 400


def test_post_answer_takes_a_whole_message_and_limit_caps_the_alternatives(client):
    res = client.simulate_post("/v1/answer", json={"text": LONG_MESSAGE, "limit": 2})
    assert res.status_code == 200, res.text
    shown = ([res.json["answer"]] if res.json["answer"] else []) + res.json["alternatives"]
    assert "goals-of-psychotherapy#psychotherapy-vs-counselling" in [r["id"] for r in shown]
    assert len(shown) <= 3  # the answer (or, without one, the best section) and 2 alternatives


def test_post_text_over_the_cap_is_413(make_client):
    client = make_client(max_text_chars=100)
    res = client.simulate_post("/v1/answer", json={"text": "therapy " * 20})
    assert res.status_code == 413
    assert "at most 100" in res.json["description"]


@pytest.mark.parametrize("body", [
    b"not json", b"[1]", b"{}", b'{"text": 5}', b'{"text": "  \\u0001 "}', b'{"text": "therapy", "q": "x"}',
    b'{"text": "therapy", "limit": 0}', b'{"text": "therapy", "limit": "3"}', b'{"text": "therapy", "limit": true}',
])
def test_post_search_with_a_bad_body_is_400_naming_the_problem(client, body):
    res = client.simulate_post("/v1/search", body=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 400, res.text
    assert set(res.json) == {"title", "description"}


@pytest.mark.parametrize("body", [b"[" * 30_000, b'{"text": ' + b"[" * 30_000, b'{"text": "anxiety \\ud800 therapy"}'])
@pytest.mark.parametrize("path", ["/v1/search", "/v1/answer"])
def test_post_bodies_nested_thousands_deep_or_with_lone_surrogates_are_400_not_500(client, path, body):
    res = client.simulate_post(path, body=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 400, res.text


def test_access_log_escapes_unicode_line_breaks_and_controls_in_paths(client, caplog):
    with caplog.at_level(logging.INFO, logger="faq.access"):
        client.simulate_get("/v1/articles/a\u0085FAKE\u009b31mEVIL\u2028x")
    line = [r.getMessage() for r in caplog.records if r.name == "faq.access"][-1]
    assert len(line.splitlines()) == 1
    assert not any(ch in line for ch in "\u0085\u009b\u2028")
