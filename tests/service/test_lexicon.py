"""Visitors' own words (``service.lexicon`` through ``service.query.plan``): numbers and their
words, letters' plurals, general English and word families find the page's own words."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from indexer.publish import build
from indexer.settings import load_config
from service.lexicon import Lexicon, load_equivalences, number_groups
from service.scoring import DEFAULT_RANKING
from service.search import Engine

PAGE = """<!DOCTYPE html><html><head><title>{title}</title></head><body><article>
<h1>{title}</h1>{body}</article></body></html>"""

SECTIONS = {
    "what-is-psychotherapy": ("What Is Psychotherapy?",
                              "Psychotherapy is a talking treatment with a trained clinician."),
    "the-5-ps": ("The 5 P’s", "Presenting, predisposing, precipitating, perpetuating and protective factors."),
    "types": ("Types of Counselling", "Individual, couples and group counselling are offered."),
    "opening-hours": ("Opening Hours", "The practice is open on weekdays from nine to six."),
    "first-visit": ("Your 1st Visit", "Bring your insurance card to the appointment."),
}


@pytest.fixture(scope="module")
def engine_for(tmp_path_factory):
    root = tmp_path_factory.mktemp("lexicon")
    corpus = root / "corpus"
    corpus.mkdir()
    body = "".join(f'<h2 id="{anchor}">{q}</h2><p>{a} It is described here in a few plain words.</p>'
                   for anchor, (q, a) in SECTIONS.items())
    (corpus / "guide.html").write_text(PAGE.format(title="A Guide to the Practice", body=body), encoding="utf-8")
    config = load_config(env={}, corpus_dir=corpus, index_dir=root / "index")
    build(config)

    def make(**knobs) -> Engine:
        return Engine(config, ranking=dataclasses.replace(DEFAULT_RANKING, **knobs))

    return make


def top(engine: Engine, q: str) -> str | None:
    results = engine.search(q, limit=1, snippets=False)["results"]
    return results[0]["id"].split("#", 1)[1] if results else None


@pytest.mark.parametrize(("q", "anchor", "knob"), [
    ("what is therapy", "what-is-psychotherapy", "family_weight"),
    ("five", "the-5-ps", "number_weight"),
    ("Ps", "the-5-ps", "letters_weight"),
    ("sorts", "types", "general_weight"),
    ("first", "first-visit", "number_weight"),
])
def test_a_visitors_word_finds_the_pages_word_and_only_because_of_its_knob(engine_for, q, anchor, knob):
    assert top(engine_for(), q) == anchor
    assert top(engine_for(**{knob: 0.0}), q) != anchor


def test_number_groups_pair_cardinals_with_digits_and_ordinals_with_suffixes():
    groups = number_groups()
    assert ("5", "five") in groups and ("fifth", "5th") in groups and ("first", "1st") in groups
    assert not any("five" in g and "fifth" in g for g in groups)  # five sessions ≠ the fifth


def test_families_need_a_combining_form_and_a_long_enough_stem():
    lexicon = Lexicon(["psychotherapy", "heart", "psychoanalysis", "psychology"], lambda t: True, equivalences=[])
    assert [a.terms for a in lexicon.alternatives("therapi")] == [("psychotherapi",)]
    assert [a.terms for a in lexicon.alternatives("analysi")] == [("psychoanalysi",)]
    assert lexicon.alternatives("art") == []  # "heart" is no kind of art
    assert lexicon.alternatives("logi") == []  # too short a stem to stand for "psychology"


def test_alternatives_no_section_holds_are_left_out():
    lexicon = Lexicon([], lambda term: term != "sort", equivalences=[("kind", "sort", "type")])
    assert [a.terms for a in lexicon.alternatives("kind")] == [("type",)]


def test_the_shipped_equivalences_are_groups_of_single_words():
    groups = load_equivalences()
    assert len(groups) >= 10
    assert all(len(g) >= 2 and all(" " not in w for w in g) for g in groups)
    assert ("kind", "sort", "type", "variety") in groups


def test_editor_synonyms_override_the_built_in_equivalences(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    body = "".join(f'<h2 id="{a}">{q}</h2><p>{t} It is described here in a few plain words.</p>'
                   for a, (q, t) in SECTIONS.items())
    (corpus / "guide.html").write_text(PAGE.format(title="A Guide", body=body), encoding="utf-8")
    (corpus / "synonyms.txt").write_text("sorts, hours\n", encoding="utf-8")
    config = load_config(env={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    build(config)
    plan = Engine(config).plan(Engine(config).generation(), "sorts")
    assert plan.clauses == [[("sort",), ("hour",)]]  # the editor's group, not kind/type/variety
    assert Path(config.corpus_dir, "synonyms.txt").exists()
