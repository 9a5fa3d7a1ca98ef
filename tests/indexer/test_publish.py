"""indexer.publish: index generations, atomic publish, the build lock and incremental update."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh import index as whoosh_index

import indexer.manifest as manifest
import indexer.publish as publish
import indexer.spelltable as spelltable
from indexer.corpus import LinkMap
from indexer.derived import open_derived
from indexer.manifest import (
    MANIFEST,
    compute_manifest,
    read_manifest,
    verify_folder,
    write_manifest,
)
from indexer.publish import (
    CATALOG,
    CURRENT,
    GENERATION_INFO,
    GENERATIONS,
    BuildError,
    BuildLocked,
    PublishRefused,
    build,
    build_lock,
    current_generation,
    read_catalog,
)
from indexer.schema import SEARCH_FIELDS, analyze
from indexer.settings import load_config
from service.scoring import Scorer

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"
GOALS = "goals-of-psychotherapy.html"
ANALYSIS = "how-long-does-psychoanalysis-take.html"
ONLINE = "online-therapy-new-york-city.html"
NOTES = "can-psychotherapy-notes-be-subpoenaed.html"
QUERIES = (
    "what are the goals of psychotherapy",
    "can psychotherapy notes be subpoenaed",
    "how often are psychoanalysis sessions",
    "online therapy licensing in New York",
    "coping skills for stress",
    "behaviour and counselling",
    "frequency of couch sessions",
)
def page_body(slug: str, topic: str) -> str:
    return (f'<h2 id="{slug}-one">About {topic}</h2>\n<p>{topic} is discussed here at some length, so that '
            f"the page has enough text to be an article of its own, with a word on how {topic} fits "
            "into everyday therapy practice and the weekly sessions that usually follow.</p>")


def write_two_claims_to_zeta(corpus: Path, write_page) -> None:
    """A page linking to /zeta/, which two pages claim: p.html by its canonical URL (slug
    "zeta") and zeta.html by its file name (its canonical makes its slug "other")."""
    write_page(corpus, "p.html", "P", page_body("p", "Pebbles"), canonical="https://mypsychotherapy.example/zeta/")
    write_page(corpus, "zeta.html", "Zeta", page_body("z", "Zebras"), canonical="https://mypsychotherapy.example/other/")
    write_page(corpus, "linker.html", "Linker",
               '<h2 id="l">Links</h2><p>See <a href="/zeta/">the zeta page</a> before the first session; '
               "it explains what the weekly work looks like in some detail.</p>")


def served(index_dir: Path) -> Path:
    current = current_generation(Path(index_dir))
    assert current is not None, "nothing is published"
    return current[1]


def documents(generation: Path) -> dict[str, dict]:
    """Every stored document of a generation, by id."""
    ix = whoosh_index.open_dir(str(generation))
    with ix.searcher() as searcher:
        return {doc["id"]: doc for doc in searcher.all_stored_fields()}


def ranking(generation: Path, query: str) -> list[tuple[str, float]]:
    """(id, score) of every hit for the query's analysed terms, ranked as the service ranks
    (``service.scoring.Scorer``: statistics of live documents only)."""
    ix = whoosh_index.open_dir(str(generation))
    with ix.reader() as reader, ix.searcher() as searcher:
        scorer = Scorer(reader)
        clauses = [[(t,)] for t in dict.fromkeys(analyze(query)) if scorer.doc_frequency(t)]
        scores, _ = scorer.score(clauses)
        hits = [(searcher.stored_fields(int(d))["id"], float(scores[d])) for d in np.flatnonzero(scores > 0)]
    return sorted(hits, key=lambda h: (-h[1], h[0]))


def assert_same_ranking(ours: list[tuple[str, float]], theirs: list[tuple[str, float]], query: str,
                        top: int = 5, near_tie: float = 0.01) -> None:
    """Same hits, same top ``top`` ids in the same order; only hits whose scores are within
    ``near_tie`` of each other may swap. Whoosh keeps a document's field lengths in one byte,
    and a merged segment totals those rounded lengths, so an updated index's scores differ
    from a fresh build's in the third or fourth digit: ids are compared, not scores."""
    a, b = dict(ours), dict(theirs)
    assert a.keys() == b.keys(), query
    best = [doc_id for doc_id, _ in ours[:top]]
    assert set(best) == {doc_id for doc_id, _ in theirs[:top]}, query
    for x in best:
        for y in best:
            if a[x] > a[y] * (1 + near_tie) or b[x] > b[y] * (1 + near_tie):
                assert a[x] > a[y] and b[x] > b[y], (query, x, y)


def term_statistics(generation: Path, queries=QUERIES) -> dict:
    """What the service's scoring is computed from, besides field lengths: live document
    counts and frequencies (Whoosh's own counts include deleted documents until a merge)."""
    ix = whoosh_index.open_dir(str(generation))
    with ix.reader() as reader:
        scorer = Scorer(reader)
        stats = {"doc_count": scorer.n, "avglen": {f: round(v, 9) for f, v in scorer.avglen.items()}}
        for query in queries:
            for term in analyze(query):
                for field in SEARCH_FIELDS:
                    stats[field, term] = len(scorer.postings(field, term)[0])
    return stats


def derived_content(generation: Path) -> dict:
    """The derived arrays (``indexer.derived``) by section id rather than document number,
    which an update and a full build assign differently: live postings and field lengths."""
    ix = whoosh_index.open_dir(str(generation))
    derived = open_derived(generation, ix)
    assert derived is not None
    with ix.searcher() as searcher:
        ids = {d: searcher.stored_fields(d)["id"] for d in np.flatnonzero(derived.live).tolist()}
        out: dict = {"live": sorted(ids.values())}
        for field in SEARCH_FIELDS:
            out[field, "len"] = {ids[d]: derived.lengths[field][d] for d in ids}
            for term in {bytes(t).decode() for seg in derived.segments for t in seg.tables[field].terms}:
                docs, tf = derived.postings(field, term)
                if len(docs):
                    out[field, term] = {ids[d]: f for d, f in zip(docs.tolist(), tf.tolist(), strict=True)}
    return out


