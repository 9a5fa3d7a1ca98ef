"""The loaders and HTML renderers of the shared data (``eval.datasets``); the ones that need
the data are skipped when ``../shared/data`` is absent."""

from __future__ import annotations

import html

import pytest

from eval.datasets import (
    evaluated_liveqa,
    load_counselchat,
    load_liveqa_queries,
    load_medquad,
    load_qrels,
    render_counselchat,
    render_medquad,
    shared_data_dir,
    split_questions,
)
from indexer.corpus import parse_page

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None,
    reason="shared evaluation data not found: set FAQ_SHARED_DATA or put it at ../shared/data",
)


@needs_data
def test_counselchat_grouping_follows_protocol_b():
    questions = load_counselchat(DATA)
    assert len(questions) == 824
    assert len(split_questions(questions, "test")) == 41
    assert sum(len(q["answers"]) for q in questions) == 2009


@needs_data
def test_liveqa_loaders():
    queries, qrels = load_liveqa_queries(DATA), load_qrels(DATA)
    assert len(queries) == 104
    assert len(evaluated_liveqa(queries, qrels)) == 39
    assert sum(len(v) for v in qrels.values()) == 513


@needs_data
def test_rendered_pages_map_back_through_the_real_splitter(tmp_path):
    docs = load_medquad(DATA)[:40]
    mapping = render_medquad(tmp_path / "mq", docs)
    assert len(mapping) == sum(len(d["qa"]) for d in docs)
    found = set()
    for path in sorted((tmp_path / "mq").glob("*.html")):
        article, _ = parse_page(path.read_bytes(), path.name)
        assert article is not None
        found |= {f"{article.slug}#{s.anchor}" for s in article.sections}
    assert found == set(mapping.values())

    questions = load_counselchat(DATA)
    cc_map = render_counselchat(tmp_path / "cc", questions)
    assert len(set(cc_map.values())) == 824
    pages = " ".join(p.read_text(encoding="utf-8") for p in (tmp_path / "cc").glob("*.html"))
    texts = [q["text"].strip() for q in questions if len(q["text"].strip()) > 80]
    leaked = [t for t in texts if html.escape(t[:80]) in pages]
    assert len(leaked) < len(texts) // 20  # questionText is not indexed (only quoted in an answer)


def test_shared_data_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FAQ_SHARED_DATA", str(tmp_path / "nowhere"))
    assert shared_data_dir() is None
    (tmp_path / "d" / "medquad").mkdir(parents=True)
    (tmp_path / "d" / "medquad" / "documents.jsonl.gz").write_bytes(b"")
    monkeypatch.setenv("FAQ_SHARED_DATA", str(tmp_path / "d"))
    assert shared_data_dir() == tmp_path / "d"
