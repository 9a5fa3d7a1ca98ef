"""The shortcuts of the query path return what the plain path returns.

- ``Scorer.score`` (posting arrays cached in memory, numpy) against ``Scorer.score_plain``
  (the same formula straight from Whoosh's matchers, nothing cached), also after an
  incremental update left deleted documents in the segments;
- ``Engine`` against ``Engine(plain=True)`` end to end;
- the suggester's bisect/word-index tiers against a scan of every question;
- the speller's symmetric-delete table against a brute-force scan of the vocabulary, and
  the whole speller against the one that walked Whoosh's ``ListCorrector`` automaton;
- sparse scoring from cached per-term scores against the dense per-term sums, bit for bit;
- snippets from the build's word spans against snippets from analysing each answer.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh import index as whoosh_index
from whoosh.spelling import ListCorrector

from indexer.derived import MANIFEST, PREFIX, check_derived, open_derived
from indexer.publish import build, current_generation
from indexer.schema import SEARCH_FIELDS, STOP_WORDS, analyze, words
from indexer.settings import load_config
from service.highlight import (
    MAX_MATCHES,
    SNIPPET_SCAN,
    make_snippet,
    snippet_from_matches,
    term_matches,
)
from service.scoring import Ranking, Scorer
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
def test_summing_per_document_number_gives_the_very_sums_of_locating_each_posting(engine, q, monkeypatch):
    gen = engine.generation()
    plan = engine.plan(gen, q)
    args = (plan.clauses, plan.weights, plan.unknown_weight, plan.factors, plan.boosts)
    dense = gen.scorer.score_sparse(*args)  # postings of the order of this small index: a sum per docnum
    monkeypatch.setattr(gen.scorer, "n_all", gen.scorer.n_all * 1000)  # now they are few: located in docs
    located = gen.scorer.score_sparse(*args)
    for a, b in zip(dense, located, strict=True):
        assert np.array_equal(a, b)  # bit for bit: the same additions in the same order


@pytest.mark.parametrize("q", QUERIES)
def test_engine_returns_the_same_results_and_answers_as_the_plain_path(engine, plain_engine, q):
    assert engine.search(q, limit=20) == plain_engine.search(q, limit=20)
    assert engine.answer(q) == plain_engine.answer(q)


def test_what_results_show_comes_from_the_document_table_and_equals_the_stored_fields(engine, plain_engine,
                                                                                     monkeypatch):
    gen = engine.generation()
    live = np.flatnonzero(gen.scorer.live).tolist()
    assert len(gen.derived.documents.parts) > 1  # the update's segments: base offsets are exercised
    expected = plain_engine._shown(plain_engine.generation(), live)

    def unpickle(*_):
        raise AssertionError("a result read Whoosh's stored fields")

    monkeypatch.setattr(gen.searcher(), "stored_fields", unpickle)
    assert engine._shown(gen, live) == expected
    assert engine._shown(gen, list(reversed(live))) == list(reversed(expected))
    assert any(row["related"] for row in expected) and all(row["breadcrumbs"] for row in expected)


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


def old_correction(speller: Speller, word: str) -> str | None:
    """The speller as it was: one pair of table look-ups per deletion variant, then Whoosh's
    ``ListCorrector`` (two walks of its automaton) when nothing is found within one edit."""
    if not 5 <= len(word) <= speller.MAX_WORD or not word.isalpha() or word in speller.freq:
        return None
    maxdist = 2 if len(word) >= 7 else 1
    candidates = set(speller.deletes.get(word, ()))
    for variant in {word[:i] + word[i + 1:] for i in range(len(word))}:
        candidates.update(speller.deletes.get(variant, ()))
        if variant in speller.freq:
            candidates.add(variant)
    best = None
    for cand in candidates:
        dist = _edit_distance(word, cand, maxdist)
        if cand[0] == word[0] and dist <= maxdist and (best is None or (dist, -speller.freq[cand], cand) < best):
            best = (dist, -speller.freq[cand], cand)
    if best is None and maxdist == 2:
        hits = ListCorrector(sorted(speller.freq)).suggest(word, limit=5, maxdist=2, prefix=2)
        return max(hits, key=lambda w: (speller.freq[w], w)) if hits else None
    return best[2] if best else None


def typos(word: str, seed: int) -> list[str]:
    """One, two and three edits after the first two letters (substitutions, insertions,
    deletions, a transposition), seeded."""
    rng = random.Random(f"{seed}:{word}")
    out = []
    for edits in (1, 2, 2, 3):
        chars = list(word)
        for _ in range(edits):
            i = rng.randrange(2, max(len(chars), 3))
            kind = rng.randrange(4)
            if kind == 0 and i < len(chars):
                chars[i] = rng.choice("aeiostrnxz")
            elif kind == 1:
                chars.insert(i, rng.choice("aeiostrnxz"))
            elif kind == 2 and i < len(chars) and len(chars) > 3:
                del chars[i]
            elif i + 1 < len(chars):
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
        out.append("".join(chars))
    return out


def test_the_speller_corrects_as_it_did_with_whooshs_list_corrector(engine):
    speller = engine.generation().speller
    assert not isinstance(speller.deletes, dict)  # the generation's memory-mapped table
    checked = 0
    for word in sorted(speller.freq):
        if len(word) < 6:
            continue
        for typo in typos(word, 1):
            assert speller.correct(typo) == old_correction(speller, typo), typo
            checked += 1
    for word in ("therapyé", "psychothérapy", "zzzzzzzz", "abcdefgh"):
        assert speller.correct(word) == old_correction(speller, word), word
    assert checked > 200


def test_the_two_edit_fallback_returns_what_list_corrector_suggests_in_a_large_vocabulary(monkeypatch):
    """Prefix ranges late in a large word list are searched without Whoosh's automaton,
    early ones (where its look-ups may skip words) with it: both give Whoosh's list."""
    stems = ["therap", "counsel", "psycho", "behavio", "session", "anxiet", "treatm", "diagnos", "abstract",
             "aaronic", "medicat", "symptom", "depress", "trauma", "relation", "coping", "mindful"]
    endings = ["", "s", "ed", "ing", "ist", "ists", "ical", "ically", "ness", "ment", "ments", "ation", "er", "ers"]
    vocabulary = {s + e: 1 + (len(s) * 7 + len(e) * 3) % 11 for s in stems for e in endings}
    vocabulary.update({"".join(chr(97 + (i * k) % 26) for k in range(1, 9)): 1 for i in range(400)})
    speller = Speller(vocabulary)
    speller._sort_words()
    walks = []
    walk = Speller._walk_automaton
    monkeypatch.setattr(Speller, "_walk_automaton", lambda self, word: walks.append(word) or walk(self, word))
    checked = 0
    for word in speller._sorted:
        for typo in typos(word, 2):
            if len(typo) < 7 or typo in speller.freq:
                continue
            assert speller._two_edits(typo) == ListCorrector(speller._sorted).suggest(
                typo, limit=5, maxdist=2, prefix=2), typo
            checked += 1
    assert checked > 500 and walks and len(walks) < checked / 2  # both ways were taken