def link_index(generation: Path) -> dict[str, list[tuple]]:
    """The catalog's link index (what ``LinkMap`` is built from), every table's rows sorted."""
    conn = sqlite3.connect(generation / CATALOG)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("link_claims", "link_hosts", "link_refs")}
    finally:
        conn.close()


def vocabulary_arrays(generation: Path) -> dict[str, tuple]:
    """The speller's arrays (``indexer.spelltable``): dtype and content of each."""
    out = {}
    for kind in spelltable.FILES:
        array = np.load(spelltable._path(generation, kind), allow_pickle=False)
        out[kind] = (array.dtype.str, array.tolist())
    return out


def generation_names(index_dir: Path) -> list[str]:
    return sorted(p.name for p in (Path(index_dir) / GENERATIONS).iterdir())


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def issue_list(report) -> list[tuple]:
    return sorted((i.source, i.level, i.code, i.message) for i in report.issues)


def assert_same_as_full_rebuild(config, make_config, tmp_path, report) -> None:
    """The served index (and the update's ``report``) hold exactly what a full build of the
    same corpus holds."""
    fresh = make_config(config.corpus_dir, tmp_path / "fresh-index", max_section_loss=1.0)
    full = build(fresh)
    assert (report.articles, report.sections, report.links) == (full.articles, full.sections, full.links)
    assert issue_list(report) == issue_list(full)
    updated, rebuilt = served(config.index_dir), served(fresh.index_dir)
    assert documents(updated) == documents(rebuilt)
    # Deleted documents must not count in the statistics the ranking uses.
    assert term_statistics(updated) == term_statistics(rebuilt)
    assert derived_content(updated) == derived_content(rebuilt)
    for query in QUERIES:
        assert_same_ranking(ranking(updated, query), ranking(rebuilt, query), query)
    ours, theirs = read_catalog(updated / CATALOG), read_catalog(rebuilt / CATALOG)
    assert {s: (r["slug"], r["doc_hash"], r["links"]) for s, r in ours.items()} == {
        s: (r["slug"], r["doc_hash"], r["links"]) for s, r in theirs.items()
    }
    assert link_index(updated) == link_index(rebuilt)
    assert vocabulary_arrays(updated) == vocabulary_arrays(rebuilt)


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    """One full build of the real corpus, shared read-only by this module's tests."""
    root = tmp_path_factory.mktemp("first-build")
    shutil.copytree(CORPUS, root / "corpus")
    config = load_config(env={}, corpus_dir=root / "corpus", index_dir=root / "index")
    return build(config), config


@pytest.fixture
def built(first_build, tmp_path, make_config):
    """Config for private copies of the real corpus and of an index already built from it."""
    report, source = first_build
    shutil.copytree(source.corpus_dir, tmp_path / "corpus")
    shutil.copytree(source.index_dir, tmp_path / "index")
    return make_config(tmp_path / "corpus", tmp_path / "index")


# --------------------------------------------------------------------------- full build


def test_build_publishes_a_generation_and_points_current_at_it(first_build):
    report, config = first_build
    index_dir = Path(config.index_dir)
    assert report.published and report.mode == "full"
    assert re.fullmatch(r"000001-\d{8}T\d{6}Z", report.generation)
    assert (index_dir / CURRENT).read_text(encoding="utf-8").strip() == report.generation
    assert generation_names(index_dir) == [report.generation]
    info = json.loads((index_dir / GENERATIONS / report.generation / GENERATION_INFO).read_text())
    assert info["id"] == report.generation and info["sections"] == 46 and info["schema_version"] >= 1
    assert not list((index_dir / GENERATIONS).glob(".tmp-*"))


def test_build_report_counts_articles_sections_and_links(first_build):
    report, _ = first_build
    assert (report.articles, report.sections, report.links) == (4, 46, 9)
    assert report.errors == []
    assert report.added == sorted([GOALS, ANALYSIS, ONLINE, NOTES])
    assert report.rewritten == report.added
    assert report.as_dict()["errors"] == 0


def test_index_holds_one_document_per_section_with_everything_a_response_needs(first_build):
    _, config = first_build
    docs = documents(served(config.index_dir))
    assert len(docs) == 46
    works = docs["goals-of-psychotherapy#how-psychotherapy-works"]
    assert works["question"] == "How Psychotherapy Works"
    assert works["title"] == "Goals of Psychotherapy: What Therapy Can Help You Achieve"
    meta = works["meta"]
    assert meta["url"] == "/goals-of-psychotherapy/#how-psychotherapy-works"
    assert meta["related"] == [{
        "slug": "can-psychotherapy-notes-be-subpoenaed",
        "title": "Can Psychotherapy Notes Be Subpoenaed? What Clients Should Know",
        "url": "/can-psychotherapy-notes-be-subpoenaed/",
    }]
    five_ps = docs["goals-of-psychotherapy#the-5-ps-in-psychotherapy"]["meta"]
    assert five_ps["breadcrumbs"] == [works["title"], "Psychotherapy Techniques"]
    assert five_ps["level"] == 3 and five_ps["related"] == []
    begin = docs["goals-of-psychotherapy#how-to-begin-and-find-therapeutic-help"]["meta"]
    assert [r["slug"] for r in begin["related"]] == ["online-therapy-new-york-city"]


def test_parsing_in_worker_processes_builds_the_same_index(first_build, config, monkeypatch):
    monkeypatch.setattr(publish, "PARALLEL_PARSE_MIN", 1)  # use the process pool even for 4 pages
    seen = []

    def progress(items, total=None):  # the CLI's progress bar takes the same arguments
        seen.append(total)
        return items

    report = build(config, progress=progress)
    assert report.published and report.errors == []
    assert documents(served(config.index_dir)) == documents(served(first_build[1].index_dir))
    assert seen == [4] or (os.cpu_count() or 1) == 1


