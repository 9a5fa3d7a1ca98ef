"""Evaluation on the project's own corpus (``corpus/``) with the judged queries of
``eval/queries.jsonl``.

The own corpus has no public baseline, so these figures are judged against the targets
directly: search accuracy@1, MRR and top 3 per kind of query (typos included), what
``/v1/answer`` answers and refuses, whether each heading's own prefix suggests it, and
whether every linked article comes back as related.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.harness import normalise, top_hit
from eval.metrics import K

if TYPE_CHECKING:
    from service.search import Engine

REPO = Path(__file__).resolve().parents[1]
OWN_CORPUS = REPO / "corpus"
OWN_QUERIES = REPO / "eval" / "queries.jsonl"


def load_own_queries(path: Path = OWN_QUERIES) -> list[dict]:
    """The judged queries: {q, expect (a section id, or None when off-topic), kind, split}.

    ``split`` is ``tune`` or ``heldout``, alternating within each kind: only the tuning half
    may inform a choice; the held-out half is reported.
    """
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate_own(engine: Engine, queries: Sequence[dict]) -> dict[str, Any]:
    """Search accuracy@1 / MRR@10 / top-3, answers and refusals on the judged queries."""
    rows = []
    for item in queries:
        q = normalise(item["q"])
        res = engine.search(q, limit=K, snippets=False)
        ids = [r["id"] for r in res["results"]]
        ans = engine.answer(q, snippets=False)
        expect = item["expect"]
        rank = ids.index(expect) + 1 if expect in ids else None
        rows.append({
            **item,
            "ids": ids,
            "rank": rank,
            "did_you_mean": res["did_you_mean"],
            "answered": ans["answer"]["id"] if ans["answer"] else None,
            "top": top_hit(ans),
            "confidence": ans["confidence"],
        })
    judged = [r for r in rows if r["expect"] is not None]
    offtopic = [r for r in rows if r["expect"] is None]
    answered = [r for r in judged if r["answered"]]
    by_kind: dict[str, dict[str, float]] = {}
    for kind in sorted({r["kind"] for r in judged}):
        sub = [r for r in judged if r["kind"] == kind]
        by_kind[kind] = {
            "queries": len(sub),
            "acc@1": sum(r["rank"] == 1 for r in sub) / len(sub),
            "top3": sum(bool(r["rank"] and r["rank"] <= 3) for r in sub) / len(sub),
            "MRR@10": sum(1 / r["rank"] if r["rank"] else 0.0 for r in sub) / len(sub),
        }
    typos = [r for r in judged if r["kind"] == "typo"]
    by_split: dict[str, dict[str, Any]] = {}
    for split in sorted({r.get("split", "tune") for r in rows}):
        sub = [r for r in judged if r.get("split", "tune") == split]
        off = [r for r in offtopic if r.get("split", "tune") == split]
        by_split[split] = {
            "queries": len(sub),
            "acc@1": sum(r["rank"] == 1 for r in sub) / max(len(sub), 1),
            "MRR@10": sum(1 / r["rank"] if r["rank"] else 0.0 for r in sub) / max(len(sub), 1),
            "offtopic": len(off),
            "offtopic_null": sum(r["answered"] is None for r in off),
            "by_kind": {
                kind: sum(r["rank"] == 1 for r in sub if r["kind"] == kind) / max(sum(r["kind"] == kind for r in sub), 1)
                for kind in sorted({r["kind"] for r in sub})
            },
        }
    return {
        "queries": len(rows),
        "judged": len(judged),
        "acc@1": sum(r["rank"] == 1 for r in judged) / max(len(judged), 1),
        "MRR@10": sum(1 / r["rank"] if r["rank"] else 0.0 for r in judged) / max(len(judged), 1),
        "top3": sum(bool(r["rank"] and r["rank"] <= 3) for r in judged) / max(len(judged), 1),
        "typo_top3": sum(bool(r["rank"] and r["rank"] <= 3) for r in typos) / max(len(typos), 1),
        "typo_queries": len(typos),
        "typo_did_you_mean": sum(bool(r["did_you_mean"]) for r in typos),
        "corrected_non_typos": [r["q"] for r in judged if r["kind"] != "typo" and r["did_you_mean"]],
        "answer_rate": len(answered) / max(len(judged), 1),
        "answer_accuracy": sum(r["answered"] == r["expect"] for r in answered) / max(len(answered), 1),
        "answered_right": sum(r["answered"] == r["expect"] for r in answered),
        "answered": len(answered),
        "offtopic": len(offtopic),
        "offtopic_null": sum(r["answered"] is None for r in offtopic),
        "offtopic_answered": [r["q"] for r in offtopic if r["answered"] is not None],
        "offtopic_max_conf": max((r["confidence"] for r in offtopic), default=0.0),
        "by_kind": by_kind,
        "by_split": by_split,
        "misses": [
            {"q": r["q"], "kind": r["kind"], "split": r.get("split", "tune"), "expect": r["expect"],
             "got": r["ids"][:3], "rank": r["rank"]}
            for r in judged if r["rank"] != 1
        ],
        "points": [(r["confidence"], r["expect"] is not None, r["top"] == r["expect"] and r["expect"] is not None)
                   for r in rows],
        "offtopic_conf": [r["confidence"] for r in offtopic],
        # Only the tuning half may choose anything (the answer threshold included).
        "points_tune": [(r["confidence"], r["expect"] is not None, r["top"] == r["expect"] and r["expect"] is not None)
                        for r in rows if r.get("split", "tune") == "tune"],
        "offtopic_conf_tune": [r["confidence"] for r in offtopic if r.get("split", "tune") == "tune"],
    }


def own_sections(engine: Engine) -> list[dict]:
    """Every section of the served generation: {id, question, slug}."""
    gen = engine.generation()
    return [{"id": e["id"], "question": e["text"], "slug": e["position"][0]} for e in gen.suggester.entries
            if "alternate" not in e]


def evaluate_own_suggestions(engine: Engine, lengths: Sequence[int] = (3, 5, 10)) -> dict[str, Any]:
    """Does each heading's own prefix bring it into the top 3 of ``Engine.suggest``?"""
    sections = own_sections(engine)
    out: dict[str, Any] = {"sections": len(sections), "by_length": {}}
    for n in lengths:
        hits, ambiguous, misses = 0, 0, []
        for s in sections:
            prefix = s["question"][:n]
            ids = [x["id"] for x in engine.suggest(prefix, limit=8)["suggestions"]]
            same = sum(1 for o in sections if o["question"][:n].lower() == prefix.lower())
            if same > 3:
                ambiguous += 1
            if s["id"] in ids[:3]:
                hits += 1
            else:
                misses.append({"prefix": prefix, "id": s["id"], "same_prefix": same})
        out["by_length"][n] = {"share": hits / len(sections), "hits": hits,
                               "ambiguous": ambiguous, "misses": misses}
    full = sum(1 for s in sections if s["id"] in [x["id"] for x in engine.suggest(s["question"], limit=8)
                                                   ["suggestions"]][:3])
    out["full"] = full / max(len(sections), 1)
    return out


