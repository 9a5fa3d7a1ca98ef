"""The whole ``python -m eval.quality`` session, without the shared data."""

from __future__ import annotations

import json

from eval import quality as ev


def test_eval_main_without_shared_data(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FAQ_SHARED_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "quality.md"
    assert ev.main(["--report", str(out), "--no-variants"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "absent" in text and "Own corpus" in text
    assert "shared evaluation data not found" in capsys.readouterr().err
    json.dumps(text)  # plain text
