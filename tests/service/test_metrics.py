"""service/metrics.py and the request id: /metrics summed over real gunicorn workers, labels
without query text, request ids in responses, access log lines and reindex jobs."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from falcon import testing
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service.analytics import ANALYTICS_DB
from service.app import create_app

from .conftest import TOKEN, Site
from .test_gunicorn import Server, get

SEARCHES = 60


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as res:
        assert res.headers["Content-Type"].startswith("text/plain")
        text = res.read().decode("utf-8")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_and_analytics_count_every_search_of_two_gunicorn_workers_exactly(tmp_path):
    site = Site(tmp_path)
    site.build()
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale")  # a previous run's file: emptied at start
    server = Server(site, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(multiproc), FAQ_ANALYTICS_FLUSH_SECONDS="0.2")
    try:
        ready = server.wait_ready()
        query = server.base + "/v1/search?q=what+is+the+secret+zanzibar+question"
        sent, pids = 0, set()
        while len(pids) < 2 and sent < 5 * SEARCHES:  # concurrent requests reach both sync workers
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: get(query)[0], range(SEARCHES)))
            assert statuses == [200] * SEARCHES
            sent += SEARCHES
            pids = {line["pid"] for line in server.access_lines() if line["path"] == "/v1/search"}
        assert len(pids) == 2, "both workers must have answered searches"
        assert not (multiproc / "counter_999999.db").exists()
        assert {p.name for p in multiproc.glob("counter_*.db")} >= {f"counter_{pid}.db" for pid in pids}

        for _ in range(3):  # whichever worker answers the scrape, it sums both
            samples = scrape(server.base)
            assert value(samples, "faq_http_requests_total", route="/v1/search", status_class="2xx") == sent
            assert value(samples, "faq_search_results_count") == sent
        assert value(samples, "faq_generation_info", generation=ready["generation"]) == 1
        assert value(samples, "faq_generation_sections") == 46
        assert value(samples, "faq_generation_articles") == 4
        assert value(samples, "faq_generation_age_seconds") >= 0
        with urllib.request.urlopen(server.base + "/metrics", timeout=5) as res:
            text = res.read().decode("utf-8")
        assert "zanzibar" not in text and "secret" not in text  # no label carries query text
    finally:
        server.stop()
    # Each worker wrote its last batch when it exited: every search counted once.
    with sqlite3.connect(site.index / ANALYTICS_DB) as conn:
        total = conn.execute("SELECT SUM(count) FROM searches WHERE kind = 'search'").fetchone()[0]
    assert total == sent


def test_the_served_generation_is_an_info_metric_with_its_sizes(site):
    client = testing.TestClient(create_app(site.config()))
    res = client.simulate_get("/metrics")
    assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
    generation = client.app.engine.generation().name
    assert REGISTRY.get_sample_value("faq_generation_info", {"generation": generation}) == 1
    assert REGISTRY.get_sample_value("faq_generation_sections") == client.app.engine.generation().doc_count


def test_a_new_generation_counts_a_switch_and_retires_the_old_id(site):
    client = testing.TestClient(create_app(site.config()))
    old = client.app.engine.generation().name
    client.simulate_get("/v1/articles")
    before = REGISTRY.get_sample_value("faq_generation_switches_total")
    site.edit("goals-of-psychotherapy", ">What Is Psychotherapy?</h2>", ">What Is Zanzibar Psychotherapy?</h2>")
    new = site.build()
    client.app.engine.switch_wait = 30
    client.simulate_get("/v1/articles")
    assert REGISTRY.get_sample_value("faq_generation_switches_total") == before + 1
    assert REGISTRY.get_sample_value("faq_generation_info", {"generation": new}) == 1
    assert REGISTRY.get_sample_value("faq_generation_info", {"generation": old}) == 0


def test_answers_count_confidence_and_null_answers(client):
    before_null = REGISTRY.get_sample_value("faq_answer_null_total") or 0
    before = REGISTRY.get_sample_value("faq_answer_confidence_count") or 0
    client.simulate_get("/v1/answer", params={"q": "how do I bake sourdough bread"})
    client.simulate_get("/v1/answer", params={"q": "how long does psychoanalysis take"})
    assert REGISTRY.get_sample_value("faq_answer_confidence_count") == before + 2
    assert REGISTRY.get_sample_value("faq_answer_null_total") == before_null + 1


def test_requests_are_counted_by_route_template_never_by_path(client):
    labels = {"route": "/v1/articles/{slug}", "status_class": "4xx"}
    before = REGISTRY.get_sample_value("faq_http_requests_total", labels) or 0
    client.simulate_get("/v1/articles/no-such-article-xyzzy")
    assert REGISTRY.get_sample_value("faq_http_requests_total", labels) == before + 1
    unmatched = {"route": "unmatched", "status_class": "4xx"}
    before = REGISTRY.get_sample_value("faq_http_requests_total", unmatched) or 0
    client.simulate_get("/no/such/path/plugh")
    assert REGISTRY.get_sample_value("faq_http_requests_total", unmatched) == before + 1
    text = client.simulate_get("/metrics").text
    assert "xyzzy" not in text and "plugh" not in text


def test_suggest_latency_has_its_own_histogram(client):
    before = REGISTRY.get_sample_value("faq_suggest_duration_seconds_count") or 0
    client.simulate_get("/v1/suggest", params={"q": "psy"})
    assert REGISTRY.get_sample_value("faq_suggest_duration_seconds_count") == before + 1


def test_a_well_formed_request_id_is_echoed_and_logged(client, caplog):
    with caplog.at_level(logging.INFO, logger="faq.access"):
        res = client.simulate_get("/healthz", headers={"X-Request-Id": "edge-4f1c2a9b:7"})
    assert res.headers["x-request-id"] == "edge-4f1c2a9b:7"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "faq.access"]
    assert lines[-1]["request_id"] == "edge-4f1c2a9b:7"


def test_a_missing_or_malformed_request_id_is_replaced_by_a_new_one(client):
    fresh = client.simulate_get("/healthz").headers["x-request-id"]
    assert len(fresh) == 32 and int(fresh, 16) >= 0
    for bad in ("short", "has spaces in it", "x" * 129, "evil\\nline-injection", "<script>alert(1)</script>"):
        given = client.simulate_get("/healthz", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert given != bad and len(given) == 32


def test_a_reindex_job_carries_the_request_id_and_is_counted(site, caplog):
    client = testing.TestClient(create_app(site.config(reindex_token=TOKEN)))
    site.corpus.joinpath("broken.html").write_bytes(b"\x00\x01 binary \x00")  # an error line from the indexer
    labels = {"mode": "update", "outcome": "succeeded"}
    failed = {"mode": "update", "outcome": "failed"}
    before = sum(REGISTRY.get_sample_value("faq_reindex_runs_total", lb) or 0 for lb in (labels, failed))
    with caplog.at_level(logging.INFO, logger="faq.service"):
        res = client.simulate_post("/v1/reindex", json={"mode": "update"},
                                   headers={"Authorization": f"Bearer {TOKEN}", "X-Request-Id": "editor-req-42abc"})
        assert res.status_code == 202
        job = res.json["job"]
        client.app.jobs.join(60)
    record = client.app.jobs.get(job)
    assert record["status"] in ("succeeded", "failed")
    assert any("editor-req-42abc" in r.getMessage() and job in r.getMessage() for r in caplog.records)
    err = (site.index / "jobs" / f"{job}.err").read_text()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("[request editor-req-42abc] ") for ln in lines)
    after = sum(REGISTRY.get_sample_value("faq_reindex_runs_total", lb) or 0 for lb in (labels, failed))
    assert after == before + 1
    deadline = time.monotonic() + 5
    while REGISTRY.get_sample_value("faq_reindex_duration_seconds_count", {"mode": "update",
                                    "outcome": record["status"]}) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert REGISTRY.get_sample_value("faq_reindex_duration_seconds_count",
                                     {"mode": "update", "outcome": record["status"]}) >= 1
