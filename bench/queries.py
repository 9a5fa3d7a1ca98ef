"""The benchmark's query set: LiveQA questions, MedQuAD questions and their short prefixes,
normalised and cut like the API does, in a seeded order so that every run (and a run cut
short by its time budget) measures the same mix."""

from __future__ import annotations

import random

SEED = 20240917


def normalise(text: str, max_chars: int) -> str:
    """The API's normalisation (``service.query.normalise_query``), then cut at a word boundary
    to ``max_chars`` as a search box with that ``maxlength`` would, so no GET is refused."""
    from service.query import normalise_query

    q = normalise_query(text)
    if len(q) > max_chars:
        q = q[:max_chars + 1].rsplit(" ", 1)[0][:max_chars]
    return q


def build_queries(liveqa: list[dict], questions: list[str], n_questions: int, n_prefixes: int,
                  n_liveqa: int, max_chars: int) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(kind, query) pairs in a seeded random order; plus warm-up and profile questions."""
    rng = random.Random(SEED)
    out: dict[str, str] = {}
    for item in liveqa[:n_liveqa]:
        for kind, key in (("LiveQA summary", "summary"), ("LiveQA message", "message")):
            q = normalise(item.get(key) or "", max_chars)
            if q:
                out.setdefault(q, kind)
    pool = list(dict.fromkeys(normalise(q, max_chars) for q in questions if q.strip()))
    rng.shuffle(pool)
    taken = 0
    for q in pool:
        if taken >= n_questions:
            break
        if q not in out:
            out[q] = "MedQuAD question"
            taken += 1
    rest = pool[n_questions:]
    taken = 0
    for i, q in enumerate(rest):
        if taken >= n_prefixes:
            break
        words = q.split()
        k = 1 + i % 3
        if len(words) <= k:
            continue
        prefix = " ".join(words[:k])
        if prefix not in out:
            out[prefix] = f"prefix ({k} word{'s' if k > 1 else ''})"
            taken += 1
    pairs = [(kind, q) for q, kind in out.items()]
    rng.shuffle(pairs)
    spare = [q for q in rest[len(rest) // 2:] if q not in out]
    return pairs, spare[:20], spare[20:]
