"""The reference BM25 baseline (``shared/data/tools/bm25_baseline.py``), run in this session.

It needs bm25s and PyStemmer, which the project does not depend on, so it runs from its own
virtualenv (``.venv-baseline``, created when missing) in a subprocess. When it cannot be
installed or fails, the README's published figures stand in and the report says so.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.protocol import PREFIX_CHARS

REPO = Path(__file__).resolve().parents[1]
BASELINE_VENV = REPO / ".venv-baseline"
BASELINE_PACKAGES = ("bm25s==0.3.16", "PyStemmer==3.1.0")

#: The README's published baseline figures: used only when the baseline cannot be run.
PUBLISHED_BASELINE: dict[str, Any] = {
    "bm25s": "0.3.16 (published figures of shared/data/README.md, not run)",
    "medquad": {
        "summary": {"nDCG@10": 0.4502, "nDCG@10 graded": 0.4505, "MAP@10": 0.3335, "P@1": 0.2051,
                    "MRR@10": 0.4208, "judged@10": 0.22},
        "message": {"nDCG@10": 0.2985, "nDCG@10 graded": 0.2957, "MAP@10": 0.2345, "P@1": 0.2051,
                    "MRR@10": 0.3167, "judged@10": 0.13},
        "subject+message": {"nDCG@10": 0.3434, "nDCG@10 graded": 0.3550, "MAP@10": 0.2648,
                            "P@1": 0.2308, "MRR@10": 0.3624, "judged@10": 0.17},
    },
    "counselchat": {
        "questionText -> title+answers": {"MRR@10": 0.5269, "Recall@10": 0.6341, "queries": 41},
        "title first 1 word(s) -> title+answers": {"MRR@10": 0.0149, "Recall@10": 0.0488, "queries": 41},
        "title first 2 word(s) -> title+answers": {"MRR@10": 0.0264, "Recall@10": 0.0732, "queries": 41},
        "title first 3 word(s) -> title+answers": {"MRR@10": 0.1301, "Recall@10": 0.2439, "queries": 41},
        "title first 5 word(s) -> title+answers": {"MRR@10": 0.3655, "Recall@10": 0.5500, "queries": 40},
        "full title -> title+answers": {"MRR@10": 0.9114, "Recall@10": 0.9756, "queries": 41},
    },
}

_PREFIX_SCRIPT = r"""
import csv, json, os, sys
sys.path.insert(0, sys.argv[1])
import bm25_baseline as B
data_dir, lengths = sys.argv[2], [int(x) for x in sys.argv[3].split(",")]
rows = list(csv.DictReader(open(os.path.join(data_dir, "counselchat/counselchat.csv"), encoding="utf-8", newline="")))
sections = {}
for r in rows:
    s = sections.setdefault(r["questionLink"], {"title": r["questionTitle"], "answers": [], "splits": set()})
    if r["answerText"] not in s["answers"]:
        s["answers"].append(r["answerText"])
    s["splits"].add(r["split"])
keys = list(sections)
test = [k for k in keys if "test" in sections[k]["splits"]]
retriever = B.build([sections[k]["title"] + " " + " ".join(sections[k]["answers"]) for k in keys])
out = {}
for n in lengths:
    qs = [k for k in test if len(sections[k]["title"]) > n]
    rr, rec = [], []
    for k in qs:
        try:
            idx, _ = B.search(retriever, [sections[k]["title"][:n]])
            ranked = [keys[i] for i in idx[0]]
        except Exception:
            ranked = []
        pos = ranked.index(k) + 1 if k in ranked else None
        rr.append(1 / pos if pos else 0.0)
        rec.append(1.0 if pos else 0.0)
    out[f"{n} chars"] = {"MRR@10": sum(rr) / len(rr), "Recall@10": sum(rec) / len(rec), "queries": len(qs)}
print(json.dumps(out))
"""


def ensure_baseline_venv(log: Callable[[str], None]) -> tuple[Path | None, str]:
    """``.venv-baseline`` with bm25s and PyStemmer, created when missing; (python, note)."""
    python = BASELINE_VENV / "bin" / "python"
    check = [str(python), "-c", "import bm25s, Stemmer; print(bm25s.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, "existing .venv-baseline"
    log(f"creating {BASELINE_VENV.name} and installing {' '.join(BASELINE_PACKAGES)} ...")
    try:
        if not python.exists():
            subprocess.run(["python3", "-m", "venv", str(BASELINE_VENV)], check=True, capture_output=True,
                           timeout=300)
        subprocess.run([str(BASELINE_VENV / "bin" / "pip"), "install", "--quiet", *BASELINE_PACKAGES],
                       check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        detail = detail.decode("utf-8", "replace").strip().splitlines()[-1:] if detail else []
        return None, f"could not install the baseline ({type(exc).__name__}{': ' + detail[0] if detail else ''})"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, "the baseline packages do not import after installation"
    return python, "created .venv-baseline"


def run_baseline(data_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the reference baseline in this session; fall back to the README's figures."""
    python, note = ensure_baseline_venv(log)
    script = data_dir / "tools" / "bm25_baseline.py"
    if python is None:
        log(f"BM25 baseline not run: {note}; using the README's published figures")
        return {"ran": False, "note": note, **PUBLISHED_BASELINE, "prefix_chars": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bm25-runs-") as runs:
        proc = subprocess.run([str(python), str(script), str(data_dir), runs], capture_output=True,
                              text=True, timeout=900)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        log(f"BM25 baseline failed ({tail[0]}); using the README's published figures")
        return {"ran": False, "note": f"the baseline script failed: {tail[0]}", **PUBLISHED_BASELINE,
                "prefix_chars": {}}
    result = json.loads(proc.stdout)
    result["ran"] = True
    result["note"] = f"run in this session ({note}), {time.perf_counter() - started:.1f} s"
    prefix = subprocess.run([str(python), "-c", _PREFIX_SCRIPT, str(script.parent), str(data_dir),
                             ",".join(str(n) for n in PREFIX_CHARS)], capture_output=True, text=True,
                            timeout=900)
    result["prefix_chars"] = json.loads(prefix.stdout) if prefix.returncode == 0 else {}
    return result
