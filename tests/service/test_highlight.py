"""service.highlight: the one-regex span finder equals filtering the reference ``term_spans``,
and the passage chosen and escaped equals the first-written snippet's."""

from __future__ import annotations

import html
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.schema import analyze, term_spans
from service.highlight import (
    MAX_MATCHES,
    SNIPPET_SCAN,
    _best_window,
    _best_window_arrays,
    make_snippet,
    term_matches,
)

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


def reference_snippet(answer: str, terms: frozenset[str], chars: int = 240) -> str:
    """``make_snippet`` as first written: every window weighed in turn, each piece escaped
    on its own."""
    matches = [s for s in term_spans(answer[:SNIPPET_SCAN]) if s[2] in terms][:MAX_MATCHES]
    if not matches:
        cut = answer[:chars]
        return html.escape(cut.rsplit(" ", 1)[0] + " …" if len(answer) > chars else cut)
    best = None
    for start, end, _ in matches:
        ws = max(0, start - chars // 4)
        if ws > 0:
            space = answer.find(" ", ws, start)
            ws = space + 1 if space != -1 else start
        we = min(len(answer), ws + chars)
        if we < len(answer):
            space = answer.rfind(" ", end, we)
            we = space if space != -1 else max(we, end)
        inside = [m for m in matches if m[0] >= ws and m[1] <= we]
        key = (len({t for _, _, t in inside}), len(inside), -start)
        if best is None or key > best[0]:
            best = (key, ws, we, inside)
    _, ws, we, inside = best
    out, pos = ["… " if ws > 0 else ""], ws
    for start, end, _ in inside:
        out += [html.escape(answer[pos:start]), f"<mark>{html.escape(answer[start:end])}</mark>"]
        pos = end
    return "".join(out) + html.escape(answer[pos:we]) + (" …" if we < len(answer) else "")


WORDS = ["care", "cares", "therapy", "therapist's", "don't", "&amp;", "<b>", "'quoted'", "x\x00y", "\x01",
         "notes", "a", "the", "session", "é"]


@given(st.lists(st.sampled_from(WORDS), max_size=400), st.lists(st.sampled_from([" ", "  ", ", ", ".\n", "-"]),
                                                                  min_size=1, max_size=5),
       st.sets(st.sampled_from(["care", "therapist", "note", "session", "don't", "quot", "y"])),
       st.sampled_from([40, 240]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_snippet_equals_the_first_written_snippet_whatever_the_answer_holds(words_, seps, chosen, chars):
    answer = "".join(w + seps[i % len(seps)] for i, w in enumerate(words_))
    terms = frozenset(t for w in chosen for t in analyze(w))
    assert make_snippet(answer, terms, chars) == reference_snippet(answer, terms, chars)


@given(st.lists(st.sampled_from(["care", "notes", "therapy", "session", "and", "x" * 30, "é"]), min_size=1,
                max_size=900),
       st.sets(st.sampled_from(["care", "note", "therapi", "session"]), min_size=1), st.sampled_from([40, 240]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_weighing_windows_in_arrays_picks_the_window_the_loop_picks(words_, chosen, chars):
    answer = " ".join(words_)
    matches = term_matches(answer[:SNIPPET_SCAN], frozenset(chosen))[:MAX_MATCHES]
    if matches:
        starts, ends, keys = ([m[i] for m in matches] for i in range(3))
        assert _best_window_arrays(answer, starts, ends, keys, chars) == _best_window(answer, starts, ends, keys,
                                                                                      chars)
