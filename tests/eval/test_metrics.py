"""The ranking and threshold metrics on hand-made rankings: the report's figures are only
as right as these definitions (``shared/data/README.md``, protocol (a) and (b))."""

from __future__ import annotations

import math

import pytest

from eval import metrics as m

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)

JUDGED = {"b": 3, "d": 4, "c": 1, "e": 2}  # relevant (grade >= 3): b and d
RANKED = ["a", "b", "c", "d"]


def test_binary_ndcg_by_hand():
    # hits at ranks 2 and 4; ideal: two hits at ranks 1 and 2
    expected = (1 / L3 + 1 / math.log2(5)) / (1 / L2 + 1 / L3)
    assert m.ndcg_at_k(RANKED, JUDGED) == pytest.approx(expected)
    assert m.ndcg_at_k(["d", "b"], JUDGED) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x", "y"], JUDGED) == 0.0
    assert m.ndcg_at_k(["a"], {"a": 2}) == 0.0  # nothing relevant: 0, not a division error


def test_graded_ndcg_by_hand():
    # gains grade-1: a 0 (unjudged), b 2, c 0, d 3; ideal from all judged: 3, 2, 1 (e), 0
    dcg = 2 / L3 + 3 / math.log2(5)
    ideal = 3 / L2 + 2 / L3 + 1 / L4
    assert m.graded_ndcg_at_k(RANKED, JUDGED) == pytest.approx(dcg / ideal)
    assert m.graded_ndcg_at_k(["d", "b", "e"], JUDGED) == pytest.approx(1.0)


def test_map_mrr_p1_by_hand():
    relevant = {"b", "d"}
    assert m.average_precision_at_k(RANKED, relevant) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m.reciprocal_rank(RANKED, relevant) == pytest.approx(0.5)
    assert m.precision_at_1(RANKED, relevant) == 0.0
    assert m.precision_at_1(["d"], relevant) == 1.0
    assert m.recall_at_k(RANKED, relevant) == 1.0
    assert m.recall_at_k(RANKED, relevant, k=2) == 0.5
    # MAP@10 divides by all relevant answers, found or not
    assert m.average_precision_at_k(["b"], {"b", "x", "y"}) == pytest.approx(1 / 3)


def test_cutoff_at_k():
    ranked = [f"n{i}" for i in range(10)] + ["b"]
    assert m.reciprocal_rank(ranked, {"b"}) == 0.0
    assert m.ndcg_at_k(ranked, {"b": 4}) == 0.0
    assert m.reciprocal_rank(ranked, {"b"}, k=11) == pytest.approx(1 / 11)


def test_liveqa_metrics_row():
    row = m.liveqa_metrics(RANKED, JUDGED)
    assert set(row) == {"nDCG@10", "nDCG@10 graded", "MAP@10", "P@1", "MRR@10", "judged@10"}
    assert row["judged@10"] == pytest.approx(3 / 10)
    assert m.mean_rows([{"x": 1.0}, {"x": 0.0}]) == {"x": 0.5}


def test_threshold_sweep_and_choice():
    points = [(0.9, True, True), (0.7, True, False), (0.5, True, True), (0.3, False, False)]
    rows = {r["threshold"]: r for r in m.sweep_thresholds(points, (0.0, 0.4, 0.6, 0.8, 1.0))}
    assert rows[0.0]["answered"] == 4 and rows[0.0]["precision"] == pytest.approx(2 / 4)
    assert rows[0.4]["precision"] == pytest.approx(2 / 3) and rows[0.4]["recall"] == pytest.approx(2 / 3)
    assert rows[0.8]["precision"] == 1.0 and rows[0.8]["recall"] == pytest.approx(1 / 3)
    assert rows[1.0]["answered"] == 0 and rows[1.0]["precision"] == 1.0
    chosen, best = m.choose_threshold([points], offtopic=[0.3], margin=0.1)
    assert chosen >= 0.4  # every off-topic confidence refused, with the margin
    assert best["f"] == pytest.approx(max(
        m.f_beta(r["precision"], r["recall"]) for r in m.sweep_thresholds(points) if r["threshold"] >= 0.4))
    # two tuning sets count equally, whatever their sizes
    small = [(0.95, True, True)]
    chosen2, best2 = m.choose_threshold([points * 50, small], offtopic=[0.0], margin=0.0)
    assert len(best2["per_set"]) == 2
    assert best2["f"] == pytest.approx(sum(
        m.f_beta(r["precision"], r["recall"]) for r in best2["per_set"]) / 2)
    # nothing qualifies: never answer
    assert m.choose_threshold([points], offtopic=[0.99])[0] == 1.0