def test_catalog_records_each_article_with_its_resolved_links(first_build):
    _, config = first_build
    catalog = read_catalog(served(config.index_dir) / CATALOG)
    assert sorted(catalog) == sorted([GOALS, ANALYSIS, ONLINE, NOTES])
    goals = catalog[GOALS]
    assert (goals["slug"], goals["sections"], goals["url"]) == ("goals-of-psychotherapy", 20, "/goals-of-psychotherapy/")
    assert [(lk["slug"], lk["kind"]) for lk in goals["links"]] == [
        ("can-psychotherapy-notes-be-subpoenaed", "internal"),
        ("how-long-does-psychoanalysis-take", "internal"),
        ("online-therapy-new-york-city", "internal"),
    ]


def test_a_bad_file_is_reported_and_the_rest_is_published(small_corpus, make_config):
    config = make_config(small_corpus())
    (Path(config.corpus_dir) / "empty.html").write_bytes(b"")
    report = build(config)
    assert report.published and report.articles == 3
    assert [(i.source, i.code) for i in report.errors] == [("empty.html", "empty")]


def test_duplicate_slug_keeps_the_first_file_by_path(small_corpus, make_config, write_page):
    corpus = small_corpus()
    write_page(corpus, "zz-copy.html", "A Copy of the Grief Page", page_body(slug="c", topic="Copying"),
               canonical="https://mypsychotherapy.example/grief/")
    config = make_config(corpus)
    report = build(config)
    assert [(i.source, i.code) for i in report.errors] == [("zz-copy.html", "duplicate-slug")]
    assert report.articles == 3
    assert documents(served(config.index_dir))["grief#grief-one"]["question"] == "About Grief"


def test_empty_corpus_raises_build_error_and_publishes_nothing(tmp_path, make_config):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "README.md").write_text("# nothing here\n")
    config = make_config(corpus)
    with pytest.raises(BuildError, match=r"holds no \.html or \.htm file") as info:
        build(config)
    assert type(info.value) is BuildError and info.value.exit_code == 1
    assert current_generation(Path(config.index_dir)) is None
    assert generation_names(config.index_dir) == []


def test_missing_corpus_folder_and_unknown_mode_are_build_errors(tmp_path, make_config, corpus_copy):
    with pytest.raises(BuildError, match="does not exist"):
        build(make_config(tmp_path / "nowhere"))
    with pytest.raises(BuildError, match="unknown build mode"):
        build(make_config(corpus_copy), mode="sideways")


def test_every_full_build_publishes_a_new_numbered_generation(small_corpus, make_config):
    config = make_config(small_corpus())
    first, second = build(config), build(config)
    assert first.generation.startswith("000001-") and second.generation.startswith("000002-")
    assert served(config.index_dir).name == second.generation


def test_prune_keeps_keep_generations_including_the_served_one(small_corpus, make_config):
    config = make_config(small_corpus(), keep_generations=2)
    reports = [build(config) for _ in range(4)]
    assert generation_names(config.index_dir) == [r.generation for r in reports[-2:]]
    assert served(config.index_dir).name == reports[-1].generation


# --------------------------------------------------------------------------- incremental update


def test_update_after_editing_one_article_rewrites_only_that_article(built, make_config, tmp_path):
    config = built
    before = served(config.index_dir)
    edit(Path(config.corpus_dir) / ANALYSIS, "The patient often lies on a couch",
         "The patient often lies on a comfortable couch")
    report = build(config, mode="update")
    assert report.published and report.mode == "update"
    assert (report.added, report.changed, report.removed) == ([], [ANALYSIS], [])
    assert report.rewritten == [ANALYSIS]
    assert served(config.index_dir) != before
    docs = documents(served(config.index_dir))
    assert "comfortable couch" in docs["how-long-does-psychoanalysis-take#how-often-are-sessions"]["answer"]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_never_writes_to_the_files_of_the_served_generation(built):
    config = built
    before = served(config.index_dir)
    old_docs = documents(before)
    snapshot = {p.name: p.read_bytes() for p in before.iterdir()}
    edit(Path(config.corpus_dir) / ANALYSIS, "The patient often lies on a couch", "Patients often lie on a couch")
    synonyms = Path(config.corpus_dir) / "synonyms.txt"
    synonyms.write_text(synonyms.read_text() + "grief, bereavement\n", encoding="utf-8")
    assert build(config, mode="update").published
    # The new generation shares (hard-links) files with this one: none was written in place.
    assert {p.name: p.read_bytes() for p in before.iterdir()} == snapshot
    assert documents(before) == old_docs


