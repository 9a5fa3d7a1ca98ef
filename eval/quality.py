"""Search-quality evaluation: ``python -m eval.quality`` (``make eval``).

Measures through the code path the API uses: the evaluation data is rendered into HTML
pages (``eval.datasets``), each corpus is built with the real indexer
(``indexer.publish.build``) into a temporary folder, and queried with the real
``service.search.Engine``. The reference BM25 baseline (``../shared/data/tools``) is run in
the same session from its own virtualenv (``.venv-baseline``, created when missing).

What is measured (see docs/quality.md, which every run rewrites):

- the project's own corpus with the judged queries of ``eval/queries.jsonl``: search
  accuracy@1 and MRR, typo queries in the top 3, ``/v1/answer`` accuracy and off-topic
  refusals, suggestions for each heading's own prefix, related-article recall;
- MedQuAD + LiveQA (protocol (a) of shared/data/README.md): nDCG@10, graded nDCG@10, MAP@10,
  P@1, MRR@10 for the summary, message and subject+message queries; P@1 of the answer
  endpoint; precision@5 of "similar" related documents;
- CounselChat (protocol (b)): MRR@10 and Recall@10 of the test questions, and of title
  prefixes as typed through the suggester and through search;
- the answer threshold: a sweep of precision/recall of "answered", tuned on the own queries
  and CounselChat train/val, with LiveQA reported as held out;
- a small table of ranking variants on the tuning sets (CounselChat val + a train sample,
  the own queries). LiveQA and CounselChat test are never used to choose anything.

Without ``../shared/data`` (or ``$FAQ_SHARED_DATA``) only the own corpus is evaluated.

This module runs the CounselChat and MedQuAD evaluations and the whole session (``main``);
the pieces it assembles live beside it: ``eval.metrics`` (the metrics), ``eval.harness``
(build and query like the API), ``eval.own`` (the own corpus), ``eval.baseline`` (BM25),
``eval.variants`` (rankings compared), ``eval.protocol`` (fixed choices) and
``eval.render`` (the markdown).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.baseline import PUBLISHED_BASELINE, run_baseline
from eval.harness import (
    build_index,
    make_engine,
    normalise,
    open_config,
    prepared_corpus,
    ranked_ids,
    top_hit,
)
from eval.metrics import (
    K,
    choose_threshold,
    liveqa_metrics,
    mean_rows,
    recall_at_k,
    reciprocal_rank,
    sweep_thresholds,
)
from eval.own import (
    OWN_CORPUS,
    evaluate_alternates,
    evaluate_own,
    evaluate_own_related,
    evaluate_own_suggestions,
    load_own_queries,
)
from eval.protocol import LIVEQA_VARIANTS, PREFIX_CHARS, RELATED_SAMPLE, SEED
from eval.render import NOTES, render_report, threshold_explanation
from eval.reports import tree_is_clean
from eval.variants import ablation_rankings, ranking_variants

if TYPE_CHECKING:
    from indexer.settings import Config
    from service.search import Engine

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "quality.md"


# =========================================================================== CounselChat


def evaluate_counselchat(engine: Engine, questions: Sequence[dict], mapping: dict[str, str],
                         query: Callable[[dict], str] = lambda q: q["text"]) -> dict[str, float]:
    """MRR@10 / Recall@10 of ``query(question)`` against the question's own section."""
    rr, rec = [], []
    for q in questions:
        ids = ranked_ids(engine, query(q))
        target = {mapping[q["link"]]}
        rr.append(reciprocal_rank(ids, target))
        rec.append(recall_at_k(ids, target))
    n = max(len(questions), 1)
    return {"MRR@10": sum(rr) / n, "Recall@10": sum(rec) / n, "queries": len(questions)}


