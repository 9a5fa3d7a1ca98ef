"""The judged queries file and the own-corpus evaluation, run on the real corpus."""

from __future__ import annotations

from eval import own


def test_queries_file_is_judged_and_complete():
    queries = own.load_own_queries()
    kinds = {q["kind"] for q in queries}
    assert len(queries) >= 60
    assert {"paraphrase", "question", "spelling", "typo", "synonym", "offtopic", "general", "number", "family"} <= kinds
    assert sum(q["kind"] == "typo" for q in queries) >= 15
    assert sum(q["kind"] == "offtopic" for q in queries) >= 12
    assert sum(q["kind"] in ("general", "number", "family") for q in queries) >= 40
    for q in queries:
        assert set(q) == {"q", "expect", "kind", "split"}
        assert (q["expect"] is None) == (q["kind"] == "offtopic"), q
        assert q["split"] in ("tune", "heldout")


def test_each_kind_is_split_evenly_between_the_tuning_and_held_out_halves():
    queries = own.load_own_queries()
    for kind in {q["kind"] for q in queries}:
        halves = [q["split"] for q in queries if q["kind"] == kind]
        assert abs(halves.count("tune") - halves.count("heldout")) <= 1, kind


def test_every_expected_section_exists(own_engine):
    sections = {s["id"] for s in own.own_sections(own_engine)}
    for q in own.load_own_queries():
        if q["expect"] is not None:
            assert q["expect"] in sections, q


def test_own_corpus_evaluation_smoke(own_engine):
    queries = own.load_own_queries()
    result = own.evaluate_own(own_engine, queries)
    assert result["queries"] == len(queries)
    assert 0.0 <= result["acc@1"] <= 1.0 and 0.0 <= result["MRR@10"] <= 1.0
    assert result["acc@1"] <= result["MRR@10"] <= result["top3"] + 1e-9
    assert result["offtopic"] >= 12 and result["typo_queries"] >= 15
    assert len(result["points"]) == len(queries)
    sug = own.evaluate_own_suggestions(own_engine)
    assert set(sug["by_length"]) == {3, 5, 10}
    assert own.evaluate_own_related(own_engine)["recall"] == 1.0