def test_update_after_a_title_change_rewrites_the_articles_that_link_to_it(built, make_config, tmp_path):
    config = built
    edit(Path(config.corpus_dir) / GOALS, "<h1 class=\"entry-title\">Goals of Psychotherapy: What Therapy Can Help You Achieve",
         "<h1 class=\"entry-title\">The Goals of Psychotherapy")
    edit(Path(config.corpus_dir) / GOALS, "<title>Goals of Psychotherapy: What Therapy Can Help You Achieve",
         "<title>The Goals of Psychotherapy")
    edit(Path(config.corpus_dir) / GOALS, '"og:title" content="Goals of Psychotherapy: What Therapy Can Help You Achieve',
         '"og:title" content="The Goals of Psychotherapy')
    edit(Path(config.corpus_dir) / GOALS, '"headline": "Goals of Psychotherapy: What Therapy Can Help You Achieve',
         '"headline": "The Goals of Psychotherapy')
    report = build(config, mode="update")
    # Every other article links to the goals page: their "related" entries carry its title.
    assert report.rewritten == sorted([GOALS, ANALYSIS, ONLINE, NOTES])
    docs = documents(served(config.index_dir))
    related = docs["online-therapy-new-york-city#what-is-online-therapy"]["meta"]["related"]
    assert related[0]["title"] == "The Goals of Psychotherapy"
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_after_adding_a_file_indexes_it_and_fixes_links_that_pointed_to_it(
        config, make_config, tmp_path, write_page):
    corpus = Path(config.corpus_dir)
    write_page(corpus, "further-reading.html", "Further Reading",
               '<h2 id="more">More</h2><p>Our page on <a href="/grief-counselling/">grief counselling</a> '
               "explains what to expect in the first weeks after a loss, and how therapy can help.</p>")
    first = build(config)
    assert [i.code for i in first.issues if i.source == "further-reading.html"] == ["broken-link"]
    write_page(corpus, "grief-counselling.html", "Grief Counselling", page_body(slug="grief", topic="Grief"))
    report = build(config, mode="update")
    assert report.added == ["grief-counselling.html"]
    assert report.rewritten == ["further-reading.html", "grief-counselling.html"]
    assert report.articles == 6 and "broken-link" not in [i.code for i in report.issues]
    docs = documents(served(config.index_dir))
    assert docs["further-reading#more"]["meta"]["related"][0]["slug"] == "grief-counselling"
    assert "grief-counselling#grief-one" in docs
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_after_removing_a_file_drops_its_documents_and_breaks_links_to_it(built, make_config, tmp_path):
    config = built.replace(max_section_loss=0.5)
    (Path(config.corpus_dir) / ONLINE).unlink()
    report = build(config, mode="update")
    assert report.published and report.removed == [ONLINE]
    assert report.rewritten == sorted([GOALS, ANALYSIS, NOTES])  # each of them linked to it
    assert report.articles == 3 and report.sections == 38
    docs = documents(served(config.index_dir))
    assert not [d for d in docs if d.startswith("online-therapy-new-york-city#")]
    assert sorted(i.source for i in report.issues if i.code == "broken-link") == sorted([GOALS, ANALYSIS, NOTES])
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_after_a_file_becomes_unparseable_drops_its_documents_like_a_full_build(
        built, make_config, tmp_path):
    config = built.replace(max_section_loss=0.5)
    (Path(config.corpus_dir) / ANALYSIS).write_bytes(b"")
    report = build(config, mode="update")
    assert report.published
    assert report.changed == [ANALYSIS] and report.removed == [ANALYSIS]
    assert report.sections == 38
    assert not [d for d in documents(served(config.index_dir)) if d.startswith("how-long-does-psychoanalysis-take#")]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_with_no_change_publishes_nothing(built):
    config = built
    first = served(config.index_dir).name
    index_dir = Path(config.index_dir)
    report = build(config, mode="update")
    assert not report.published
    assert report.generation == first
    assert (report.added, report.changed, report.removed, report.rewritten) == ([], [], [], [])
    assert generation_names(index_dir) == [first]
    assert (index_dir / CURRENT).read_text().strip() == first


def test_generation_carries_the_corpus_synonyms(first_build):
    _, config = first_build
    assert (served(config.index_dir) / "synonyms.txt").read_bytes() == (Path(config.corpus_dir) / "synonyms.txt").read_bytes()


def test_update_after_editing_only_the_synonyms_publishes_them_without_rewriting_articles(built):
    config = built
    before = served(config.index_dir)
    synonyms = Path(config.corpus_dir) / "synonyms.txt"
    original = synonyms.read_bytes()
    synonyms.write_text(synonyms.read_text() + "grief, bereavement\n", encoding="utf-8")
    report = build(config, mode="update")
    assert report.published and report.rewritten == [] and report.removed == []
    assert served(config.index_dir) != before
    assert (before / "synonyms.txt").read_bytes() == original  # the old generation is never written
    assert (served(config.index_dir) / "synonyms.txt").read_text().endswith("grief, bereavement\n")
    assert documents(served(config.index_dir)) == documents(before)
    synonyms.unlink()
    assert build(config, mode="update").published
    assert not (served(config.index_dir) / "synonyms.txt").exists()


def test_update_without_a_served_generation_is_a_full_build(config):
    report = build(config, mode="update")
    assert report.published and report.mode == "full" and report.articles == 4


# --------------------------------------------------------------------------- lock


def test_second_build_raises_build_locked_at_once_while_the_lock_is_held(small_corpus, make_config):
    config = make_config(small_corpus())
    index_dir = Path(config.index_dir)
    with build_lock(index_dir):
        started = time.monotonic()
        with pytest.raises(BuildLocked, match=f"pid {os.getpid()}") as info:
            build(config)
        assert time.monotonic() - started < 1.0  # no waiting: it fails at once
    assert info.value.exit_code == 3
    assert current_generation(index_dir) is None
    assert build(config).published  # the lock is free again


def test_build_with_wait_queues_behind_the_lock_holder(small_corpus, make_config, monkeypatch):
    config = make_config(small_corpus())
    index_dir = Path(config.index_dir)
    held, released = threading.Event(), []
    started = []
    original = publish._build_into
    monkeypatch.setattr(publish, "_build_into", lambda *a, **k: (started.append(time.monotonic()), original(*a, **k)))

    def holder():
        with build_lock(index_dir):
            held.set()
            time.sleep(0.4)
            released.append(time.monotonic())

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    report = build(config, wait=True)
    thread.join(5)
    assert report.published
    assert started[0] >= released[0]


# --------------------------------------------------------------------------- failures


def test_a_failing_build_leaves_the_served_generation_in_place(built, monkeypatch):
    config = built
    first = served(config.index_dir).name
    index_dir = Path(config.index_dir)
    original = publish._build_into

    def crash(tmp, *args, **kwargs):
        original(tmp, *args, **kwargs)
        assert tmp.is_dir()
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(publish, "_build_into", crash)
    edit(Path(config.corpus_dir) / ANALYSIS, "couch", "sofa")
    with pytest.raises(RuntimeError, match="disk on fire"):
        build(config)
    assert (index_dir / CURRENT).read_text().strip() == first
    assert len(documents(served(index_dir))) == 46
    assert generation_names(index_dir) == [first]  # the .tmp-* folder is gone


