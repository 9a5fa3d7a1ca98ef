"""indexer/report.py and ``faq-index report``: the analytics report as text, JSON and
alternates lines; the request-id tag on a reindex child's output lines."""

from __future__ import annotations

import json
import sys

from indexer.cli import main
from indexer.publish import build
from indexer.report import render_report
from service.analytics import Analytics

UNANSWERED = {"answer": None, "confidence": 0.25, "alternatives": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}

REPORT = {
    "enabled": True, "days": 7, "from": "2026-02-23", "to": "2026-03-01", "min_count": 3,
    "top_queries": [{"query": "what is psychotherapy", "count": 12,
                     "first": {"id": "goals-of-psychotherapy#what-is-psychotherapy",
                               "question": "What Is Psychotherapy?", "url": "/goals-of-psychotherapy/#what-is-psychotherapy"}}],
    "zero_results": [{"query": "sliding scale fees", "count": 4, "first": None}],
    "low_confidence": [],
    "alternates": ["# choose a section: sliding scale fees"],
}


def test_render_lists_each_query_with_its_count_and_first_section():
    text = render_report(REPORT)
    assert "2026-02-23 to 2026-03-01" in text and "at least 3 times" in text
    assert "    12  what is psychotherapy" in text
    assert "first: goals-of-psychotherapy#what-is-psychotherapy  (What Is Psychotherapy?)" in text
    assert "     4  sliding scale fees\n          first: (nothing ranks for it)" in text
    assert text.endswith("# choose a section: sliding scale fees")
    assert "FAQ_ANALYTICS is off" not in text


def test_render_says_when_analytics_are_off_and_lists_are_empty():
    text = render_report({**REPORT, "enabled": False, "top_queries": [], "zero_results": [], "alternates": []})
    assert "FAQ_ANALYTICS is off" in text
    assert text.count("(none)") == 4  # three lists and the alternates


def test_report_command_prints_unanswered_queries_as_alternates_lines(make_config, real_corpus, capsys):
    config = make_config(real_corpus)
    build(config)
    analytics = Analytics(config)
    for _ in range(3):
        analytics.record_answer("What is psychotherapy", UNANSWERED)
        analytics.record_search("psychotherapy goals", {"total": 12})
    analytics.record_search("seen only once", {"total": 0})
    analytics.flush()

    assert main(["report", "--days", "7", "--index", str(config.index_dir)]) == 0
    out = capsys.readouterr().out
    assert "goals-of-psychotherapy#what-is-psychotherapy: what is psychotherapy" in out.splitlines()
    assert "psychotherapy goals" in out and "seen only once" not in out

    assert main(["report", "--json", "--index", str(config.index_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["days"] == 30 and report["min_count"] == 3
    assert report["low_confidence"][0]["query"] == "what is psychotherapy"
    assert report["low_confidence"][0]["first"]["id"] == "goals-of-psychotherapy#what-is-psychotherapy"


def test_report_days_must_be_a_positive_integer(make_config, real_corpus, capsys):
    config = make_config(real_corpus)
    for bad in ("0", "-3", "seven"):
        try:
            code = main(["report", "--days", bad, "--index", str(config.index_dir)])
        except SystemExit as exc:
            code = exc.code
        assert code == 2
    assert "--days" in capsys.readouterr().err


def test_a_reindex_childs_output_lines_carry_the_request_id(make_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAQ_REQUEST_ID", "editor-req-0001")
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # main() wraps it; restored after the test
    assert main(["stats", "--index", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("[request editor-req-0001] ") and "no generation has been published" in err