def evaluate_prefixes(engine: Engine, questions: Sequence[dict], mapping: dict[str, str],
                      lengths: Sequence[int] = PREFIX_CHARS) -> dict[str, dict[str, dict[str, float]]]:
    """Title prefixes as typed (cut mid-word) through ``suggest`` and through ``search``.

    A length row only holds titles longer than that length (as the baseline's word rows).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    rows: list[tuple[str, Sequence[dict], Callable[[dict], str]]] = [
        (f"{n} chars", [q for q in questions if len(q["title"]) > n], lambda q, n=n: q["title"][:n])
        for n in lengths
    ]
    rows.append(("full title", list(questions), lambda q: q["title"]))
    for label, qs, fn in rows:
        sug_rr, sug_rec, s_rr, s_rec = [], [], [], []
        for q in qs:
            target = {mapping[q["link"]]}
            text = fn(q)
            sug = [x["id"] for x in engine.suggest(text, limit=K)["suggestions"]]
            sug_rr.append(reciprocal_rank(sug, target))
            sug_rec.append(recall_at_k(sug, target))
            ids = ranked_ids(engine, text)
            s_rr.append(reciprocal_rank(ids, target))
            s_rec.append(recall_at_k(ids, target))
        n = max(len(qs), 1)
        out[label] = {
            "suggest": {"MRR@10": sum(sug_rr) / n, "Recall@10": sum(sug_rec) / n, "queries": len(qs)},
            "search": {"MRR@10": sum(s_rr) / n, "Recall@10": sum(s_rec) / n, "queries": len(qs)},
        }
    return out


def counselchat_points(engine: Engine, questions: Sequence[dict], mapping: dict[str, str]) -> list[tuple[float, bool, bool]]:
    """(confidence, answerable, correct) of ``answer(questionText)``: every question is answerable."""
    points = []
    for q in questions:
        ans = engine.answer(normalise(q["text"]), snippets=False)
        points.append((ans["confidence"], True, top_hit(ans) == mapping[q["link"]]))
    return points


# =========================================================================== MedQuAD


def evaluate_liveqa(engine: Engine, queries: Sequence[dict], qrels: dict[str, dict[str, int]],
                    section_to_qa: dict[str, str], variants: Sequence[str] | None = None) -> dict[str, Any]:
    """Protocol (a) means per LiveQA query variant, and ``/v1/answer``'s P@1 on the same queries."""
    out: dict[str, Any] = {}
    for name, fn in LIVEQA_VARIANTS.items():
        if variants is not None and name not in variants:
            continue
        rows, ans_rows = [], []
        for q in queries:
            text = normalise(fn(q))
            ranked = [section_to_qa.get(i, i) for i in ranked_ids(engine, text)]
            rows.append(liveqa_metrics(ranked, qrels[q["qid"]]))
            ans = engine.answer(text, snippets=False)
            if ans["answer"]:
                qa = section_to_qa.get(ans["answer"]["id"])
                ans_rows.append(1.0 if qrels[q["qid"]].get(qa, 0) >= 3 else 0.0)
        out[name] = mean_rows(rows)
        out[name]["answered"] = len(ans_rows) / max(len(queries), 1)
        out[name]["answer P@1"] = sum(ans_rows) / len(ans_rows) if ans_rows else 0.0
        out[name]["answers"] = len(ans_rows)
    return out


def liveqa_points(engine: Engine, queries: Sequence[dict], qrels: dict[str, dict[str, int]],
                  section_to_qa: dict[str, str]) -> list[tuple[float, bool, bool]]:
    """(confidence, answerable, correct) of every LiveQA summary (answerable: a grade 3-4 answer exists)."""
    points = []
    for q in queries:
        judgments = qrels.get(q["qid"], {})
        answerable = any(g >= 3 for g in judgments.values())
        ans = engine.answer(normalise(q["summary"]), snippets=False)
        hit = top_hit(ans)
        correct = answerable and judgments.get(section_to_qa.get(hit or "", ""), 0) >= 3
        points.append((ans["confidence"], answerable, correct))
    return points