CHILD = r"""
import sys, time
from pathlib import Path
import indexer.publish as publish
from indexer.settings import load_config
from service.scoring import Scorer

corpus, index_dir, ready = (Path(a) for a in sys.argv[1:4])
original = publish.section_documents

def slow(*args, **kwargs):
    ready.touch()  # the new generation's folder exists and is half written
    time.sleep(60)
    return original(*args, **kwargs)

publish.section_documents = slow
publish.build(load_config(env={}, corpus_dir=corpus, index_dir=index_dir))
"""


def test_a_killed_build_leaves_the_old_generation_and_the_next_build_cleans_up(built, tmp_path):
    config = built
    first = served(config.index_dir).name
    index_dir = Path(config.index_dir)
    edit(Path(config.corpus_dir) / ANALYSIS, "couch", "sofa")
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(config.corpus_dir), str(index_dir), str(ready)],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child build never reached the indexing step"
            time.sleep(0.05)
        with pytest.raises(BuildLocked):  # the child holds the lock while it builds
            build(config)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stderr.close()
    leftovers = list((index_dir / GENERATIONS).glob(".tmp-*"))
    assert len(leftovers) == 1
    assert (index_dir / CURRENT).read_text().strip() == first
    assert len(documents(served(index_dir))) == 46  # the old generation still opens
    report = build(config)  # the dead process's lock is gone with it
    assert report.published
    assert not list((index_dir / GENERATIONS).glob(".tmp-*"))
    assert "sofa" in documents(served(index_dir))["how-long-does-psychoanalysis-take#how-often-are-sessions"]["answer"]


def test_losing_more_than_the_allowed_share_of_sections_is_refused(built):
    config = built
    first = served(config.index_dir).name
    index_dir = Path(config.index_dir)
    (Path(config.corpus_dir) / GOALS).unlink()  # 20 of 46 sections
    with pytest.raises(PublishRefused, match=r"26 sections, 20 fewer than the 46 served \(43%") as info:
        build(config)
    assert info.value.exit_code == 4
    with pytest.raises(PublishRefused):
        build(config, mode="update")
    assert (index_dir / CURRENT).read_text().strip() == first
    assert generation_names(index_dir) == [first]


def test_force_publishes_despite_the_section_loss_and_says_so(built):
    config = built
    (Path(config.corpus_dir) / GOALS).unlink()
    report = build(config, force=True)
    assert report.published and report.sections == 26
    assert [i.code for i in report.issues if i.code == "loss"] == ["loss"]
    assert served(config.index_dir).name == report.generation


def test_a_small_section_loss_is_published(built):
    config = built
    edit(Path(config.corpus_dir) / GOALS, '<h3 id="coping-skills">Coping Skills</h3>', "")  # merges into its neighbour
    report = build(config, mode="update")
    assert report.published and report.sections == 45


def test_a_link_resolves_to_the_article_whose_own_url_it_is_not_to_a_file_of_that_name(
        config, write_page):
    corpus = Path(config.corpus_dir)
    write_page(corpus, "therapy.html", "Counseling", page_body("c", "Counseling"),
               canonical="https://mypsychotherapy.example/counseling/")
    write_page(corpus, "x.html", "Therapy", page_body("t", "Therapy"),
               canonical="https://mypsychotherapy.example/therapy/")
    write_page(corpus, "linker.html", "Linker",
               '<h2 id="l">Links</h2><p>Read <a href="https://mypsychotherapy.example/therapy/">about therapy</a> '
               "before the first session; it explains what the weekly work looks like.</p>")
    build(config)
    docs = documents(served(config.index_dir))
    # x.html's canonical is /therapy/, so its slug is "therapy"; therapy.html is "counseling".
    assert docs["linker#l"]["meta"]["related"][0]["slug"] == "therapy"
    assert docs["linker#l"]["meta"]["related"][0]["title"] == "Therapy"


def test_update_resolves_links_exactly_as_a_full_build_whatever_changed(
        config, make_config, tmp_path, write_page):
    corpus = Path(config.corpus_dir)
    write_two_claims_to_zeta(corpus, write_page)
    build(config)
    write_page(corpus, "zeta.html", "Zeta", page_body("z", "Zebras and more"),
               canonical="https://mypsychotherapy.example/other/")
    report = build(config, mode="update")
    assert documents(served(config.index_dir))["linker#l"]["meta"]["related"][0]["slug"] == "zeta"
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_a_new_file_with_an_earlier_path_takes_the_slug_in_an_update_as_in_a_full_build(
        config, make_config, tmp_path, write_page):
    corpus = Path(config.corpus_dir)
    write_page(corpus / "b", "foo.html", "Foo B", page_body("fb", "Bees"))
    build(config)
    write_page(corpus / "a", "foo.html", "Foo A", page_body("fa", "Ants"))
    report = build(config, mode="update")
    assert "foo#fa-one" in documents(served(config.index_dir))
    assert "foo#fb-one" not in documents(served(config.index_dir))
    assert [(i.source, i.code) for i in report.errors] == [("b/foo.html", "duplicate-slug")]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


# --------------------------------------------------------------------------- integrity


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(size)


def test_a_full_build_and_an_update_each_publish_a_manifest_that_matches_every_file(built):
    config = built
    assert verify_folder(served(config.index_dir)) == []
    edit(Path(config.corpus_dir) / ANALYSIS, "The patient often lies on a couch", "Patients often lie on a couch")
    assert build(config, mode="update").published
    updated = served(config.index_dir)
    assert verify_folder(updated) == []
    # Entries taken over from the checked served generation are those a fresh hash gives.
    assert read_manifest(updated) == compute_manifest(updated)


