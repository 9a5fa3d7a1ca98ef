"""How a worker's Engine moves to a newly published generation: without a restart, without
answering from a half-opened one, and without stalling requests while it opens."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest
from falcon import testing

import service.generations as generations_module
from indexer.manifest import MANIFEST, verify_folder
from indexer.publish import CURRENT, GENERATIONS, build, current_generation, publish_pointer
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


# --------------------------------------------------------------------------- integrity

QUERIES = ("psychotherapy", "goals of therapy", "psychoanalysis sessions", "notes subpoena")


def totals(engine: Engine) -> dict[str, int]:
    return {q: engine.search(q)["total"] for q in QUERIES}


def segment(generation: Path) -> Path:
    return next(generation.glob("MAIN_*.pst"))


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def two_builds(site):
    """Two full builds of the same corpus: separate files, the same documents."""
    older = current_generation(Path(site.index_dir))
    build(site)
    return older, current_generation(Path(site.index_dir))


def test_a_truncated_served_segment_is_reported_and_an_intact_generation_keeps_the_totals(
        site, two_builds, caplog):
    older, newer = two_builds
    client = testing.TestClient(create_app(site))
    engine = client.app.engine
    engine.generations.recheck_seconds = 0.0  # check the sizes on every request
    assert client.simulate_get("/readyz").json["status"] == "ready"
    expected = totals(engine)
    damaged = segment(newer[1])
    with caplog.at_level(logging.ERROR, logger="faq.search"):
        truncate(damaged, damaged.stat().st_size // 3)
        ready = client.simulate_get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "degraded"
    assert ready.json["generation"] == older[0]
    assert newer[0] in ready.json["problem"] and damaged.name in ready.json["problem"]
    assert any(damaged.name in r.getMessage() and newer[0] in r.getMessage() for r in caplog.records)
    assert totals(engine) == expected
    for q in QUERIES:
        assert client.simulate_get("/v1/search", params={"q": q}).json["total"] == expected[q]

    report = build(site, mode="update")
    assert report.published and report.mode == "full"
    assert verify_folder(current_generation(Path(site.index_dir))[1]) == []
    wait_for(lambda: engine.status()["generation"] == report.generation)
    assert client.simulate_get("/readyz").json["status"] == "ready"
    assert totals(engine) == expected


def test_sizes_are_checked_when_a_generation_opens_before_any_hash_is_read(site, two_builds, monkeypatch):
    older, newer = two_builds
    hashed: list[str] = []
    monkeypatch.setattr(generations_module, "verify", lambda folder, manifest: hashed.append(folder.name) or [])
    truncate(segment(newer[1]), 10)
    engine = Engine(site)
    assert engine.status()["generation"] == older[0]
    assert newer[0] in engine.generations.problem and "the manifest says" in engine.generations.problem
    wait_for(lambda: hashed == [older[0]])  # only the generation served is hashed, after it opened


def test_damage_that_keeps_the_size_is_caught_by_the_background_hash_pass(site, two_builds, caplog):
    older, newer = two_builds
    flip_a_byte(segment(newer[1]))
    engine = Engine(site)
    with caplog.at_level(logging.ERROR, logger="faq.search"):
        assert engine.status()["generation"] in (newer[0], older[0])  # sizes match: it opens
        wait_for(lambda: engine.status()["generation"] == older[0])
    assert "content differs from the manifest" in engine.generations.problem
    assert any(segment(newer[1]).name in r.getMessage() for r in caplog.records)


def test_a_newly_published_damaged_generation_is_never_served(site):
    engine = Engine(site)
    old = engine.status()["generation"]
    report = build(site)
    engine_gens = engine.generations
    truncate(segment(Path(site.index_dir) / GENERATIONS / report.generation), 5)
    wait_for(lambda: not engine_gens.loading and engine.status()["generation"] == old
             and engine_gens.problem is not None)
    assert report.generation in engine_gens.problem and "damaged" in engine_gens.problem
    assert engine.status()["generation"] == old


def test_readyz_is_503_when_no_intact_generation_is_left(site):
    client = testing.TestClient(create_app(site))
    client.app.engine.generations.recheck_seconds = 0.0
    only = current_generation(Path(site.index_dir))
    truncate(segment(only[1]), 5)
    assert client.simulate_get("/readyz").status_code == 503
    assert client.simulate_get("/v1/search", params={"q": "psychotherapy"}).status_code == 503
    assert only[0] in client.app.engine.generations.problem


def as_built_before_manifests(folder: Path) -> None:
    """What an older version left: no manifest, and no promise of one in GENERATION.json."""
    (folder / MANIFEST).unlink()
    info_path = folder / "GENERATION.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info.pop("manifest", None)
    info_path.write_text(json.dumps(info), encoding="utf-8")


def test_a_generation_whose_manifest_was_deleted_is_damaged_not_unverified(site):
    folder = current_generation(Path(site.index_dir))[1]
    (folder / MANIFEST).unlink()
    client = testing.TestClient(create_app(site))
    assert client.simulate_get("/readyz").status_code == 503
    assert "MANIFEST.json" in client.app.engine.generations.problem


def test_a_generation_built_before_manifests_is_served_unverified_and_logged_once(site, caplog):
    folder = current_generation(Path(site.index_dir))[1]
    as_built_before_manifests(folder)
    with caplog.at_level(logging.WARNING, logger="faq.search"):
        assert Engine(site).search("psychotherapy")["results"]
        assert Engine(site).search("psychotherapy")["results"]
    assert [r.getMessage() for r in caplog.records].count(
        f"generation {folder.name} has no manifest (built before manifests): served unverified; "
        "the next `faq-index build` writes one") == 1
