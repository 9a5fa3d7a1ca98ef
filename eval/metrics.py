"""Ranking and answer-threshold metrics, pure functions on ranked id lists.

Kept apart from the evaluation runner so they can be checked by hand on small rankings
(``tests/eval/test_metrics.py``): the definitions follow ``shared/data/README.md`` exactly
(binary and graded nDCG, trec_eval's MAP cut, MRR, recall), plus the precision/recall sweep
of "answered" and the rule that picks the answer threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

#: Ranking cut-off of every figure (``@10``).
K = 10
#: Answer thresholds swept: 0.00, 0.05, ..., 1.00.
THRESHOLDS = tuple(round(i * 0.05, 2) for i in range(21))


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain with linear gains and a log2(rank + 1) discount."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: Sequence[str], judgments: dict[str, int], k: int = K, rel_min: int = 3) -> float:
    """Binary nDCG@k: gain 1 for a judged grade >= ``rel_min``, ideal = min(R, k) ones."""
    relevant = {d for d, g in judgments.items() if g >= rel_min}
    ideal = dcg([1.0] * min(len(relevant), k))
    if not ideal:
        return 0.0
    return dcg([1.0 if d in relevant else 0.0 for d in ranked[:k]]) / ideal


def graded_ndcg_at_k(ranked: Sequence[str], judgments: dict[str, int], k: int = K) -> float:
    """Graded nDCG@k: gain = grade - 1 (unjudged 0); ideal from all judged answers."""
    ideal = dcg(sorted((g - 1 for g in judgments.values() if g > 1), reverse=True)[:k])
    if not ideal:
        return 0.0
    return dcg([max(judgments.get(d, 1) - 1, 0) for d in ranked[:k]]) / ideal


def average_precision_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    """trec_eval's map_cut_k: precision at each relevant rank <= k, summed, divided by R."""
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked[:k]):
        if d in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    """1 / rank of the first relevant item within the top k, else 0."""
    for i, d in enumerate(ranked[:k]):
        if d in relevant:
            return 1.0 / (i + 1)
    return 0.0


def precision_at_1(ranked: Sequence[str], relevant: set[str]) -> float:
    """1 when the first item is relevant, else 0."""
    return 1.0 if ranked and ranked[0] in relevant else 0.0


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int = K) -> float:
    """Share of the relevant items found in the top k (1/0 for a single relevant item)."""
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def liveqa_metrics(ranked: Sequence[str], judgments: dict[str, int], k: int = K) -> dict[str, float]:
    """Protocol (a) figures of one query (relevant = grade 3 or 4)."""
    relevant = {d for d, g in judgments.items() if g >= 3}
    return {
        "nDCG@10": ndcg_at_k(ranked, judgments, k),
        "nDCG@10 graded": graded_ndcg_at_k(ranked, judgments, k),
        "MAP@10": average_precision_at_k(ranked, relevant, k),
        "P@1": precision_at_1(ranked, relevant),
        "MRR@10": reciprocal_rank(ranked, relevant, k),
        "judged@10": sum(1 for d in ranked[:k] if d in judgments) / k,
    }


def mean_rows(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of per-query metric rows (empty for no rows)."""
    if not rows:
        return {}
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}


def sweep_thresholds(points: Sequence[tuple[float, bool, bool]],
                     thresholds: Iterable[float] = THRESHOLDS) -> list[dict[str, float]]:
    """Precision/recall of "answered" per threshold.

    ``points``: (confidence, answerable, top hit correct). A query is answered when its
    confidence reaches the threshold; an answer is right when the query is answerable and
    its top hit is correct. Precision = right / answered, recall = right / answerable,
    ``false`` = answered queries that should have had no answer or got a wrong one.
    """
    answerable = sum(1 for _, a, _ in points if a)
    rows = []
    for t in thresholds:
        answered = [(a, c) for conf, a, c in points if conf >= t]
        right = sum(1 for a, c in answered if a and c)
        unanswerable = sum(1 for a, _ in answered if not a)
        rows.append({
            "threshold": t,
            "answered": len(answered),
            "right": right,
            "precision": right / len(answered) if answered else 1.0,
            "recall": right / answerable if answerable else 0.0,
            "unanswerable_answered": unanswerable,
        })
    return rows


def f_beta(precision: float, recall: float, beta: float = 0.5) -> float:
    """F-beta of precision and recall (beta < 1 weights precision)."""
    if precision + recall == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def choose_threshold(point_sets: Sequence[Sequence[tuple[float, bool, bool]]], offtopic: Sequence[float],
                     beta: float = 0.5, margin: float = 0.10,
                     thresholds: Sequence[float] = THRESHOLDS) -> tuple[float, dict[str, Any]]:
    """The answer threshold from the tuning sets.

    Among the thresholds at least ``margin`` above the most confident off-topic question
    (so that every off-topic question is refused, with room for ones not in the list), take
    the one with the best F-beta (precision weighted), averaged over the tuning sets so the
    large one does not drown the small one; ties go to the lower threshold, which answers
    more. Returns (threshold, details).
    """
    top_offtopic = max(offtopic, default=0.0)
    sweeps = [sweep_thresholds(points, thresholds) for points in point_sets]
    best: tuple[float, dict[str, Any]] | None = None
    for i, t in enumerate(thresholds):
        if t < top_offtopic + margin - 1e-9 or t <= top_offtopic:
            continue
        per_set = [sw[i] for sw in sweeps]
        score = sum(f_beta(r["precision"], r["recall"], beta) for r in per_set) / max(len(per_set), 1)
        if best is None or score > best[1]["f"] + 1e-12:
            best = (t, {"threshold": t, "f": score, "per_set": per_set, "floor": top_offtopic + margin})
    if best is None:
        return 1.0, {"threshold": 1.0, "f": 0.0, "per_set": [], "floor": top_offtopic + margin}
    return best
