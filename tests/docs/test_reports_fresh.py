"""Generated reports must have measured the code as it is: a report whose recorded commit
predates the last change to the code it measures fails here, naming the command to rerun."""

from __future__ import annotations

import subprocess

import pytest

from eval.reports import MARKER, REPORTS, ROOT


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True)


def _in_git_checkout() -> bool:
    try:
        return git("rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    except OSError:
        return False


@pytest.mark.skipif(not _in_git_checkout(), reason="not a git checkout: report freshness needs the history")
@pytest.mark.parametrize("report", sorted(REPORTS))
def test_generated_report_measured_the_current_code(report):
    command, folders = REPORTS[report]
    text = (ROOT / report).read_text(encoding="utf-8")
    found = MARKER.search(text)
    assert found, f"{report} has no '<!-- measured: … -->' line: regenerate it with `{command}`"
    assert found["clean"] == "yes", f"{report} was measured on an uncommitted tree: commit, then `{command}`"
    recorded = found["commit"]
    last = git("log", "-1", "--format=%H", "--", *folders).stdout.strip()
    if git("cat-file", "-e", f"{recorded}^{{commit}}").returncode != 0:
        pytest.skip(f"{report} records commit {recorded[:12]}, which this clone does not have (shallow clone)")
    ok = git("merge-base", "--is-ancestor", last, recorded).returncode == 0
    assert ok, (f"{report} measured commit {recorded[:12]}, but {' '.join(folders)} changed since "
                f"(last in {last[:12]}): rerun `{command}` and commit the report")


def test_only_generated_files_changed_still_counts_as_a_clean_tree(monkeypatch):
    from eval import reports

    class Done:
        returncode = 0
        stdout = " M docs/quality.md\0 M docs/img/widget-mobile.png\0"

    monkeypatch.setattr(reports.subprocess, "run", lambda *a, **k: Done())
    assert reports.tree_is_clean() is True
    Done.stdout = " M docs/quality.md\0 M service/search.py\0"
    assert reports.tree_is_clean() is False
