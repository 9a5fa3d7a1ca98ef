"""indexer.schema: the text analysis shared by the indexer and the service, and synonyms."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from whoosh.formats import Frequency

from indexer.schema import (
    ANALYZER,
    MAX_TOKEN_CHARS,
    SCHEMA,
    SEARCH_FIELDS,
    STOP_WORDS,
    WORD_ANALYZER,
    FastFrequency,
    analyze,
    load_synonyms,
    make_analyzer,
    us_spelling,
    words,
)

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.mark.parametrize(
    ("british", "american"),
    [
        ("behaviour", "behavior"),
        ("behavioural", "behavioral"),
        ("behaviours", "behaviors"),
        ("counselling", "counseling"),
        ("counsellor", "counselor"),
        ("counselled", "counseled"),
        ("organise", "organize"),
        ("organised", "organized"),
        ("organisation", "organization"),
        ("centre", "center"),
        ("centres", "centers"),
        ("paediatric", "pediatric"),
        ("programme", "program"),
        ("judgement", "judgment"),
        ("recognise", "recognize"),
        ("anaesthetic", "anesthetic"),
    ],
)
def test_british_and_american_spellings_analyse_to_the_same_terms(british, american):
    assert analyze(british) == analyze(american)
    assert analyze(british.capitalize()) == analyze(american)


@pytest.mark.parametrize("word", ["four", "advise", "hour", "our", "devise", "otherwise", "tour"])
def test_spelling_rules_leave_words_that_merely_look_british_alone(word):
    assert us_spelling(word) == word


@pytest.mark.parametrize("variant", ["P's", "P’s", "p‘s", "Pʼs", "P`s", "P´s"])
def test_apostrophes_of_every_kind_analyse_alike(variant):
    assert analyze(f"The 5 {variant} in Psychotherapy") == analyze("The 5 P’s in Psychotherapy")
    assert analyze(variant) == ["p"]


def test_possessive_s_is_dropped_and_inner_apostrophes_joined():
    assert analyze("client’s") == analyze("client")
    assert analyze("don’t") == analyze("dont")


@pytest.mark.parametrize(("accented", "plain"), [("café", "cafe"), ("naïve", "naive"), ("Zoë", "zoe"), ("résumé", "resume")])
def test_accents_are_folded(accented, plain):
    assert analyze(accented) == analyze(plain)
    assert words(accented) == [plain]


def test_stop_words_are_dropped_and_question_words_too():
    assert analyze("What is psychotherapy?") == analyze("psychotherapy")
    assert analyze("how can I find a therapist") == analyze("find therapist")
    assert analyze("the and of to") == []
    assert {"what", "how", "the"} <= STOP_WORDS


def test_terms_are_stemmed_so_inflections_meet():
    assert analyze("therapies") == analyze("therapy")
    assert analyze("subpoenaed") == analyze("subpoena")


def test_words_keeps_stop_words_unstemmed_for_suggestions():
    assert words("What Is the Client’s Therapy?") == ["what", "is", "the", "client", "therapy"]


def test_schema_searches_and_stores_the_fields_the_service_needs():
    assert set(SEARCH_FIELDS) <= set(SCHEMA.names())
    stored = {name for name in SCHEMA.names() if SCHEMA[name].stored}
    assert {"id", "slug", "question", "title", "answer", "position", "meta"} <= stored
    assert SCHEMA["id"].unique


# --------------------------------------------------------------------------- synonyms


def test_load_synonyms_skips_comments_and_blank_lines_and_keeps_multi_word_terms(tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text(
        "# editors' synonyms\n"
        "\n"
        "   \n"
        "counselling, counseling ,counsellor,  counselor\n"
        "   # an indented comment\n"
        "online therapy, teletherapy, video therapy\n"
        "NYC, New York City\n",
        encoding="utf-8",
    )
    assert load_synonyms(path) == [
        ("counselling", "counseling", "counsellor", "counselor"),
        ("online therapy", "teletherapy", "video therapy"),
        ("NYC", "New York City"),
    ]


def test_load_synonyms_ignores_groups_of_fewer_than_two_distinct_terms(tmp_path):
    path = tmp_path / "synonyms.txt"
    path.write_text("lonely\ntwice, twice\n, ,\na, b, a\n", encoding="utf-8")
    assert load_synonyms(path) == [("a", "b")]


def test_load_synonyms_of_a_missing_file_is_empty(tmp_path):
    assert load_synonyms(tmp_path / "nope.txt") == []


def test_multi_word_synonym_terms_analyse_to_several_index_terms():
    groups = load_synonyms(CORPUS / "synonyms.txt")
    therapy = next(g for g in groups if "talk therapy" in g)
    assert analyze("talk therapy") == ["talk", "therapi"]
    assert [len(analyze(t)) for t in therapy] == [1, 1, 2]


def test_real_synonyms_file_loads_every_group():
    groups = load_synonyms(CORPUS / "synonyms.txt")
    assert len(groups) == 16
    assert ("behavior", "behaviour") in groups
    assert all(len(g) >= 2 for g in groups)


# --------------------------------------------------------------------------- the fast analyzer

_WORDS = st.sampled_from(
    "the what how is a behaviour behavior counselling counseling organised centre paediatric P's P’s "
    "client’s don’t café naïve Zoë therapy therapies CBT 5 2025 PTSD résumé ﬁnance Straße "
    "d'Artagnan rock’n’roll o’clock 's ’ ' - , . ? ! ( ) \n".split(" ")
)
_TEXTS = st.lists(st.one_of(_WORDS, st.text(max_size=6)), max_size=25).map(" ".join)


def _tokens(analyzer, text: str, **kwargs) -> list[tuple]:
    return [(t.text, t.pos, t.startchar, t.endchar, t.stopped)
            for t in analyzer(text, positions=True, chars=True, **kwargs)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_TEXTS, st.booleans())
def test_fast_analyzer_matches_the_reference_chain(text, removestops):
    for stem, fast in ((True, ANALYZER), (False, WORD_ANALYZER)):
        assert _tokens(fast, text, removestops=removestops) == _tokens(
            make_analyzer(stem=stem), text, removestops=removestops), (stem, text)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_TEXTS)
def test_fast_frequency_postings_match_whoosh_frequency_format(text):
    for name in ("question", "title", "breadcrumbs", "answer"):
        fmt = SCHEMA[name].format
        assert isinstance(fmt, FastFrequency)
        fast = sorted(fmt.word_values(text, ANALYZER, mode="index"))
        reference = sorted(Frequency(field_boost=fmt.field_boost).word_values(text, make_analyzer(), mode="index"))
        assert fast == reference, text


# --------------------------------------------------------------------------- long words


def test_analysis_drops_words_longer_than_the_token_cap():
    long_word = "a" * 60_000
    text = f"anxiety {long_word} therapy {'b' * (MAX_TOKEN_CHARS + 1)} {'c' * MAX_TOKEN_CHARS}"
    assert all(len(t) <= MAX_TOKEN_CHARS for t in analyze(text))
    assert analyze(text)[:2] == ["anxieti", "therapi"]
    assert all(len(w) <= MAX_TOKEN_CHARS for w in words(text))
    assert words(text) == ["anxiety", "therapy", "c" * MAX_TOKEN_CHARS]


@given(st.text(alphabet=st.sampled_from("ab '\u00e9"), max_size=300))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_no_analysed_token_is_longer_than_the_cap(text):
    assert all(len(t) <= MAX_TOKEN_CHARS for t in analyze(text))
    assert all(len(w) <= MAX_TOKEN_CHARS for w in words(text))
    assert all(len(t.text) <= MAX_TOKEN_CHARS for t in make_analyzer()(text))
