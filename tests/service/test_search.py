"""Search behaviour on the real four-article corpus: synonyms, spelling variants, typos,
suggestions, the answer threshold and query-syntax safety.

One index is built per module (a few seconds) and only read by the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.publish import build
from indexer.settings import load_config
from service.search import Engine

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"

GOALS = "goals-of-psychotherapy"
NOTES = "can-psychotherapy-notes-be-subpoenaed"
ANALYSIS = "how-long-does-psychoanalysis-take"
ONLINE = "online-therapy-new-york-city"


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    index_dir = tmp_path_factory.mktemp("search") / "index"
    config = load_config(env={}, corpus_dir=CORPUS, index_dir=index_dir)
    build(config)
    return Engine(config)


def ids(engine: Engine, q: str, limit: int = 10) -> list[str]:
    return [r["id"] for r in engine.search(q, limit=limit)["results"]]


def questions(engine: Engine) -> list[tuple[str, str]]:
    """(section id, heading) of every section, from the article pages."""
    out = []
    for art in engine.articles()["articles"]:
        for s in engine.article(art["slug"])["sections"]:
            out.append((s["id"], s["question"]))
    return out


# --------------------------------------------------------------------------- synonyms


def test_counseling_finds_the_counselling_sections(engine):
    top = ids(engine, "counseling", limit=3)
    assert f"{GOALS}#goals-of-counselling" in top or f"{GOALS}#psychotherapy-vs-counselling" in top
    assert ids(engine, "counseling") == ids(engine, "counselling")


def test_cbt_finds_cognitive_behavioural_therapy_text(engine):
    # "What Is Online Therapy?" says "cognitive behavioural therapy" but never "CBT".
    found = ids(engine, "CBT")
    assert f"{ONLINE}#what-is-online-therapy" in found
    assert f"{ANALYSIS}#psychoanalysis-vs-psychodynamic-therapy" in found


def test_did_in_capitals_expands_but_lower_case_did_does_not(engine):
    upper = engine.search("DID treatment")
    assert upper["results"][0]["id"] == f"{GOALS}#primary-goal-in-did-treatment"
    assert "<mark>dissociative</mark>" in upper["results"][0]["snippet"]
    lower = engine.search("did treatment")
    assert all("<mark>dissociative</mark>" not in r["snippet"] for r in lower["results"])


def test_synonym_phrases(engine):
    assert ids(engine, "teletherapy", limit=3)[0] == f"{ONLINE}#what-is-online-therapy"
    assert f"{GOALS}#primary-goal-in-did-treatment" in ids(engine, "multiple personality disorder", limit=3)


# --------------------------------------------------------------------------- spelling variants


@pytest.mark.parametrize(("uk", "us"), [("behaviour", "behavior"), ("counselling", "counseling"),
                                        ("recognise", "recognize")])
def test_spelling_variants_meet(engine, uk, us):
    assert ids(engine, uk)
    assert ids(engine, uk) == ids(engine, us)


def test_behavioural_patterns_either_spelling(engine):
    uk, us = ids(engine, "emotional and behavioural patterns"), ids(engine, "emotional and behavioral patterns")
    assert uk == us
    assert f"{GOALS}#four-common-goals-explained" in uk[:3]


# --------------------------------------------------------------------------- typos


@pytest.mark.parametrize(("typo", "fixed", "section"), [
    ("psychotherpy techniques", "psychotherapy techniques", f"{GOALS}#psychotherapy-techniques"),
    ("limits of confidentiallity", "limits of confidentiality", f"{NOTES}#limits-of-confidentiality"),
    ("how often are sesions", "how often are sessions", f"{ANALYSIS}#how-often-are-sessions"),
    ("choosing an online therapsit", "choosing an online therapist", f"{ONLINE}#choosing-an-online-therapist"),
])
def test_typo_gives_did_you_mean_and_the_right_section(engine, typo, fixed, section):
    res = engine.search(typo)
    assert res["did_you_mean"] == fixed
    assert section in [r["id"] for r in res["results"][:3]]


def test_correct_spelling_is_never_corrected(engine):
    for _, heading in questions(engine):
        assert engine.search(heading)["did_you_mean"] is None, heading
    for q in ("counselling", "counseling", "psychoanalysis", "subpoenaed", "teletherapy", "count", "older"):
        assert engine.search(q)["did_you_mean"] is None, q


@pytest.mark.parametrize(("word", "near"), [("count", "court"), ("older", "order"), ("threat", "treat")])
def test_exact_match_is_not_buried_by_a_fuzzy_one(engine, word, near):
    # Both words are in the corpus, one edit apart: the sections with the word typed come first.
    results = engine.search(word)["results"]
    assert results
    assert word in results[0]["answer"].lower() or word in results[0]["question"].lower()


# --------------------------------------------------------------------------- suggestions


def test_suggest_completes_the_last_word(engine):
    texts = [s["text"] for s in engine.suggest("psychoan")["suggestions"]]
    assert "How Long Does Psychoanalysis Take?" in texts
    assert all("psychoan" in t.lower() for t in texts)


def test_suggest_completes_the_whole_question(engine):
    assert engine.suggest("how long does")["suggestions"][0]["text"] == "How Long Does Psychoanalysis Take?"
    assert engine.suggest("what is onl")["suggestions"][0]["text"] == "What Is Online Therapy?"


def test_heading_prefix_brings_the_heading_into_the_top_3(engine):
    sections = questions(engine)
    for n in (5, 10):
        for sid, heading in sections:
            prefix = heading[:n]
            sharing = sum(1 for _, h in sections if h[:n].lower() == prefix.lower())
            if sharing > 3:
                continue  # at most three of the headings sharing a prefix fit in a top 3
            top = [s["id"] for s in engine.suggest(prefix)["suggestions"][:3]]
            assert sid in top, (prefix, sid, top)


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("q", ["how do I bake sourdough bread", "who won the world cup in 2022",
                               "what are the symptoms of diabetes", "capital gains tax rate",
                               "will it rain in New York tomorrow"])
def test_off_topic_question_gets_no_answer(engine, q):
    res = engine.answer(q)
    assert res["answer"] is None
    assert res["confidence"] < engine.config.answer_threshold


@pytest.mark.parametrize(("q", "section"), [
    ("How long does psychoanalysis take?", f"{ANALYSIS}#how-long-does-psychoanalysis-take"),
    ("Can psychotherapy notes be subpoenaed?", f"{NOTES}#can-psychotherapy-notes-be-subpoenaed"),
    ("What is online therapy?", f"{ONLINE}#what-is-online-therapy"),
])
def test_clear_question_gets_an_answer(engine, q, section):
    res = engine.answer(q)
    assert res["answer"] is not None
    assert res["answer"]["id"] == section
    assert res["confidence"] >= engine.config.answer_threshold


# --------------------------------------------------------------------------- query syntax


@pytest.mark.parametrize("q", ["title:x OR *", "answer:* AND NOT psychotherapy", '"unclosed phrase',
                               "psycho*", "(((", "slug:goals-of-psychotherapy", "~2 ^3 {} []"])
def test_query_syntax_is_plain_text(engine, q):
    res = engine.search(q)  # never raises
    assert res["total"] < engine.status()["sections"]


def test_field_syntax_is_just_words(engine):
    assert ids(engine, "title:psychoanalysis OR *") == ids(engine, "title psychoanalysis")


def test_a_message_of_many_unknown_words_tries_only_a_few_corrections(engine, monkeypatch):
    from service import query

    gen = engine.generation()
    calls = []
    real = gen.speller.correct
    monkeypatch.setattr(gen.speller, "correct", lambda w: calls.append(w) or real(w))
    words = " ".join(f"zqx{chr(97 + i % 26)}{chr(97 + i // 26)}vle" for i in range(200))
    plan = engine.plan(gen, words)
    assert len(calls) == query.MAX_CORRECTIONS
    assert len(plan.unknown) == gen.scorer.ranking.max_query_terms  # the 64 kept, none corrected


# --------------------------------------------------------------------------- ranking internals


@pytest.mark.parametrize("q", ["goals of psychotherapy", "what are the goals of psychotherapy and counselling",
                               "how long does psychoanalysis take how often are sessions", "psychotherapy",
                               "notes subpoenaed court notes therapist"])
@pytest.mark.parametrize("table", [True, False], ids=["document table", "question terms"])
def test_proximity_factors_count_the_query_pairs_adjacent_in_each_question(engine, q, table, monkeypatch):
    gen = engine.generation()
    assert gen.derived.documents is not None
    if not table:
        monkeypatch.setattr(gen.derived, "documents", None)
    plan = engine.plan(gen, q)
    docs = list(range(gen.doc_count))
    tokens, boost = plan.tokens, engine.ranking.phrase_boost
    expected = []
    for d in docs:  # each of the query's pairs, counted when its words are adjacent in the question
        question = gen.question_terms.get(d, ())
        pairs = set(zip(question, question[1:], strict=False))
        adjacent = sum(1 for pair in zip(tokens, tokens[1:], strict=False) if pair in pairs)
        expected.append(1.0 + boost * adjacent / (len(tokens) - 1) if len(tokens) > 1 else 1.0)
    assert engine._phrase_factors(gen, plan, docs) == expected
    assert len(tokens) < 2 or max(expected) > 1.0


def test_a_generation_is_readied_when_first_served_not_by_the_first_query(engine):
    fresh = Engine(engine.config)
    gen = fresh.generation()  # what create_app does before a worker serves
    assert getattr(gen._local, "searcher", None) is not None
    assert fresh.search("psychotherapy goals") == engine.search("psychotherapy goals")


def test_a_query_holding_lone_surrogates_searches_its_words(engine):
    res = engine.search("goals\ud800of psychotherapy\udfff")
    assert res["results"] and res["results"][0]["id"].startswith(GOALS)
    assert engine.answer("goals\ud800of psychotherapy")["alternatives"] is not None
