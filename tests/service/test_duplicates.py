"""Sections repeated word for word across articles (a "Book a consultation" block on every
page) count once: in the results and in ``total``, whatever the page size."""

from __future__ import annotations

import pytest

from indexer.publish import build
from indexer.settings import load_config
from service.search import Engine

ARTICLES = 30
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Topic {n}</title></head><body>
<article><h1>Topic {n}</h1>
<h2 id="unique">Anxiety and topic {n}</h2><p>Anxiety shows up in topic {n} as worry number {n}.</p>
<h2 id="help">Anxiety help</h2><p>Call the practice about anxiety help today.</p>
</article></body></html>"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    root = tmp_path_factory.mktemp("dups")
    (root / "corpus").mkdir()
    for n in range(ARTICLES):
        (root / "corpus" / f"topic-{n:02d}.html").write_text(PAGE.format(n=n), encoding="utf-8")
    config = load_config(env={}, corpus_dir=root / "corpus", index_dir=root / "index")
    build(config)
    return Engine(config)


def answers(result: dict) -> list[str]:
    return [r["answer"] for r in result["results"]]


def test_a_repeated_section_appears_once_and_does_not_empty_the_page(engine):
    page = engine.search("anxiety", limit=10)
    assert len(page["results"]) == 10
    assert len(set(answers(page))) == 10
    assert sum("Call the practice" in a for a in answers(engine.search("anxiety", limit=50))) == 1


def test_total_counts_distinct_answers_whatever_the_page_size(engine):
    totals = {engine.search("anxiety", limit=n)["total"] for n in (1, 3, 10, 50)}
    assert totals == {ARTICLES + 1}


def test_paging_walks_through_every_distinct_section_once(engine):
    seen = []
    for offset in range(0, ARTICLES + 10, 7):
        seen += answers(engine.search("anxiety", limit=7, offset=offset))
    assert len(seen) == ARTICLES + 1 == len(set(seen))
