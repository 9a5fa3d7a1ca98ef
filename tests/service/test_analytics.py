"""service/analytics.py: aggregate counts only, the privacy rules, batching, retention, the report."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from falcon import testing

from service.analytics import ANALYTICS_DB, Analytics, contact_like, stored_form
from service.app import create_app

from .conftest import CORPUS, TOKEN, api_settings

DAY = date(2026, 3, 1)
SEARCH_HIT = {"total": 4}
SEARCH_NONE = {"total": 0}
UNANSWERED = {"answer": None, "confidence": 0.2, "alternatives": [{"id": "x"}, {"id": "y"}]}


def analytics_for(index_dir: Path, today=lambda: DAY, **overrides) -> Analytics:
    overrides.setdefault("analytics_flush_seconds", 0.05)
    return Analytics(api_settings(CORPUS, index_dir, **overrides), today=today)


def rows(index_dir: Path) -> list[tuple]:
    path = index_dir / ANALYTICS_DB
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT day, query, kind, results, confidence, answered, count FROM searches "
                            "ORDER BY day, query, kind").fetchall()


class NoRanking:
    """An engine stand-in for report tests that are about counting, not ranking."""

    def search(self, q, limit=10, snippets=True):
        return {"results": []}


def test_counts_are_aggregated_per_day_query_and_buckets_with_nothing_else_stored(tmp_path):
    a = analytics_for(tmp_path)
    for _ in range(3):
        a.record_search("  What IS   Psychotherapy ", SEARCH_HIT)
    a.record_answer("what is psychotherapy", UNANSWERED)
    assert a.flush() == 2
    assert rows(tmp_path) == [
        ("2026-03-01", "what is psychotherapy", "answer", "2-3", "0.2", 0, 1),
        ("2026-03-01", "what is psychotherapy", "search", "4-10", "", 0, 3),
    ]
    with sqlite3.connect(tmp_path / ANALYTICS_DB) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(searches)")]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert columns == ["day", "query", "kind", "results", "confidence", "answered", "count"]
    assert tables == ["searches"]


def test_later_pages_of_a_search_are_not_counted_again(tmp_path):
    a = analytics_for(tmp_path)
    a.record_search("grief", SEARCH_HIT)
    a.record_search("grief", SEARCH_HIT, offset=10)
    a.flush()
    assert [r[-1] for r in rows(tmp_path)] == [1]


def test_queries_are_truncated_to_100_characters(tmp_path):
    a = analytics_for(tmp_path)
    a.record_search("anxiety " * 40, SEARCH_HIT)
    a.flush()
    assert len(rows(tmp_path)[0][1]) <= 100 and rows(tmp_path)[0][1].startswith("anxiety anxiety")


@pytest.mark.parametrize("query", [
    "please email me at jane.doe@example.com",
    "jane@example",
    "call 555-123-4567 about therapy",
    "(212) 555 0199",
    "+44 20 7946 0958",
    "my case number 12345678",
    "ssn 123-45-6789",
    "born 19850412",
])
def test_contact_looking_queries_are_never_stored(tmp_path, query):
    assert contact_like(query) and stored_form(query) is None
    a = analytics_for(tmp_path)
    for _ in range(5):
        a.record_search(query, SEARCH_NONE)
        a.record_answer(query, UNANSWERED)
    a.flush()
    assert rows(tmp_path) == []
    assert not (tmp_path / ANALYTICS_DB).exists()  # nothing else was recorded either: no file at all


@pytest.mark.parametrize("query", ["how long is therapy", "the 5 ps in psychotherapy", "dsm 5 criteria 2024",
                                   "is 45 minutes enough"])
def test_ordinary_queries_with_a_few_digits_are_kept(query):
    assert stored_form(query) == query


def test_a_query_is_reported_only_once_counted_k_times(tmp_path):
    a = analytics_for(tmp_path)  # k = 3 by default
    for _ in range(2):
        a.record_search("sliding scale fees", SEARCH_NONE)
    a.flush()
    report = a.report(NoRanking(), days=7)
    assert report["min_count"] == 3
    assert report["top_queries"] == [] and report["zero_results"] == [] and report["alternates"] == []
    a.record_search("sliding scale fees", SEARCH_NONE)
    a.flush()
    report = a.report(NoRanking(), days=7)
    assert report["top_queries"] == [{"query": "sliding scale fees", "count": 3, "first": None}]
    assert report["zero_results"] == [{"query": "sliding scale fees", "count": 3, "first": None}]
    assert report["alternates"] == ["# choose a section: sliding scale fees"]


def test_the_k_threshold_counts_only_the_reported_days(tmp_path):
    for day in (DAY - timedelta(days=10), DAY - timedelta(days=9), DAY):
        a = analytics_for(tmp_path, today=lambda day=day: day)
        a.record_search("couples therapy", SEARCH_HIT)
        a.flush()
    a = analytics_for(tmp_path)
    assert a.report(NoRanking(), days=30)["top_queries"][0]["count"] == 3
    assert a.report(NoRanking(), days=7)["top_queries"] == []


def test_rows_past_retention_are_dropped_and_newer_ones_kept(tmp_path):
    retention = 90
    for age in (0, 89, 90, 120):  # oldest last: each flush prunes relative to its own day
        a = analytics_for(tmp_path, today=lambda age=age: DAY - timedelta(days=age))
        a.record_search(f"query {age} days old", SEARCH_HIT)
        a.flush()
    assert len(rows(tmp_path)) == 4
    a = analytics_for(tmp_path, analytics_retention_days=retention)
    a.record_search("today's query", SEARCH_HIT)
    a.flush()
    kept = {r[1] for r in rows(tmp_path)}
    assert kept == {"query 89 days old", "query 0 days old", "today's query"}


def test_analytics_off_stores_nothing_at_all(site):
    client = testing.TestClient(create_app(site.config(analytics=False)))
    for _ in range(5):
        assert client.simulate_get("/v1/search", params={"q": "what is psychotherapy"}).status_code == 200
        assert client.simulate_get("/v1/answer", params={"q": "what is psychotherapy"}).status_code == 200
    client.app.analytics.close()
    assert not (site.index / ANALYTICS_DB).exists()


def _record_in_child(index_dir: str, n: int) -> None:
    a = analytics_for(Path(index_dir))
    for i in range(n):
        a.record_search("what is psychotherapy", SEARCH_HIT)
        if i % 50 == 0:
            a.record_answer("what is psychotherapy", UNANSWERED)
    a.close()


def test_several_processes_writing_at_once_lose_and_double_no_count(tmp_path):
    processes, per_process = 4, 2000
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_record_in_child, args=(str(tmp_path), per_process)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    counts = {(r[1], r[2]): r[-1] for r in rows(tmp_path)}
    assert counts == {("what is psychotherapy", "search"): processes * per_process,
                      ("what is psychotherapy", "answer"): processes * (per_process // 50)}


def test_requests_are_recorded_from_the_api_without_identifying_data(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    headers = {"X-Request-Id": "req-0123456789", "User-Agent": "Visitor-Browser/1.0", "Cookie": "session=abc123"}
    for _ in range(3):
        client.simulate_get("/v1/search", params={"q": "What is psychotherapy"}, headers=headers,
                            remote_addr="203.0.113.77")
        client.simulate_get("/v1/answer", params={"q": "what is  psychotherapy"}, headers=headers)
    client.app.analytics.flush()
    stored = rows(site.index)
    assert {(r[1], r[2], r[-1]) for r in stored} == {("what is psychotherapy", "search", 3),
                                                     ("what is psychotherapy", "answer", 3)}
    raw = (site.index / ANALYTICS_DB).read_bytes() + b"".join(
        p.read_bytes() for p in site.index.glob(f"{ANALYTICS_DB}-*"))
    for secret in (b"req-0123456789", b"Visitor-Browser", b"abc123", b"203.0.113"):
        assert secret not in raw


def test_get_analytics_needs_the_editor_token_and_returns_the_report(site):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    for _ in range(3):
        client.simulate_get("/v1/search", params={"q": "what is psychotherapy"})
        client.simulate_get("/v1/search", params={"q": "zanzibar quokka"})
    client.app.analytics.flush()
    assert client.simulate_get("/v1/analytics").status_code == 401
    res = client.simulate_get("/v1/analytics", params={"days": "7"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
    body = res.json
    top = {e["query"]: e for e in body["top_queries"]}
    assert top["what is psychotherapy"]["count"] == 3
    assert top["what is psychotherapy"]["first"]["id"] == "goals-of-psychotherapy#what-is-psychotherapy"
    assert body["zero_results"] == [{"query": "zanzibar quokka", "count": 3, "first": None}]
    assert body["alternates"] == ["# choose a section: zanzibar quokka"]
    bad = client.simulate_get("/v1/analytics", params={"days": "0"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400
    off = testing.TestClient(create_app(site.config(reindex_token=None)))
    assert off.simulate_get("/v1/analytics").status_code == 404


@pytest.mark.parametrize("q", [
    "email me jane.doe @ gmail.com about therapy",  # spaces around the @
    "jane\uff20gmail.com anxiety",  # a full-width @
    "write to jane at gmail dot com",  # spelled out
    "jane [at] example [dot] org",
])
def test_contact_data_however_it_is_spelled_is_never_stored(q):
    assert contact_like(q)
    assert stored_form(q) is None


@pytest.mark.parametrize("q", ["what to expect at home", "therapy at night", "is therapy at a practice good"])
def test_ordinary_questions_with_at_are_stored(q):
    assert not contact_like(q)


def test_workers_setting_up_the_database_together_wait_for_each_other(tmp_path):
    import threading

    from service.storage import connect

    path = tmp_path / "x.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another worker in the middle of its set-up
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    conn = connect(path, "CREATE TABLE IF NOT EXISTS t (x)", set_up=True, timeout=10)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    holder.close()


def test_the_report_reads_a_database_whose_folder_name_holds_uri_characters(tmp_path):
    index_dir = tmp_path / "index ?#%"  # "?" and "#" once cut the path short of its file
    index_dir.mkdir()
    a = analytics_for(index_dir)
    for _ in range(3):
        a.record_search("sliding scale fees", SEARCH_NONE)
    a.flush()
    assert a.report(NoRanking(), days=7)["zero_results"] == [
        {"query": "sliding scale fees", "count": 3, "first": None}]