def test_update_over_a_truncated_served_segment_builds_in_full_and_publishes_an_intact_generation(built):
    config = built
    damaged = served(config.index_dir)
    segment = next(damaged.glob("MAIN_*.pst"))
    truncate(segment, segment.stat().st_size // 3)
    report = build(config, mode="update")  # the corpus did not change: before, "nothing changed"
    assert report.published and report.mode == "full"
    [issue] = [i for i in report.issues if i.code == "damaged"]
    assert segment.name in issue.message and damaged.name in issue.message
    fresh = served(config.index_dir)
    assert fresh != damaged and verify_folder(fresh) == []
    damaged_inodes = {p.stat().st_ino for p in damaged.iterdir()}
    assert not damaged_inodes & {p.stat().st_ino for p in fresh.iterdir()}  # nothing hard-linked
    assert len(documents(fresh)) == 46


def test_update_over_a_truncated_catalog_builds_in_full_instead_of_failing(built):
    config = built
    damaged = served(config.index_dir)
    truncate(damaged / CATALOG, 0)
    report = build(config, mode="update")
    assert report.published and report.mode == "full" and report.articles == 4
    assert verify_folder(served(config.index_dir)) == []


def test_update_over_an_unreadable_catalog_without_a_manifest_builds_in_full(built):
    config = built
    old = served(config.index_dir)
    (old / MANIFEST).unlink()  # as built before manifests: nothing to check the catalog against
    truncate(old / CATALOG, 4096)
    report = build(config, mode="update")
    assert report.published and report.mode == "full"
    assert [i.code for i in report.issues if i.source == "(index)"] == ["unverified"]
    assert verify_folder(served(config.index_dir)) == []


def test_update_from_a_generation_built_before_manifests_builds_in_full_once(built):
    config = built
    (served(config.index_dir) / MANIFEST).unlink()
    first = build(config, mode="update")
    assert first.published and first.mode == "full"
    again = build(config, mode="update")
    assert again.mode == "update" and not again.published


def test_a_generation_that_does_not_match_its_manifest_is_not_published(built, monkeypatch):
    config = built
    before = served(config.index_dir).name
    real_write = publish.write_manifest

    def write_then_damage(folder, known=None, **kwargs):
        manifest = real_write(folder, known, **kwargs)
        truncate(folder / CATALOG, 10)
        return manifest

    monkeypatch.setattr(publish, "write_manifest", write_then_damage)
    with pytest.raises(BuildError, match="does not match its manifest"):
        build(config)
    assert served(config.index_dir).name == before
    assert generation_names(Path(config.index_dir)) == [before]


def test_an_index_folder_whose_path_holds_uri_characters_is_updated_incrementally(corpus_copy, make_config, tmp_path):
    """Its catalog was opened as a URI with the path unescaped: "?" and "#" cut it short, the
    catalog "could not be read" and every update silently became a full build."""
    config = make_config(corpus_copy, tmp_path / "index ?#%")
    build(config)
    edit(Path(config.corpus_dir) / GOALS, "Therapy encourages clearer communication",
         "Therapy encourages calmer, clearer communication")
    report = build(config, mode="update")
    assert report.mode == "update" and report.rewritten == [GOALS]
    assert not [i for i in report.issues if i.code == "damaged"]
    assert read_catalog(served(config.index_dir) / CATALOG)



def test_update_after_removing_the_article_a_link_named_resolves_it_to_the_next_claim_like_a_full_build(
        config, make_config, tmp_path, write_page):
    corpus = Path(config.corpus_dir)
    write_two_claims_to_zeta(corpus, write_page)
    build(config)
    # Slugs come from the canonical URLs: p.html is "zeta", zeta.html is "other".
    assert documents(served(config.index_dir))["linker#l"]["meta"]["related"][0]["slug"] == "zeta"
    (corpus / "p.html").unlink()
    report = build(config, mode="update")
    assert report.mode == "update" and "linker.html" in report.rewritten
    # "/zeta/" was p.html's own URL; now only zeta.html's file name claims it.
    assert documents(served(config.index_dir))["linker#l"]["meta"]["related"][0]["slug"] == "other"
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_after_a_canonical_makes_a_host_the_sites_own_resolves_every_link_again(
        config, make_config, tmp_path, write_page):
    corpus = Path(config.corpus_dir)
    write_page(corpus, "linker.html", "Linker",
               '<h2 id="l">Links</h2><p>See <a href="https://blog.example.org/calm/">the calm page</a> before the '
               "first session; it explains what the weekly work looks like in some detail.</p>")
    build(config)
    assert documents(served(config.index_dir))["linker#l"]["meta"]["related"] == []
    write_page(corpus, "calm.html", "Calm", page_body("c", "Calm"), canonical="https://blog.example.org/calm/")
    report = build(config, mode="update")
    assert report.mode == "update" and report.rewritten == ["calm.html", "linker.html"]
    assert documents(served(config.index_dir))["linker#l"]["meta"]["related"][0]["slug"] == "calm"
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_from_a_catalog_without_the_link_index_fills_it_in(built, make_config, tmp_path):
    config = built
    old = served(config.index_dir)
    conn = sqlite3.connect(old / CATALOG)  # as a generation built before the link index
    conn.executescript("DROP TABLE link_claims; DROP TABLE link_hosts; DROP TABLE link_refs; "
                       "DELETE FROM meta WHERE key = 'link_index';")
    conn.close()
    write_manifest(old)
    edit(Path(config.corpus_dir) / ANALYSIS, "The patient often lies on a couch", "Patients often lie on a couch")
    report = build(config, mode="update")
    assert report.mode == "update" and report.rewritten == [ANALYSIS]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_applies_the_vocabulary_changes_without_counting_every_article_again(
        built, make_config, tmp_path, monkeypatch):
    config = built

    def no_full_count(*args, **kwargs):
        raise AssertionError("an update counted every article's words")

    monkeypatch.setattr(publish, "count_words", no_full_count)
    edit(Path(config.corpus_dir) / ANALYSIS, "The patient often lies on a couch",
         "The patient often lies on a chaiselongue")  # a word no article used: a new speller entry
    report = build(config, mode="update")
    assert report.rewritten == [ANALYSIS]
    words = np.load(spelltable._path(served(config.index_dir), "table_words")).tolist()
    assert b"chaiselongue" in words
    monkeypatch.undo()
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


# --------------------------------------------------------------------------- stat shortcuts


@pytest.fixture
def later(monkeypatch):
    """Clocks an hour ahead, so that every file looks written long before the build looked at
    it: stamps and hash records are taken (and trusted) as they are for files edited earlier."""
    hour = 3600 * 10**9
    monkeypatch.setattr(publish, "_now_ns", lambda: time.time_ns() + hour)
    monkeypatch.setattr(manifest, "_now_ns", lambda: time.time_ns() + hour)


@pytest.fixture
def reads(monkeypatch, built):
    """The corpus pages an update opens, and the generation files it hashes."""
    corpus = str(Path(built.corpus_dir))
    opened: dict[str, list[str]] = {"pages": [], "hashed": []}
    real_open, real_hash = open, manifest.file_sha256

    def spy_open(path, *args, **kwargs):
        if str(path).startswith(corpus):
            opened["pages"].append(os.path.relpath(path, corpus))
        return real_open(path, *args, **kwargs)

    def spy_hash(path):
        opened["hashed"].append(Path(path).name)
        return real_hash(path)

    monkeypatch.setattr(publish, "open", spy_open, raising=False)
    monkeypatch.setattr(manifest, "file_sha256", spy_hash)
    return opened


def test_an_update_reads_only_the_pages_whose_stat_changed(built, make_config, tmp_path, later, reads):
    config = built
    assert not build(config, mode="update").published  # the first one reads all and takes stamps
    assert sorted(reads["pages"]) == sorted([GOALS, ANALYSIS, ONLINE, NOTES])
    reads["pages"].clear()
    assert not build(config, mode="update").published
    assert reads["pages"] == []
    edit(Path(config.corpus_dir) / ANALYSIS, "The patient often lies on a couch",
         "The patient often lies on a comfortable couch")
    report = build(config, mode="update")
    assert report.changed == [ANALYSIS] and report.rewritten == [ANALYSIS]
    assert reads["pages"] == [ANALYSIS]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_an_edit_that_keeps_the_size_and_the_mtime_is_still_found(built, make_config, tmp_path, later, reads):
    config = built
    build(config, mode="update")
    page = Path(config.corpus_dir) / ANALYSIS
    before = page.stat()
    edit(page, "The patient often lies on a couch", "The patient often lies on a divan")  # "couch" → "divan"
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` would
    after = page.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    reads["pages"].clear()
    report = build(config, mode="update")
    assert report.changed == [ANALYSIS] and reads["pages"] == [ANALYSIS]
    assert "divan" in documents(served(config.index_dir))["how-long-does-psychoanalysis-take#how-often-are-sessions"]["answer"]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_a_page_replaced_by_another_file_is_read_again(built, later, reads):
    config = built
    build(config, mode="update")
    page = Path(config.corpus_dir) / ANALYSIS
    before = page.stat()
    text = page.read_text(encoding="utf-8").replace("The patient often lies on a couch", "The patient often lies on a divan")
    replacement = page.with_name(".new")
    replacement.write_text(text, encoding="utf-8")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, page)  # an editor's atomic save: a new inode
    reads["pages"].clear()
    assert build(config, mode="update").changed == [ANALYSIS]
    assert reads["pages"] == [ANALYSIS]


def test_pages_written_within_a_clock_tick_of_the_scan_get_no_stamp_and_are_read_again(
        built, reads, monkeypatch):
    config = built
    copied = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in Path(config.corpus_dir).iterdir())
    monkeypatch.setattr(publish, "_now_ns", lambda: copied + 1)  # the scan starts as the last copy ends
    build(config, mode="update")
    monkeypatch.setattr(publish, "_now_ns", time.time_ns)
    reads["pages"].clear()
    build(config, mode="update")
    assert sorted(reads["pages"]) == sorted([GOALS, ANALYSIS, ONLINE, NOTES])


def test_a_stamp_is_taken_only_when_mtime_and_ctime_are_older_than_the_racy_window(tmp_path):
    page = tmp_path / "a.html"
    page.write_text("<p>a</p>")
    st = page.stat()
    stamps = publish.CorpusStamps(None)
    stamps.note("a.html", st, "digest", scan_started_ns=max(st.st_mtime_ns, st.st_ctime_ns) + 1)
    assert stamps.fresh == {}  # a write later in the same clock tick would keep the same stamp
    stamps.note("a.html", st, "digest", scan_started_ns=max(st.st_mtime_ns, st.st_ctime_ns)
                + manifest.racy_window_ns(st.st_mtime_ns, st.st_ctime_ns) + 1)
    assert stamps.fresh == {"a.html": (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, "digest")}
    assert not stamps.vouches("a.html", st, "digest")  # only recorded stamps vouch
    assert not publish.CorpusStamps(None, trust=False).vouches("a.html", st, "digest")


def test_update_with_rehash_reads_every_page_and_hashes_every_served_file(built, later, reads):
    config = built
    build(config, mode="update")
    reads["pages"].clear()
    reads["hashed"].clear()
    assert not build(config, mode="update", rehash=True).published
    assert sorted(reads["pages"]) == sorted([GOALS, ANALYSIS, ONLINE, NOTES])
    assert sorted(reads["hashed"]) == sorted(p.name for p in served(config.index_dir).iterdir() if p.name != MANIFEST)


def test_damaged_stamp_and_hash_records_are_ignored_and_rebuilt(built, later, reads):
    config = built
    build(config, mode="update")
    index_dir = Path(config.index_dir)
    (index_dir / publish.STAMPS).write_bytes(b"this is not a database" * 100)
    (index_dir / manifest.VERIFIED).write_text("{not json", encoding="utf-8")
    reads["pages"].clear()
    assert not build(config, mode="update").published
    assert len(reads["pages"]) == 4
    reads["pages"].clear()
    reads["hashed"].clear()
    assert not build(config, mode="update").published
    assert reads["pages"] == [] and reads["hashed"] == []


def test_a_page_that_changes_while_an_update_reads_it_is_refused(tmp_path):
    (tmp_path / "a.html").write_bytes(b"<p>now</p>")
    pages = publish.Pages(tmp_path, None, known={"a.html": "digest of what was there before"})
    pages.unchanged.add("a.html")
    with pytest.raises(BuildError, match="changed while the update ran"):
        pages["a.html"]


def test_the_served_files_are_hashed_once_then_trusted_while_their_stat_holds(built, later, reads):
    config = built
    build(config, mode="update")  # hashes the served generation (a copy: no record fits it)
    assert reads["hashed"]
    reads["hashed"].clear()
    assert not build(config, mode="update").published
    assert reads["hashed"] == []


def test_an_update_over_a_served_file_changed_in_place_builds_in_full_despite_the_records(built, later, reads):
    config = built
    build(config, mode="update")
    damaged = served(config.index_dir)
    segment = next(damaged.glob("MAIN_*.pst"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))  # same size, a new mtime
    report = build(config, mode="update")
    assert report.published and report.mode == "full"
    [issue] = [i for i in report.issues if i.code == "damaged"]
    assert segment.name in issue.message and "SHA-256" in issue.message
    assert verify_folder(served(config.index_dir)) == []


def test_update_with_rehash_finds_damage_that_kept_the_size_and_the_mtime(built, later):
    config = built
    build(config, mode="update")
    damaged = served(config.index_dir)
    segment = next(damaged.glob("MAIN_*.pst"))
    st = segment.stat()
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    os.utime(segment, ns=(st.st_atime_ns, st.st_mtime_ns))  # a failing disk, or `touch -d`
    report = build(config, mode="update", rehash=True)
    assert report.published and report.mode == "full"
    assert [i.code for i in report.issues if i.source == "(index)"] == ["damaged"]
    assert verify_folder(served(config.index_dir)) == []


SEGMENTS = st.sampled_from(["zeta", "Zeta", "other", "index.html", "a%20b", "caf\u00e9", "x.htm", ""])
ENTRY = st.tuples(SEGMENTS, SEGMENTS, st.one_of(st.none(), st.sampled_from(
    ["https://mypsychotherapy.example/zeta/", "https://blog.example.org/zeta", "/other/", "https://x.example/"])))


@settings(max_examples=200, deadline=None)
@given(st.lists(ENTRY, max_size=6))
def test_the_link_index_claims_exactly_what_link_map_resolves(raw):
    entries = [(f"s{i}-{a}".strip("-") or f"s{i}", f"/{b}/", canonical, f"{a or 'page'}{i}.html")
               for i, (a, b, canonical) in enumerate(raw)]
    best: dict[str, tuple] = {}
    hosts = {"mypsychotherapy.example"}
    for slug, url, canonical, source in entries:
        keys, host = publish._link_claims(slug, url, canonical, source)
        hosts.update([host] if host else [])
        for key, rank in keys:
            best[key] = min(best.get(key, (rank, source, slug)), (rank, source, slug))
    link_map = LinkMap(entries, "https://mypsychotherapy.example/")
    assert link_map.by_key == {key: claim[2] for key, claim in best.items()}
    assert link_map.hosts == hosts


def test_update_after_an_article_moves_to_another_url_resolves_links_to_it_like_a_full_build(
        config, make_config, tmp_path, write_page):
    corpus = Path(config.corpus_dir)
    write_page(corpus, "p.html", "P", page_body("p", "Pebbles"), canonical="https://mypsychotherapy.example/zeta/")
    write_page(corpus, "linker.html", "Linker",
               '<h2 id="l">Links</h2><p>See <a href="/zeta/">the zeta page</a> and <a href="/p.html">the same '
               "page by its file</a> before the first session; it explains the weekly work in some detail.</p>")
    build(config)
    write_page(corpus, "p.html", "P", page_body("p", "Pebbles"), canonical="https://mypsychotherapy.example/zeta-new/")
    report = build(config, mode="update")
    assert report.mode == "update" and report.rewritten == ["linker.html", "p.html"]
    assert [r["slug"] for r in documents(served(config.index_dir))["linker#l"]["meta"]["related"]] == ["zeta-new"]
    assert "broken-link" in [i.code for i in report.issues if i.source == "linker.html"]
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)


def test_update_counts_from_the_served_totals_and_from_the_catalog_when_they_are_not_recorded(
        built, make_config, tmp_path):
    config = built
    old = served(config.index_dir)
    info = json.loads((old / GENERATION_INFO).read_text(encoding="utf-8"))
    assert (info["articles"], info["sections"], info["links"]) == (4, 46, 9)
    del info["links"]  # as a build that did not record it
    (old / GENERATION_INFO).write_text(json.dumps(info), encoding="utf-8")
    write_manifest(old)
    nothing = build(config, mode="update")
    assert not nothing.published and (nothing.articles, nothing.sections, nothing.links) == (4, 46, 9)
    (Path(config.corpus_dir) / ONLINE).unlink()
    report = build(config.replace(max_section_loss=0.5), mode="update")
    assert report.published and (report.articles, report.sections) == (3, 38)
    assert_same_as_full_rebuild(config, make_config, tmp_path, report)
