"""The evaluation's metric functions on hand-made rankings, its own-corpus run, and the
loaders/renderers of the shared data (skipped when ``../shared/data`` is absent)."""

from __future__ import annotations

import html
import json
import math

import pytest

from indexer.corpus import parse_page
from service import eval as ev
from service.datasets import (
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

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)
DATA = shared_data_dir()
needs_data = pytest.mark.skipif(
    DATA is None,
    reason="shared evaluation data not found: set FAQ_SHARED_DATA or put it at ../shared/data",
)


# --------------------------------------------------------------------------- metrics

JUDGED = {"b": 3, "d": 4, "c": 1, "e": 2}  # relevant (grade >= 3): b and d
RANKED = ["a", "b", "c", "d"]


def test_binary_ndcg_by_hand():
    # hits at ranks 2 and 4; ideal: two hits at ranks 1 and 2
    expected = (1 / L3 + 1 / math.log2(5)) / (1 / L2 + 1 / L3)
    assert ev.ndcg_at_k(RANKED, JUDGED) == pytest.approx(expected)
    assert ev.ndcg_at_k(["d", "b"], JUDGED) == pytest.approx(1.0)
    assert ev.ndcg_at_k(["x", "y"], JUDGED) == 0.0
    assert ev.ndcg_at_k(["a"], {"a": 2}) == 0.0  # nothing relevant: 0, not a division error


def test_graded_ndcg_by_hand():
    # gains grade-1: a 0 (unjudged), b 2, c 0, d 3; ideal from all judged: 3, 2, 1 (e), 0
    dcg = 2 / L3 + 3 / math.log2(5)
    ideal = 3 / L2 + 2 / L3 + 1 / L4
    assert ev.graded_ndcg_at_k(RANKED, JUDGED) == pytest.approx(dcg / ideal)
    assert ev.graded_ndcg_at_k(["d", "b", "e"], JUDGED) == pytest.approx(1.0)


def test_map_mrr_p1_by_hand():
    relevant = {"b", "d"}
    assert ev.average_precision_at_k(RANKED, relevant) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert ev.reciprocal_rank(RANKED, relevant) == pytest.approx(0.5)
    assert ev.precision_at_1(RANKED, relevant) == 0.0
    assert ev.precision_at_1(["d"], relevant) == 1.0
    assert ev.recall_at_k(RANKED, relevant) == 1.0
    assert ev.recall_at_k(RANKED, relevant, k=2) == 0.5
    # MAP@10 divides by all relevant answers, found or not
    assert ev.average_precision_at_k(["b"], {"b", "x", "y"}) == pytest.approx(1 / 3)


def test_cutoff_at_k():
    ranked = [f"n{i}" for i in range(10)] + ["b"]
    assert ev.reciprocal_rank(ranked, {"b"}) == 0.0
    assert ev.ndcg_at_k(ranked, {"b": 4}) == 0.0
    assert ev.reciprocal_rank(ranked, {"b"}, k=11) == pytest.approx(1 / 11)


def test_liveqa_metrics_row():
    row = ev.liveqa_metrics(RANKED, JUDGED)
    assert set(row) == {"nDCG@10", "nDCG@10 graded", "MAP@10", "P@1", "MRR@10", "judged@10"}
    assert row["judged@10"] == pytest.approx(3 / 10)
    assert ev.mean_rows([{"x": 1.0}, {"x": 0.0}]) == {"x": 0.5}


def test_threshold_sweep_and_choice():
    points = [(0.9, True, True), (0.7, True, False), (0.5, True, True), (0.3, False, False)]
    rows = {r["threshold"]: r for r in ev.sweep_thresholds(points, (0.0, 0.4, 0.6, 0.8, 1.0))}
    assert rows[0.0]["answered"] == 4 and rows[0.0]["precision"] == pytest.approx(2 / 4)
    assert rows[0.4]["precision"] == pytest.approx(2 / 3) and rows[0.4]["recall"] == pytest.approx(2 / 3)
    assert rows[0.8]["precision"] == 1.0 and rows[0.8]["recall"] == pytest.approx(1 / 3)
    assert rows[1.0]["answered"] == 0 and rows[1.0]["precision"] == 1.0
    chosen, best = ev.choose_threshold([points], offtopic=[0.3], margin=0.1)
    assert chosen >= 0.4  # every off-topic confidence refused, with the margin
    assert best["f"] == pytest.approx(max(
        ev.f_beta(r["precision"], r["recall"]) for r in ev.sweep_thresholds(points) if r["threshold"] >= 0.4))
    # two tuning sets count equally, whatever their sizes
    small = [(0.95, True, True)]
    chosen2, best2 = ev.choose_threshold([points * 50, small], offtopic=[0.0], margin=0.0)
    assert len(best2["per_set"]) == 2
    assert best2["f"] == pytest.approx(sum(
        ev.f_beta(r["precision"], r["recall"]) for r in best2["per_set"]) / 2)
    # nothing qualifies: never answer
    assert ev.choose_threshold([points], offtopic=[0.99])[0] == 1.0


