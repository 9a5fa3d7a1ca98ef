"""Performance benchmark: ``make bench`` (``python bench/run.py``), a script, not a test.

One run, on a MedQuAD-scale corpus (``../shared/data``) rendered as HTML article pages:

1. build: a full ``faq-index build`` and ``update`` runs (0, 1 and 50 changed articles) in
   subprocesses, timed end to end with their own peak RSS; sections/s and index size;
2. in-process latency of ``Engine.search`` (top 10 with snippets), ``Engine.answer`` and
   ``Engine.suggest`` over >= 1,000 queries (LiveQA summaries and messages, MedQuAD
   questions, their 1-3-word prefixes), uncached, beside a "plain Whoosh" baseline on the
   same index; a cProfile of ``Engine.search`` (and of a small build);
3. HTTP: real gunicorn on 127.0.0.1 driven by ``wrk`` at 1, 8 and 32 connections:
   ``/healthz`` (the stack's ceiling), ``/v1/search``, ``/v1/suggest``, ``/v1/answer``
   (response cache off) and a 20-query "repeated" run (response cache on), plus RSS per worker;

then writes ``docs/performance.md`` (replacing the previous figures; text between the
``notes`` markers is kept) and prints a summary. ``--quick`` for trying things (writes
nothing unless ``--output`` is given). Without ``../shared/data`` it says so and exits 0.

This script is the command line and the order of the phases; each job is a module beside it:
``queries`` (the query set), ``builds`` (1), ``inprocess`` (2), ``loadtest`` (3),
``profiling`` (cProfile tables), ``targets`` (the verdicts), ``render`` (the markdown and the
summary) and ``common`` (the log line and an index's Config).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib as bl  # noqa: E402
from builds import cli_build, profile_build, render_corpus, run_build_phase  # noqa: E402
from common import ROOT, bl_config, log  # noqa: E402
from inprocess import run_inprocess_phase  # noqa: E402
from loadtest import run_http_phase  # noqa: E402
from profiling import profile_wsgi  # noqa: E402
from queries import SEED, build_queries  # noqa: E402
from render import print_summary, read_notes, render_doc  # noqa: E402
from targets import verdicts  # noqa: E402

from eval.reports import with_marker  # noqa: E402

DOC = ROOT / "docs" / "performance.md"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` lists it)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="fewer queries, 3 s wrk runs; writes no doc unless --output is given")
    p.add_argument("--skip-http", action="store_true", help="no gunicorn/wrk runs")
    p.add_argument("--skip-build", action="store_true",
                   help="do not time builds: reuse the index in --workdir (default var/bench) or build it untimed")
    p.add_argument("--keep-max-requests", action="store_true",
                   help="keep gunicorn.conf.py's worker recycling (max_requests) on during the HTTP runs")
    p.add_argument("--duration", type=float, default=None, help="seconds per wrk run (default 10, --quick 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="time budget in seconds per in-process call and for the profile (default: shared out "
                        "so that the run ends within --max-minutes, 10 to 60 s each; --quick 10)")
    p.add_argument("--max-minutes", type=float, default=8.0,
                   help="aim to finish within this many minutes: the in-process budgets shrink to fit (default 8)")
    p.add_argument("--queries", type=int, default=None,
                   help="MedQuAD questions in the query set (default 500, --quick 80); prefixes are 0.8× this")
    p.add_argument("--profile-queries", type=int, default=200, help="queries for the Engine.search profile")
    p.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the corpus and index go (default: a temp folder, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (default var/bench)")
    p.add_argument("--output", type=Path, default=None, help=f"report path (default {DOC.relative_to(ROOT)})")
    p.add_argument("--no-write", action="store_true", help="print the summary only")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results as JSON here")
    p.add_argument("--scale", default=None, metavar="1,4,10",
                   help="instead of the phases above, the scale benchmark (bench/scale.py) at these corpus "
                        "factors; prints its table (outside CI: about 3, 8 and 25 minutes per size)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the phases asked for, then write the report and print the summary; the exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    from eval import datasets

    data_dir = args.data or datasets.shared_data_dir()
    if data_dir is None or not (Path(data_dir) / datasets.MEDQUAD_DOCS).is_file():
        where = args.data or os.environ.get(datasets.ENV_VAR) or datasets.DEFAULT_DIR
        print(f"bench: no MedQuAD data at {where} (expected {datasets.MEDQUAD_DOCS}); the benchmark needs "
              f"../shared/data beside the repository (or ${datasets.ENV_VAR}). Nothing was measured or written.")
        return 0
    data_dir = Path(data_dir)
    if args.scale:
        from scale import render, run_scale

        result = run_scale([int(x) for x in args.scale.split(",")], args.workdir or ROOT / "var" / "bench-scale",
                           data_dir, http_seconds=args.duration or 10.0)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(render(result))
        return 0
    seconds = args.duration or (3.0 if args.quick else 10.0)
    warm_s = 1.0 if args.quick else 2.0
    budget = args.budget or (10.0 if args.quick else None)
    deadline = time.monotonic() + args.max_minutes * 60
    if not args.skip_http:  # what the HTTP phase needs: the wrk runs, warm-ups, two server starts
        deadline -= 18 * seconds + 4 * warm_s + 60
    n_q = args.queries or (80 if args.quick else 500)
    partial = args.quick or args.skip_http or args.skip_build
    output = None if args.no_write else (args.output or (None if partial else DOC))

    from indexer.settings import load_config

    max_chars = load_config().max_query_chars
    liveqa = datasets.load_liveqa_queries(data_dir)
    questions = [qa["question"] for d in datasets.load_medquad(data_dir) for qa in d["qa"]]
    queries, warmup, profile_pool = build_queries(
        liveqa, questions, n_q, int(n_q * 0.8), 30 if args.quick else len(liveqa), max_chars)
    kinds: dict[str, int] = defaultdict(int)
    for kind, _ in queries:
        kinds[kind] += 1
    prof_qs = random.Random(SEED + 1).sample(profile_pool, min(args.profile_queries, len(profile_pool)))

    results: dict = {
        "date": bl.now_utc(), "revision": bl.git_revision(), "command": bl.command_line(),
        "machine": bl.machine_info(), "query_kinds": dict(kinds), "max_query_chars": max_chars,
    }
    if partial:
        results["mode_note"] = "Partial run (" + ", ".join(
            f for f, on in (("--quick", args.quick), ("--skip-build", args.skip_build),
                            ("--skip-http", args.skip_http)) if on) + "): figures not measured show as –."
    keep = args.keep or args.skip_build or args.workdir is not None
    work = args.workdir or (ROOT / "var" / "bench" if keep else Path(tempfile.mkdtemp(prefix="faq-bench-")))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"work folder {work}; {len(queries):,} queries; wrk {seconds:g} s per run")
    status = 0
    try:
        if not args.skip_build:
            run_build_phase(work, data_dir, results)
            full_s = results["builds"][0]["wall_s"]
            if not args.quick and (full_s > 60 or deadline - time.monotonic() > 150):
                log("profiling a small build in-process ...")
                profile_build(work, data_dir, 200, results)
        elif not _usable_index(work / "index"):
            log("--skip-build: no usable index in the work folder; building one (not timed) ...")
            render_corpus(data_dir, work / "corpus")
            cli_build("full", work / "corpus", work / "index")
        run_inprocess_phase(work / "index", queries, warmup, prof_qs, budget, args.profile_queries, results,
                            deadline)
        if not args.skip_http:
            repeated = [q for kind, q in queries if kind == "MedQuAD question"][:20]
            try:
                run_http_phase(work, queries, repeated, seconds, warm_s, results, args.keep_max_requests)
            except bl.WrkMissing as exc:
                print(f"bench: {exc}", file=sys.stderr)
                return 2
            missed = {v["key"] for v in verdicts(results) if v["result"] == "MISS"}
            wanted = []
            if missed & {"search_http_rps", "search_http_p99"}:
                wanted.append(("search", [q for _, q in queries], False))
            if "suggest_ratio" in missed:
                wanted.append(("suggest", [q for _, q in queries], False))
            if "repeated_ratio" in missed:
                wanted.append(("search", repeated * 50, True))
            results["wsgi_profiles"] = []
            for endpoint, qs, cache in wanted:
                log(f"profiling the WSGI app on /v1/{endpoint} ({'cache on' if cache else 'cache off'}) ...")
                results["wsgi_profiles"].append(profile_wsgi(work / "index", endpoint, qs, cache))
    except Exception:  # noqa: BLE001 - report what ran, then fail
        traceback.print_exc()
        status = 1
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    results["run_seconds"] = time.perf_counter() - started
    results["verdicts"] = verdicts(results)
    if status:
        print("bench: the run failed; nothing was written", file=sys.stderr)
        return status
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    if output is not None:
        output = output if output.is_absolute() else Path.cwd() / output
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(with_marker(render_doc(results, args, read_notes(output))), encoding="utf-8")
        log(f"wrote {output}")
    else:
        log("no report written (partial run; pass --output PATH to write one)")
    print_summary(results)
    return 0


def _usable_index(index: Path) -> bool:
    try:
        from service.search import Engine

        Engine(bl_config(corpus_dir=ROOT / "corpus", index_dir=index)).generation()
        return True
    except Exception:  # noqa: BLE001 - anything wrong means: rebuild
        return False


if __name__ == "__main__":
    # A SIGTERM (make killed, CI timeout) unwinds like Ctrl-C, so the gunicorn we started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
