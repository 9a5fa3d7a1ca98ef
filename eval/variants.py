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
    ]