def medquad_related_truth(docs: Sequence[dict]) -> dict[str, set[str]]:
    """slug → slugs of documents sharing a focus name (focus or synonym) or a UMLS CUI."""
    by_key: dict[str, set[str]] = defaultdict(set)
    keys_of: dict[str, set[str]] = {}
    for d in docs:
        slug = d["doc_id"].lower()
        keys = {"n:" + " ".join(n.lower().split()) for n in [d.get("focus", "")] + list(d.get("synonyms") or []) if n}
        keys |= {"c:" + c for c in d.get("cuis") or []}
        keys_of[slug] = keys
        for key in keys:
            by_key[key].add(slug)
    return {slug: set().union(*(by_key[k] for k in keys)) - {slug} if keys else set()
            for slug, keys in keys_of.items()}


def evaluate_medquad_related(engine: Engine, docs: Sequence[dict], sample: int = RELATED_SAMPLE) -> dict[str, Any]:
    """Precision@5 of the \"similar\" related documents of a seeded sample of MedQuAD pages."""
    truth = medquad_related_truth(docs)
    candidates = sorted(s for s, rel in truth.items() if rel)
    picked = random.Random(SEED).sample(candidates, min(sample, len(candidates)))
    precisions, any_hit, returned = [], 0, 0
    started = time.perf_counter()
    for slug in picked:
        similar = [r["slug"] for r in engine.related(slug, limit=5)["related"] if r["reason"] == "similar"][:5]
        returned += len(similar)
        good = sum(1 for s in similar if s in truth[slug])
        precisions.append(good / 5)
        any_hit += good > 0
    n = max(len(picked), 1)
    return {"documents": len(picked), "with_related": len(candidates), "P@5": sum(precisions) / n,
            "hit@5": any_hit / n, "returned": returned / n, "seconds": time.perf_counter() - started}


# =========================================================================== ranking variants


