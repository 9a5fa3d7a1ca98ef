"""The BM25 baseline run falls back to the README's published figures when it cannot run."""

from __future__ import annotations

import pytest

from eval import baseline


def test_baseline_falls_back_to_published_figures(monkeypatch, tmp_path):
    monkeypatch.setattr(baseline, "ensure_baseline_venv", lambda log: (None, "could not install the baseline (no network)"))
    messages: list[str] = []
    result = baseline.run_baseline(tmp_path, messages.append)
    assert result["ran"] is False
    assert "no network" in result["note"]
    assert result["medquad"]["summary"]["nDCG@10"] == pytest.approx(0.4502)
    assert any("published figures" in m for m in messages)