# --------------------------------------------------------------------------- sparse scoring


def dense_reference(scorer, clauses, weights, extra_weight, factors, boosts) -> tuple[np.ndarray, np.ndarray]:
    """Scores and coverage as ``score_sparse`` computed them before per-term caching: a dense
    array per term, alternative and clause, added in that order. The sums must be these,
    bit for bit (same additions, same order), not merely close."""
    n = scorer.n_all
    scores, covered = np.zeros(n), np.zeros(n)
    for clause, cw, mult in zip(clauses, weights, scorer._factors(clauses, factors, boosts), strict=True):
        best = np.zeros(n)
        for i, alt in enumerate(clause):
            total, present = np.zeros(n), None
            for term in alt:
                term_score = np.zeros(n)
                for field, weight in scorer.fields:
                    ids, w = scorer.postings(field, term)
                    term_score[ids] += weight * w
                total += term_score
                present = term_score > 0 if present is None else present & (term_score > 0)
            if len(alt) > 1:
                total[~present] = 0.0
            if mult[i] != 1.0:
                total *= mult[i]
            np.maximum(best, total, out=best)
        scores += best
        covered += cw * (best > 0)
    total_weight = sum(weights) + extra_weight
    coverage = covered / total_weight if total_weight else covered
    return (scores * np.power(coverage, scorer.p) if scorer.p else scores), coverage


RANKINGS = {
    "default": {},
    "coverage power": {"coverage_power": 0.7},
    "synonyms weigh nothing": {"synonym_weight": 0.0},
    "a field weighs nothing": {"fields": tuple((f, 0.0 if f == "title" else w) for f, w in SEARCH_FIELDS.items())},
}


@pytest.mark.parametrize("variant", sorted(RANKINGS))
def test_sparse_scores_equal_the_dense_per_term_sums_bit_for_bit(engine, variant):
    gen = engine.generation()
    scorer = Scorer(gen.reader, Ranking(**RANKINGS[variant]), derived=gen.derived)
    for q in [*QUERIES, "cognitive behavioural therapy for DID", "coping skills coping skills"]:
        plan = engine.plan(gen, q)
        args = (plan.clauses, plan.weights, plan.unknown_weight, plan.factors, plan.boosts)
        scores, coverage = scorer.score(*args)
        expected_scores, expected_coverage = dense_reference(scorer, *args)
        assert np.array_equal(scores, expected_scores) and np.array_equal(coverage, expected_coverage), q
        docs, _, _ = scorer.score_sparse(*args)
        assert np.array_equal(docs, np.flatnonzero(expected_scores > 0)), q