def evaluate_variants(own_config: Config, own_queries: Sequence[dict], cc_config: Config | None,
                      tuning_questions: Sequence[dict], cc_mapping: dict[str, str],
                      log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One row per ranking variant: the own queries' tuning half and, with CounselChat, its
    tuning sample. Held-out sets never take part in choosing a variant."""
    rows = []
    own_queries = [q for q in own_queries if q.get("split", "tune") == "tune"]
    for label, ranking in ranking_variants():
        started = time.perf_counter()
        own = evaluate_own(make_engine(own_config, ranking), own_queries)
        row = {"variant": label, "own acc@1": own["acc@1"], "own MRR@10": own["MRR@10"],
               "typo top3": own["typo_top3"]}
        if cc_config is not None:
            cc = evaluate_counselchat(make_engine(cc_config, ranking), tuning_questions, cc_mapping)
            row.update({"CC tune MRR@10": cc["MRR@10"], "CC tune R@10": cc["Recall@10"]})
        row["seconds"] = time.perf_counter() - started
        log(f"  variant {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
        rows.append(row)
    return rows


def evaluate_ablation(own_config: Config, own_queries: Sequence[dict], cc_config: Config | None,
                      cc_sets: dict[str, Sequence[dict]], cc_mapping: dict[str, str], mq: dict | None,
                      log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One row per cumulative change of ``ablation_rankings``, on every set: the own tuning
    and held-out halves, CounselChat tuning and test (whole questions), LiveQA messages and
    summaries (whole messages). Reported, not tuned: only the tuning columns chose values."""
    rows = []
    tune = [q for q in own_queries if q.get("split", "tune") == "tune"]
    held = [q for q in own_queries if q.get("split") == "heldout"]
    for label, ranking in ablation_rankings():
        started = time.perf_counter()
        engine = make_engine(own_config, ranking)
        row: dict[str, Any] = {"change": label,
                               "own tune acc@1": evaluate_own(engine, tune)["acc@1"],
                               "own held-out acc@1": evaluate_own(engine, held)["acc@1"]}
        if cc_config is not None:
            cc_engine = make_engine(cc_config, ranking)
            for name, questions in cc_sets.items():
                row[f"CC {name} MRR@10"] = evaluate_counselchat(cc_engine, questions, cc_mapping)["MRR@10"]
        if mq is not None:
            lq = evaluate_liveqa(make_engine(mq["config"], ranking), mq["queries"], mq["qrels"],
                                 mq["section_to_qa"], ("message", "summary"))
            row["LiveQA message nDCG@10"] = lq["message"]["nDCG@10"]
            row["LiveQA summary nDCG@10"] = lq["summary"]["nDCG@10"]
        row["seconds"] = time.perf_counter() - started
        log(f"  ablation {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
        rows.append(row)
    return rows


# =========================================================================== run


def environment(argv: Sequence[str]) -> dict[str, str]:
    """What the report's header states about this run: date, commit, command, machine."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if not tree_is_clean():
        commit += "+dirty"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "command": " ".join(["python -m eval.quality", *argv]),
        "nproc": str(os.cpu_count() or "?"),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The whole evaluation session; writes the report unless ``--no-report``."""
    from eval.datasets import (
        evaluated_liveqa,
        load_counselchat,
        load_liveqa_queries,
        load_medquad,
        load_qrels,
        render_counselchat,
        render_medquad,
        shared_data_dir,
        split_questions,
    )
    from eval.reports import with_marker

    parser = argparse.ArgumentParser(prog="python -m eval.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=REPORT, help="markdown report to write (default docs/quality.md)")
    parser.add_argument("--no-report", action="store_true", help="print the tables only")
    parser.add_argument("--work", type=Path, help="keep the rendered corpora and indexes in this folder")
    parser.add_argument("--reuse", action="store_true",
                        help="with --work: reuse indexes built by an earlier run (development only; noted in the report)")
    parser.add_argument("--skip-medquad", action="store_true", help="skip MedQuAD (the slowest part)")
    parser.add_argument("--skip-baseline", action="store_true", help="use the README's baseline figures")
    parser.add_argument("--no-variants", action="store_true", help="skip the ranking-variant table")
    args = parser.parse_args(argv)
    raw_argv = list(argv if argv is not None else sys.argv[1:])

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    from indexer.settings import load_config

    default_threshold = load_config(env={}).answer_threshold
    tmp_root = None
    if args.work:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp_root = tempfile.mkdtemp(prefix="faq-eval-")
        work = Path(tmp_root)
    report: dict[str, Any] = {"env": environment(raw_argv), "threshold_in_use": default_threshold}
    stack = contextlib.ExitStack()
    try:
        data_dir = shared_data_dir()
        if data_dir is None:
            msg = ("shared evaluation data not found (looked for $FAQ_SHARED_DATA, then "
                   f"{Path(__file__).resolve().parents[2] / 'shared' / 'data'}): only the own corpus is evaluated")
            print(msg, file=sys.stderr)
            report["data_note"] = "**absent**: " + msg
        else:
            report["data_note"] = f"`{data_dir}`"

        # ---- baseline first: a few seconds, and it does not compete with our builds
        if data_dir is not None:
            if args.skip_baseline:
                report["baseline"] = {"ran": False, "note": "not run (--skip-baseline): README figures",
                                      **PUBLISHED_BASELINE, "prefix_chars": {}}
            else:
                log("running the BM25 baseline")
                report["baseline"] = run_baseline(data_dir, log)

        # ---- own corpus
        log("building the own corpus")
        own_index = work / "own-index"
        if args.reuse and (own_index / "CURRENT").exists():
            own_config = open_config(OWN_CORPUS, own_index)
        else:
            shutil.rmtree(own_index, ignore_errors=True)
            own_config, _ = build_index(OWN_CORPUS, own_index)
        own_queries = load_own_queries()
        engine = make_engine(own_config)
        report["own"] = evaluate_own(engine, own_queries)
        report["own_suggestions"] = evaluate_own_suggestions(engine)
        report["own_related"] = evaluate_own_related(engine)
        report["own_alternates"] = evaluate_alternates(
            engine, own_queries, work,
            lambda corpus, index: make_engine(build_index(corpus, index)[0]))
        log("own corpus with alternates from the tuning half: " + ", ".join(
            f"{row['set']} acc@1 {row['acc@1 without']:.3f} → {row['acc@1 with']:.3f}"
            for row in report["own_alternates"]["rows"]))
        log(f"own corpus: acc@1 {report['own']['acc@1']:.3f}, MRR {report['own']['MRR@10']:.3f}, "
            f"typo top3 {report['own']['typo_top3']:.3f}, off-topic null "
            f"{report['own']['offtopic_null']}/{report['own']['offtopic']}")

        cc_config = cc_map = None
        tuning_cc: list[dict] = []
        cc_tune_points: list[tuple[float, bool, bool]] = []
        if data_dir is not None:
            # ---- CounselChat
            log("rendering and building CounselChat")
            questions = load_counselchat(data_dir)
            cc_config, cc_map, _ = prepared_corpus(
                work, "counselchat", args.reuse, lambda folder: render_counselchat(folder, questions))
            cc_engine = make_engine(cc_config)
            test, val, train = (split_questions(questions, s) for s in ("test", "val", "train"))
            cc_test = test
            test_links = {q["link"] for q in test}
            # a question in two splits counts as test only: nothing tuned may touch a test question
            val = [q for q in val if q["link"] not in test_links]
            train = [q for q in train if q["link"] not in test_links and q not in val]
            tuning_cc = val + random.Random(SEED).sample(train, min(150, len(train)))
            report["counselchat"] = {
                "info": f"{len(questions)} sections in {len({s.split('#')[0] for s in cc_map.values()})} "
                        f"topic pages; {len(test)} test, {len(val)} val, {len(train)} train questions",
                "test": evaluate_counselchat(cc_engine, test, cc_map),
                "val": evaluate_counselchat(cc_engine, val, cc_map),
                "train": evaluate_counselchat(cc_engine, train, cc_map),
                "prefixes": evaluate_prefixes(cc_engine, test, cc_map),
            }
            cc_tune_points = counselchat_points(cc_engine, val + train, cc_map)
            log(f"CounselChat test MRR@10 {report['counselchat']['test']['MRR@10']:.4f}, "
                f"val {report['counselchat']['val']['MRR@10']:.4f}, train {report['counselchat']['train']['MRR@10']:.4f}")

        # ---- ranking variants on the tuning sets
        if not args.no_variants:
            log("ranking variants on the tuning sets")
            report["variants"] = evaluate_variants(own_config, own_queries, cc_config, tuning_cc, cc_map or {}, log)
            report["variants_note"] = (
                f"Own queries ({report['own']['judged']} judged) and CounselChat val + a fixed sample of 150 "
                f"train questions ({len(tuning_cc)} questionText queries). The first row is the shipped default.")

        # ---- MedQuAD
        liveqa_pts: list[tuple[float, bool, bool]] = []
        if data_dir is not None and not args.skip_medquad:
            log("rendering MedQuAD")
            docs = load_medquad(data_dir)
            log(f"building MedQuAD ({len(docs)} pages)")
            mq_config, mq_map, build_note = prepared_corpus(
                work, "medquad", args.reuse, lambda folder: render_medquad(folder, docs))
            log(f"MedQuAD {build_note}")
            report["medquad_info"] = f"{len(docs)} pages, {len(mq_map)} QA pairs; index {build_note}"
            section_to_qa = {v: k for k, v in mq_map.items()}
            queries = load_liveqa_queries(data_dir)
            qrels = load_qrels(data_dir)
            evalq = evaluated_liveqa(queries, qrels)
            mq_engine = make_engine(mq_config)
            log("LiveQA queries")
            report["liveqa"] = evaluate_liveqa(mq_engine, evalq, qrels, section_to_qa)
            report["long_queries"] = long_query_info(evalq, own_config.max_query_chars)
            from service.scoring import DEFAULT_RANKING

            if DEFAULT_RANKING.collapse_duplicates:
                # report only: what collapsing exact duplicate answers does on MedQuAD's 85 groups
                plain = make_engine(mq_config, dataclasses.replace(DEFAULT_RANKING, collapse_duplicates=False))
                report["liveqa_no_collapse"] = evaluate_liveqa(plain, evalq, qrels, section_to_qa)
            # report only: the message queries under the previous 32-word cap
            cap32 = make_engine(mq_config, dataclasses.replace(DEFAULT_RANKING, max_query_terms=32))
            report["liveqa_cap32"] = evaluate_liveqa(cap32, evalq, qrels, section_to_qa,
                                                     ("message", "subject+message"))
            for v in LIVEQA_VARIANTS:
                log(f"LiveQA {v}: nDCG@10 {report['liveqa'][v]['nDCG@10']:.4f}, MRR@10 {report['liveqa'][v]['MRR@10']:.4f}")
            liveqa_pts = liveqa_points(mq_engine, queries, qrels, section_to_qa)
            log("MedQuAD related documents")
            report["medquad_related"] = evaluate_medquad_related(mq_engine, docs)
            mq_sets = {"config": mq_config, "queries": evalq, "qrels": qrels, "section_to_qa": section_to_qa}
        else:
            mq_sets = None

        # ---- ablation of search quality II on every set (reported; tuning columns chose)
        if not args.no_variants:
            log("ablation on every set")
            cc_sets = {"tune": tuning_cc, "test (held out)": cc_test} if cc_config is not None else {}
            report["ablation"] = evaluate_ablation(own_config, own_queries, cc_config, cc_sets, cc_map or {},
                                                   mq_sets, log)

        # ---- threshold
        own_pts = report["own"]["points"]
        tuning_sets = [report["own"]["points_tune"]] + ([cc_tune_points] if cc_tune_points else [])
        chosen, best = choose_threshold(tuning_sets, report["own"]["offtopic_conf_tune"])
        sets = {"own (both halves)": own_pts}
        if cc_tune_points:
            sets["CC train/val"] = cc_tune_points
        if liveqa_pts:
            sets["LiveQA (held out)"] = liveqa_pts
        report["threshold"] = {
            "chosen": chosen,
            "best": best,
            "sets": list(sets),
            "sweeps": {name: sweep_thresholds(p) for name, p in sets.items()},
            "offtopic_conf": report["own"]["offtopic_conf"],
            "explanation": threshold_explanation(chosen, best, default_threshold, report["own"], bool(cc_tune_points)),
        }
        log(f"threshold: best on the tuning sets {chosen:.2f} (in use {default_threshold:.2f})")
        report["seconds"] = time.perf_counter() - started
        report["notes_md"] = NOTES
        text = render_report(report)
        print(text)
        if not args.no_report:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(with_marker(text), encoding="utf-8")
            log(f"wrote {args.report}")
    finally:
        stack.close()
        if tmp_root:
            shutil.rmtree(tmp_root, ignore_errors=True)
    return 0


def long_query_info(queries: Sequence[dict], max_chars: int) -> dict[str, int]:
    """How many LiveQA messages the query-term cap and the API's length limit affect."""
    from indexer.schema import STOP_WORDS, words
    from service.scoring import DEFAULT_RANKING

    cap = DEFAULT_RANKING.max_query_terms
    counts = [len({w for w in words(q["message"]) if w not in STOP_WORDS}) for q in queries]
    with_repeats = [len([w for w in words(q["message"]) if w not in STOP_WORDS]) for q in queries]
    return {
        "old_cap_cut": sum(c > 32 for c in with_repeats),
        "cap": cap,
        "over_cap": sum(c > cap for c in counts),
        "max_terms": max(counts, default=0),
        "over_chars": sum(len(normalise(q["message"])) > max_chars for q in queries),
        "max_chars": max_chars,
    }


if __name__ == "__main__":
    sys.exit(main())
