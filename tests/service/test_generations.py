"""How a worker's Engine moves to a newly published generation: without a restart, without
answering from a half-opened one, and without stalling requests while it opens."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest
from falcon import testing

from indexer.publish import CURRENT, GENERATIONS, build, publish_pointer
from indexer.settings import load_config
from service.app import create_app
from service.search import Engine

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
OLD = "What Is Psychotherapy?"
NEW = "What Is Zanzibar Psychotherapy?"


@pytest.fixture
def site(tmp_path):
    shutil.copytree(CORPUS, tmp_path / "corpus")
    config = load_config(env={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    build(config)
    return config


def publish_new_heading(config) -> str:
    page = Path(config.corpus_dir) / "goals-of-psychotherapy.html"
    page.write_text(page.read_text(encoding="utf-8").replace(OLD, NEW), encoding="utf-8")
    return build(config, mode="update").generation


def top_question(engine: Engine) -> str:
    return engine.search("zanzibar psychotherapy")["results"][0]["question"]


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_new_generation_is_served_on_the_next_request_when_it_opens_quickly(site):
    engine = Engine(site)
    assert top_question(engine) != NEW
    new = publish_new_heading(site)
    assert top_question(engine) == NEW
    assert engine.status()["generation"] == new


def test_requests_keep_the_old_generation_while_the_new_one_opens(site):
    engine = Engine(site)
    engine.switch_wait = 0.0  # as for a corpus too large to open within the wait
    old = engine.status()["generation"]
    new = publish_new_heading(site)
    first = engine.status()["generation"]
    assert first in (old, new)  # the old one unless the loader already finished
    wait_for(lambda: engine.status()["generation"] == new)
    assert top_question(engine) == NEW


def test_a_generation_that_cannot_be_opened_leaves_the_old_one_serving(site, caplog):
    engine = Engine(site)
    old = engine.status()["generation"]
    index_dir = Path(site.index_dir)
    broken = index_dir / GENERATIONS / "999999-broken"
    broken.mkdir()
    (broken / "GENERATION.json").write_text("{}", encoding="utf-8")  # no index, no catalog
    with caplog.at_level(logging.ERROR, logger="faq.search"):
        publish_pointer(index_dir, broken.name)
        wait_for(lambda: engine.status()["generation"] == old and not engine.generations.loading)
    assert any("cannot open generation 999999-broken" in r.getMessage() for r in caplog.records)
    assert engine.search("psychotherapy")["results"]
    good = publish_new_heading(site)  # the next good publish is picked up
    assert (index_dir / CURRENT).read_text(encoding="utf-8").strip() == good
    wait_for(lambda: engine.status()["generation"] == good)


def test_a_worker_whose_generation_was_pruned_waits_for_the_new_one(site):
    engine = Engine(site)
    engine.switch_wait = 0.0  # would otherwise answer from the old generation while loading
    old_path = engine.generation().path
    new = publish_new_heading(site)
    shutil.rmtree(old_path)  # what pruning does after enough publishes
    results: list = []
    worker = threading.Thread(target=lambda: results.append(engine.search("zanzibar psychotherapy")))
    worker.start()
    worker.join(60)
    assert results and results[0]["results"][0]["question"] == NEW
    assert engine.status()["generation"] == new


def test_readyz_reports_degraded_while_the_newest_generation_cannot_be_opened(site):
    client = testing.TestClient(create_app(site))
    old = client.simulate_get("/readyz").json["generation"]
    index_dir = Path(site.index_dir)
    broken = index_dir / GENERATIONS / "999999-broken"
    broken.mkdir()
    (broken / "GENERATION.json").write_text("{}", encoding="utf-8")
    publish_pointer(index_dir, broken.name)
    engine = client.app.engine
    wait_for(lambda: engine.status()["generation"] == old and not engine.generations.loading)
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "degraded" and ready.json["generation"] == old
    assert "999999-broken" in ready.json["problem"] and str(index_dir) not in ready.json["problem"]
    assert client.simulate_get("/v1/search", params={"q": "psychotherapy"}).json["results"]
    good = publish_new_heading(site)
    wait_for(lambda: engine.status()["generation"] == good)
    assert client.simulate_get("/readyz").json["status"] == "ready"
