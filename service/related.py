"""Related articles: the ones an article links to, the ones linking to it, then similar ones
(Whoosh's key terms of the article, scored like a search over live-document statistics)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from service.generations import Generation
from service.scoring import top_k


def similar(gen: Generation, slug: str, limit: int) -> list[tuple[str, float]]:
    """Whoosh's more-like-this: the article's key terms (answers and questions) searched
    for, each article scored by its best section; cached per generation."""
    key = (slug, limit)
    cached = gen.similar_cache.get(key)
    if cached is not None:
        return cached
    searcher = gen.searcher()
    docnums = list(searcher.document_numbers(slug=slug))
    keys = [("answer", t, w) for t, w in searcher.key_terms(docnums, "answer", numterms=20)] if docnums else []
    keys += [("question", t, w) for t, w in searcher.key_terms(docnums, "question", numterms=8)] if docnums else []
    ranked: list[tuple[str, float]] = []
    if keys:
        # Scored like a search (live-document statistics), each term weighted by its
        # key-term score: an update ranks these as a full build would.
        top = max(w for _, _, w in keys)
        total = np.zeros(gen.scorer.n_all)
        for f, t, w in keys:
            ids, weights = gen.scorer.postings(f, t)
            total[ids] += (w / top) * weights
        total[~gen.scorer.live] = 0.0
        total[gen.docs_by_slug.get(slug, np.empty(0, dtype=np.int64))] = 0.0
        scores: dict[str, float] = defaultdict(float)
        for d in top_k(np.flatnonzero(total > 0), total, 200)[:200].tolist():
            other = gen.slug_of[d]
            scores[other] = max(scores[other], float(total[d]))
        if scores:
            best = max(scores.values())
            ranked = [(s, v / best) for s, v in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
    if len(gen.similar_cache) >= 4096:
        gen.similar_cache.clear()
    gen.similar_cache[key] = ranked
    return ranked

