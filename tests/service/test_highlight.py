"""service.highlight: the one-regex span finder equals filtering the reference ``term_spans``."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.schema import analyze, term_spans
from service.highlight import make_snippet, term_matches

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@given(st.text(alphabet=st.sampled_from(list("ab'\u2019\u2018\u02bc`\u00b4 \u00e9_1.-\nAB")), max_size=80),
       st.data())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_term_matches_equals_filtering_term_spans_around_joining_apostrophes(text, data):
    terms = analyze(text)
    chosen = frozenset(data.draw(st.sets(st.sampled_from(terms))) if terms else ())
    assert term_matches(text, chosen) == [s for s in term_spans(text) if s[2] in chosen]


def test_term_matches_on_a_real_article_equals_filtering_term_spans():
    text = (CORPUS / "goals-of-psychotherapy.html").read_text(encoding="utf-8")
    terms = frozenset(analyze("psychotherapy goals counselling behaviour P's skills coping don't"))
    expected = [s for s in term_spans(text) if s[2] in terms]
    assert expected and term_matches(text, terms) == expected


def test_snippet_marks_exactly_the_matched_words():
    answer = "Don't worry: therapists' notes stay private. A therapist's note is kept."
    snippet = make_snippet(answer, frozenset(analyze("therapist notes")))
    assert snippet.count("<mark>") == 4
    assert "<mark>therapists&#x27;</mark>" not in snippet  # the apostrophe ends the word here
