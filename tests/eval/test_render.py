"""The report renders from a results dict holding the own corpus only (no shared data)."""

from __future__ import annotations

from eval.metrics import choose_threshold, sweep_thresholds
from eval.own import evaluate_own, evaluate_own_related, evaluate_own_suggestions, load_own_queries
from eval.quality import environment
from eval.render import render_report


def test_report_renders_without_shared_data(own_engine):
    own = evaluate_own(own_engine, load_own_queries())
    chosen, best = choose_threshold([own["points"]], own["offtopic_conf"])
    report = {
        "env": environment([]), "threshold_in_use": 0.5, "seconds": 1.0, "data_note": "absent",
        "own": own, "own_suggestions": evaluate_own_suggestions(own_engine),
        "own_related": evaluate_own_related(own_engine),
        "threshold": {"chosen": chosen, "best": best, "sets": ["own"],
                      "sweeps": {"own": sweep_thresholds(own["points"])},
                      "offtopic_conf": own["offtopic_conf"], "explanation": "x"},
    }
    text = render_report(report)
    assert text.startswith("# Search quality")
    assert "Own corpus" in text and "Answer threshold" in text
