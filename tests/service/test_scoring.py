"""The shortcuts of the query path return what the plain path returns.

- ``Scorer.score`` (posting arrays cached in memory, numpy) against ``Scorer.score_plain``
  (the same formula straight from Whoosh's matchers, nothing cached), also after an
  incremental update left deleted documents in the segments;
- ``Engine`` against ``Engine(plain=True)`` end to end;
- the suggester's bisect/word-index tiers against a scan of every question;
- the speller's symmetric-delete table against a brute-force scan of the vocabulary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.publish import build
from indexer.schema import STOP_WORDS, words
from indexer.settings import load_config
from service.search import Engine
from service.spelling import Speller, _edit_distance

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"

QUERIES = [
    "what is psychotherapy",
    "is counseling the same as therapy?",
    "DID treatment",
    "what is the main goal of DID treatment",
    "can my therapist's notes be subpoenaed by a court",
    "CBT sessions",
    "online therapy New York licensing privacy",
    "coping skills for stress and anxiety at work",
    "psychotherpy goals",
    "how long does psychoanalysis take and how often are sessions",
    "behaviour behavior organise",
    "sourdough bread",
    "the 5 P's",
    "what does a shrink do",  # only in an alternate phrasing
    "my therapist and my worries",  # common words that one phrasing also holds
]

#: Phrasings in the sparse ``alternates`` field, so every equivalence below covers it too.
ALTERNATES = """goals-of-psychotherapy#what-is-psychotherapy: what does a shrink do
goals-of-psychotherapy#what-is-psychotherapy: talking to a therapist about my worries
how-long-does-psychoanalysis-take#how-often-are-sessions: how many times a week
"""


@pytest.fixture(scope="module")
def updated_config(tmp_path_factory):
    """An index built, then updated after one article changed: its segments hold deleted
    documents, which the ranking must not count."""
    root = tmp_path_factory.mktemp("scoring")
    shutil.copytree(CORPUS, root / "corpus")
    config = load_config(env={}, corpus_dir=root / "corpus", index_dir=root / "index")
    (root / "corpus" / "alternates.txt").write_text(ALTERNATES, encoding="utf-8")
    build(config)
    page = root / "corpus" / "goals-of-psychotherapy.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "Therapy encourages clearer communication", "Therapy encourages calmer, clearer communication"),
        encoding="utf-8")
    report = build(config, mode="update")
    assert report.rewritten == ["goals-of-psychotherapy.html"]
    return config


@pytest.fixture(scope="module")
def engine(updated_config) -> Engine:
    return Engine(updated_config)


@pytest.fixture(scope="module")
def plain_engine(updated_config) -> Engine:
    return Engine(updated_config, plain=True)


def test_the_updated_index_really_has_deleted_documents(engine):
    assert engine.generation().reader.has_deletions()


@pytest.mark.parametrize("q", QUERIES)
def test_cached_array_scores_equal_the_plain_scores_from_whoosh_matchers(engine, q):
    gen = engine.generation()
    plan = engine.plan(gen, q)
    scores, coverage = gen.scorer.score(plan.clauses, plan.weights, plan.unknown_weight, plan.factors, plan.boosts)
    plain = gen.scorer.score_plain(plan.clauses, plan.weights, plan.unknown_weight, plan.factors, plan.boosts)
    assert set(np.flatnonzero(scores > 0).tolist()) == {d for d, (s, _) in plain.items() if s > 0}
    for d, (s, c) in plain.items():
        assert scores[d] == pytest.approx(s, rel=1e-12)
        assert coverage[d] == pytest.approx(c, rel=1e-12)


@pytest.mark.parametrize("q", QUERIES)
def test_engine_returns_the_same_results_and_answers_as_the_plain_path(engine, plain_engine, q):
    assert engine.search(q, limit=20) == plain_engine.search(q, limit=20)
    assert engine.answer(q) == plain_engine.answer(q)


def test_warming_the_posting_cache_changes_no_result(updated_config):
    cold = Engine(updated_config)
    before = [cold.search(q) for q in QUERIES]
    cold.generation().scorer.warm()
    assert [cold.search(q) for q in QUERIES] == before


# --------------------------------------------------------------------------- suggestions


def reference_suggestions(entries: list[dict], q: str, limit: int) -> list[str]:
    """The suggester's specification, as a scan of every question."""
    typed = words(q)
    if not typed:
        return []
    last_is_prefix = not q[-1:].isspace()
    head = " ".join(typed) + ("" if last_is_prefix else " ")
    order = sorted(range(len(entries)), key=lambda i: (len(entries[i]["words"]), i))
    first: list[int] = []
    for i in order:  # a section once, by its best-ranked entry (question or alternate phrasing)
        if len(first) < limit and " ".join(entries[i]["words"]).startswith(head) \
                and all(entries[j]["id"] != entries[i]["id"] for j in first):
            first.append(i)
    if len(first) < limit:
        complete, last = (typed[:-1], typed[-1]) if last_is_prefix else (typed, None)
        needed = [w for w in complete if w not in STOP_WORDS] or complete
        vocab = {w for e in entries for w in e["words"]}

        def has(entry, w):
            if w in vocab:
                return w in entry["words"]
            return any(x.startswith(w) for x in entry["words"])

        for i in order:
            entry = entries[i]
            if any(entries[j]["id"] == entry["id"] for j in first) or not all(has(entry, w) for w in needed):
                continue
            if last is not None and not any(x.startswith(last) for x in entry["words"]):
                continue
            first.append(i)
            if len(first) == limit:
                break
    return [entries[i]["id"] for i in first]


