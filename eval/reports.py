"""Provenance of the generated reports (``docs/performance.md``, ``docs/quality.md``,
``docs/soak.md``): the commit a report measured, stamped into it as a marker line, so a
test can tell when the code has changed since (``tests/docs/test_reports_fresh.py``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- measured: commit=(?P<commit>[0-9a-f]{40}|unknown) clean=(?P<clean>yes|no) -->")

# report → (the command that regenerates it, the folders of the code it measures)
REPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "docs/performance.md": ("make bench", ("service", "indexer", "bench")),
    "docs/quality.md": ("make eval", ("service", "indexer", "eval")),
    "docs/soak.md": ("make soak", ("service", "indexer", "bench")),
}


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


# Files the reports and the browser tests regenerate: changed, they do not make the measured code
# differ from its commit (``make eval bench soak`` run one after the other).
GENERATED = (*REPORTS, "docs/img/")


def tree_is_clean() -> bool | None:
    """Whether the work tree equals HEAD apart from the generated files; None outside git."""
    try:
        proc = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "-z"], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    changed = [entry[3:] for entry in proc.stdout.split("\0") if entry[3:]]  # "XY path", unstripped
    return all(path.startswith(GENERATED) for path in changed)


def marker() -> str:
    """The line a report writer puts at the top of its report."""
    commit = _git("rev-parse", "HEAD") or "unknown"
    clean = "yes" if tree_is_clean() else "no"
    return f"<!-- measured: commit={commit} clean={clean} -->"


def with_marker(text: str) -> str:
    """``text`` with its marker line replaced by (or preceded by) the current one."""
    body = "\n".join(line for line in text.splitlines() if not MARKER.fullmatch(line.strip()))
    return f"{marker()}\n{body}\n"