# --------------------------------------------------------------------------- own corpus


def test_queries_file_is_judged_and_complete():
    queries = ev.load_own_queries()
    kinds = {q["kind"] for q in queries}
    assert len(queries) >= 60
    assert {"paraphrase", "question", "spelling", "typo", "synonym", "offtopic"} <= kinds
    assert sum(q["kind"] == "typo" for q in queries) >= 15
    assert sum(q["kind"] == "offtopic" for q in queries) >= 12
    for q in queries:
        assert set(q) == {"q", "expect", "kind"}
        assert (q["expect"] is None) == (q["kind"] == "offtopic"), q


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    index = tmp_path_factory.mktemp("own") / "index"
    config, _ = ev.build_index(ev.OWN_CORPUS, index)
    return ev.make_engine(config)


def test_every_expected_section_exists(own_engine):
    sections = {s["id"] for s in ev.own_sections(own_engine)}
    for q in ev.load_own_queries():
        if q["expect"] is not None:
            assert q["expect"] in sections, q


def test_own_corpus_evaluation_smoke(own_engine):
    queries = ev.load_own_queries()
    result = ev.evaluate_own(own_engine, queries)
    assert result["queries"] == len(queries)
    assert 0.0 <= result["acc@1"] <= 1.0 and 0.0 <= result["MRR@10"] <= 1.0
    assert result["acc@1"] <= result["MRR@10"] <= result["top3"] + 1e-9
    assert result["offtopic"] >= 12 and result["typo_queries"] >= 15
    assert len(result["points"]) == len(queries)
    sug = ev.evaluate_own_suggestions(own_engine)
    assert set(sug["by_length"]) == {3, 5, 10}
    assert ev.evaluate_own_related(own_engine)["recall"] == 1.0


def test_report_renders_without_shared_data(own_engine):
    own = ev.evaluate_own(own_engine, ev.load_own_queries())
    chosen, best = ev.choose_threshold([own["points"]], own["offtopic_conf"])
    report = {
        "env": ev.environment([]), "threshold_in_use": 0.5, "seconds": 1.0, "data_note": "absent",
        "own": own, "own_suggestions": ev.evaluate_own_suggestions(own_engine),
        "own_related": ev.evaluate_own_related(own_engine),
        "threshold": {"chosen": chosen, "best": best, "sets": ["own"],
                      "sweeps": {"own": ev.sweep_thresholds(own["points"])},
                      "offtopic_conf": own["offtopic_conf"], "explanation": "x"},
    }
    text = ev.render_report(report)
    assert text.startswith("# Search quality")
    assert "Own corpus" in text and "Answer threshold" in text


# --------------------------------------------------------------------------- shared data


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


def test_eval_main_without_shared_data(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FAQ_SHARED_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "quality.md"
    assert ev.main(["--report", str(out), "--no-variants"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "absent" in text and "Own corpus" in text
    assert "shared evaluation data not found" in capsys.readouterr().err
    json.dumps(text)  # plain text


def test_baseline_falls_back_to_published_figures(monkeypatch, tmp_path):
    monkeypatch.setattr(ev, "ensure_baseline_venv", lambda log: (None, "could not install the baseline (no network)"))
    messages: list[str] = []
    result = ev.run_baseline(tmp_path, messages.append)
    assert result["ran"] is False
    assert "no network" in result["note"]
    assert result["medquad"]["summary"]["nDCG@10"] == pytest.approx(0.4502)
    assert any("published figures" in m for m in messages)