def typed_prefixes(engine) -> list[str]:
    out = []
    for entry in engine.generation().suggester.entries:
        text = entry.get("alternate", entry["text"])
        for n in (1, 2, 3, 5, 8, 12, len(text)):
            out.append(text[:n])
    return out


def test_suggestions_equal_a_scan_of_every_question_for_every_heading_prefix(engine):
    suggester = engine.generation().suggester
    for q in typed_prefixes(engine):
        for limit in (1, 3, 8):
            got = [e["id"] for e in suggester.suggest(q, limit)]
            assert got == reference_suggestions(suggester.entries, q, limit), (q, limit)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(
    "what is psy psychotherapy coping sk goals of the 5 p online ther how long notes can be "
    "did treatment counsel improved rel x zz shr does week talking".split()), min_size=1, max_size=4),
    st.booleans())
def test_suggestions_equal_a_scan_of_every_question_for_mixed_words(engine, parts, trailing_space):
    suggester = engine.generation().suggester
    q = " ".join(parts) + (" " if trailing_space else "")
    got = [e["id"] for e in suggester.suggest(q, 8)]
    assert got == reference_suggestions(suggester.entries, q, 8), q


# --------------------------------------------------------------------------- speller


def brute_force_correction(speller: Speller, word: str) -> str | None:
    maxdist = 2 if len(word) >= 7 else 1
    best = None
    for cand, freq in speller.freq.items():
        if cand[0] != word[0]:
            continue
        dist = _edit_distance(word, cand, maxdist)
        if dist <= maxdist and (best is None or (dist, -freq, cand) < best):
            best = (dist, -freq, cand)
    return best[2] if best else None


def one_edit_typos(word: str) -> list[str]:
    """A deletion, a substitution, an insertion and a transposition, none at the first letter."""
    out = [word[:2] + word[3:], word[:2] + "x" + word[3:], word[:3] + "e" + word[3:]]
    out.append(word[:2] + word[3] + word[2] + word[4:])
    return out


def test_speller_table_finds_what_a_scan_of_the_vocabulary_finds(engine):
    speller = engine.generation().speller
    checked = 0
    for word in sorted(speller.freq)[::7]:
        if len(word) < 6:
            continue
        for typo in one_edit_typos(word):
            if typo in speller.freq or len(typo) < 5:
                continue
            assert speller.correct(typo) == brute_force_correction(speller, typo), typo
            checked += 1
    assert checked > 50