def test_evicting_cached_term_scores_changes_no_score(engine):
    gen = engine.generation()
    tiny = Scorer(gen.reader, gen.scorer.ranking, cache_postings=1, derived=gen.derived)
    for q in QUERIES * 2:
        plan = engine.plan(gen, q)
        args = (plan.clauses, plan.weights, plan.unknown_weight, plan.factors, plan.boosts)
        a, b = tiny.score(*args), gen.scorer.score(*args)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), q
    assert len(tiny._terms) <= 2


def test_cached_term_scores_cannot_be_changed_by_a_caller(engine):
    ids, scores = engine.generation().scorer.term_scores("therapi")
    assert len(ids)
    with pytest.raises(ValueError):
        scores[0] = 0.0


# --------------------------------------------------------------------------- snippets


def test_snippets_from_the_build_time_spans_equal_snippets_from_analysing_each_answer(engine):
    gen = engine.generation()
    table = gen.derived.snippets
    assert table is not None and len(table.parts) == 2  # the update's second segment
    live = np.flatnonzero(gen.derived.live).tolist()
    searcher = gen.searcher()
    answers = {d: searcher.stored_fields(d)["answer"] for d in live}
    vocabulary = sorted({t for a in answers.values() for t in analyze(a)})
    term_sets = [engine.plan(gen, q).terms for q in QUERIES] + [frozenset(vocabulary[i::9]) for i in range(9)]
    term_sets += [frozenset(vocabulary), frozenset({"zzzunknown"}), frozenset()]
    for terms in term_sets:
        found = table.matches(live[::-1], table.wanted(terms), MAX_MATCHES)  # any order of documents
        for d, (starts, ends, numbers) in zip(live[::-1], found, strict=True):
            expected = term_matches(answers[d][:SNIPPET_SCAN], terms)[:MAX_MATCHES]
            assert list(zip(starts, ends, strict=True)) == [(s, e) for s, e, _ in expected], d
            assert len(set(numbers)) == len({t for _, _, t in expected})
            if terms:
                assert snippet_from_matches(answers[d], starts, ends, numbers) == make_snippet(answers[d], terms), d


def test_a_generation_without_snippet_spans_gives_the_same_results(updated_config):
    with_spans, without = Engine(updated_config), Engine(updated_config)
    without.generation().derived.snippets = None
    for q in QUERIES:
        assert with_spans.search(q) == without.search(q), q
        assert with_spans.answer(q) == without.answer(q), q


def test_snippet_spans_that_do_not_match_the_manifest_are_not_used_and_broken_ones_are_refused(
        updated_config, tmp_path):
    path = current_generation(updated_config.index_dir)[1]
    copy = tmp_path / "gen"
    shutil.copytree(path, copy)
    ix = whoosh_index.open_dir(str(copy))
    assert open_derived(copy, ix).snippets is not None and check_derived(copy, ix) is None
    victim = next(copy.glob(f"{PREFIX}*.snippets.terms.npy"))
    terms = np.load(victim)
    np.save(victim, np.full_like(terms, terms.max() + 1) if len(terms) else terms)
    assert "snippet" in check_derived(copy, ix)
    np.save(victim, terms[:-1])
    derived = open_derived(copy, ix)
    assert derived is not None and derived.snippets is None and derived.documents is not None
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("snippets")
    (copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    np.save(victim, terms)
    assert open_derived(copy, ix).snippets is None  # written before snippet spans: not used


def test_proximity_factors_from_the_document_table_equal_those_from_question_terms_after_an_update(
        engine, monkeypatch):
    gen = engine.generation()
    docs = list(range(len(gen.derived.live)))  # deleted documents too
    assert not gen.derived.live.all()
    for q in [*QUERIES, "goals of psychotherapy goals", "how long does psychoanalysis take"]:
        plan = engine.plan(gen, q)
        fast = engine._phrase_factors(gen, plan, docs)
        with monkeypatch.context() as m:
            m.setattr(gen.derived, "documents", None)
            assert engine._phrase_factors(gen, plan, docs) == fast, q


def test_warming_the_commonest_terms_changes_no_score_and_keeps_to_its_share_of_the_cache(engine):
    gen = engine.generation()
    cold = Scorer(gen.reader, gen.scorer.ranking, cache_postings=200, derived=gen.derived)
    before = [cold.score(engine.plan(gen, q).clauses) for q in QUERIES]
    cold._terms.clear()
    cold._terms_cached = 0
    loaded = cold.warm_terms()
    assert 0 < loaded <= 100 and cold._terms_cached == loaded
    after = [cold.score(engine.plan(gen, q).clauses) for q in QUERIES]
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(before, after, strict=True))
