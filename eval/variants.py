"""The ranking variants the evaluation compares with the shipped default.

Each variant is a value of the engine's own ``service.scoring.Ranking``, so what the variant
table measures is exactly what would run if that value were shipped; the list is kept apart
so a new idea to try is a one-line change that touches no measuring code.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.scoring import Ranking


def ranking_variants() -> list[tuple[str, Ranking]]:
    """(label, Ranking) compared on the tuning sets; the first is the default.

    Every variant is a value of the engine's own ``Ranking``: what is measured is what runs.
    """
    from service.scoring import DEFAULT_RANKING as D

    fields = dict(D.fields)

    def with_fields(base=D, **weights: float):
        return dataclasses.replace(base, fields=tuple({**fields, **weights}.items()))

    def vary(base=D, **changes: Any):
        return dataclasses.replace(base, **changes)

    previous = vary(with_fields(question=3.0), k1=1.2, b=0.75, coverage_power=1.0, idf="whoosh",
                    max_query_terms=32)
    return [
        ("default", D),
        ("previous defaults (Whoosh idf, k1 1.2, b 0.75, coverage 1, question 3, 32-word cap)", previous),
        ("Whoosh idf log(N/(df+1))+1", vary(idf="whoosh")),
        ("query cap 32 words", vary(max_query_terms=32)),
        ("coverage power 1 (score × coverage)", vary(coverage_power=1.0)),
        ("coverage power 2", vary(coverage_power=2.0)),
        ("no proximity boost", vary(phrase_boost=0.0)),
        ("proximity boost 1.0", vary(phrase_boost=1.0)),
        ("question weight = answer weight", with_fields(question=fields.get("answer", 1.0))),
        ("question weight 3", with_fields(question=3.0)),
        ("title weight 0", with_fields(title=0.0)),
        ("k1 1.2", vary(k1=1.2)),
        ("k1 3.0", vary(k1=3.0)),
        ("b 0.75", vary(b=0.75)),
        ("b 0.9", vary(b=0.9)),
        ("synonyms weight 1.0", vary(synonym_weight=1.0)),
        ("synonyms weight 0.3", vary(synonym_weight=0.3)),
        ("no duplicate collapsing", vary(collapse_duplicates=False)),
        ("general-English weight 0.3", vary(general_weight=0.3)),
        ("general-English weight 1.0", vary(general_weight=1.0)),
        ("word-family weight 1.0", vary(family_weight=1.0)),
        ("number weight 0.6", vary(number_weight=0.6)),
        ("question sentences ×2 in whole messages", vary(question_boost=2.0)),
    ]


def ablation_rankings() -> list[tuple[str, Ranking]]:
    """Search quality II, one change at a time: each row adds one kind of built-in
    equivalence (``service.lexicon``) to the row above; the last row is the shipped default
    (the question-sentence weighting of whole messages is measured as a variant: it is off)."""
    from service.scoring import DEFAULT_RANKING as D

    none = dataclasses.replace(D, number_weight=0.0, letters_weight=0.0, general_weight=0.0,
                               family_weight=0.0, question_boost=1.0)
    steps = [
        ("without any (the ranking before this work)", {}),
        ("+ numbers: five ↔ 5, fifth ↔ 5th", {"number_weight": D.number_weight}),
        ("+ letters: Ps ↔ P's", {"letters_weight": D.letters_weight}),
        ("+ general English (WordNet, reviewed)", {"general_weight": D.general_weight}),
        ("+ word families: therapy → psychotherapy", {"family_weight": D.family_weight}),
    ]
    if D.question_boost != 1.0:  # off by default: every boost lost on CounselChat tuning
        steps.append(("+ question sentences of whole messages", {"question_boost": D.question_boost}))
    rows, current = [], none
    for label, change in steps:
        current = dataclasses.replace(current, **change)
        rows.append((label, current))
    return rows