def evaluate_own_related(engine: Engine) -> dict[str, Any]:
    """Every article's linked articles (links to and from it) must be among its related."""
    gen = engine.generation()
    expected = found = 0
    rows = []
    for slug, art in sorted(gen.articles.items()):
        linked = set(art["related"]) | set(gen.backlinks.get(slug, []))
        linked.discard(slug)
        got = {r["slug"] for r in engine.related(slug, limit=10)["related"]}
        expected += len(linked)
        found += len(linked & got)
        rows.append({"slug": slug, "linked": sorted(linked), "missing": sorted(linked - got)})
    return {"recall": found / expected if expected else 1.0, "expected": expected, "found": found,
            "articles": rows}


def alternates_from(queries: Sequence[dict]) -> str:
    """``corpus/alternates.txt`` lines attaching each paraphrase query to its judged section:
    what an editor pastes from ``faq-index report`` (the visitors' own wording, verbatim)."""
    lines = ["# written by eval.own.alternates_from: the tuning half's paraphrase queries"]
    lines += [f"{q['expect']}: {q['q']}" for q in queries if q["kind"] == "paraphrase" and q["expect"]]
    return "\n".join(lines) + "\n"


def evaluate_alternates(plain: Engine, queries: Sequence[dict], work: Path,
                        make_engine: Callable[[Path, Path], Engine]) -> dict[str, Any]:
    """The effect of alternate phrasings written from the tuning half only, measured on the
    held-out half: the own corpus is copied, given an ``alternates.txt`` from the tuning
    half's paraphrase queries, built, and compared with ``plain`` (the same corpus without).
    ``make_engine(corpus, index)`` builds and opens the copy."""
    tune = [q for q in queries if q.get("split", "tune") == "tune"]
    held = [q for q in queries if q.get("split") == "heldout"]
    corpus = work / "own-alternates"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(OWN_CORPUS, corpus)
    text = alternates_from(tune)
    (corpus / "alternates.txt").write_text(text, encoding="utf-8")
    with_alternates = make_engine(corpus, work / "own-alternates-index")
    rows = []
    for label, subset in (
        ("held-out paraphrase", [q for q in held if q["kind"] == "paraphrase"]),
        ("held-out, every kind", held),
        ("tuning paraphrase (in-sample: their own words were pasted)", [q for q in tune if q["kind"] == "paraphrase"]),
    ):
        before, after = evaluate_own(plain, subset), evaluate_own(with_alternates, subset)
        rows.append({"set": label, "queries": before["judged"], "off-topic": before["offtopic"],
                     "acc@1 without": before["acc@1"], "acc@1 with": after["acc@1"],
                     "MRR@10 without": before["MRR@10"], "MRR@10 with": after["MRR@10"],
                     "off-topic answered without": before["offtopic"] - before["offtopic_null"],
                     "off-topic answered with": after["offtopic"] - after["offtopic_null"]})
    return {"phrasings": text.count("\n") - 1, "rows": rows}
