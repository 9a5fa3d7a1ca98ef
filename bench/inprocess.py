"""The in-process phase: latency of ``Engine.search``, ``answer`` and ``suggest`` on the
query set, each on a fresh engine, beside a plain-Whoosh baseline on the same index, and a
cProfile of ``Engine.search`` (and of ``suggest`` when its target is missed). Measured
without HTTP so the engine's own cost is seen apart from the stack's."""

from __future__ import annotations

import contextlib
import cProfile
import gc
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib as bl
from common import ROOT, bl_config, log
from profiling import profile_tables


def time_calls(fn: Callable[[str], Any], queries: list[tuple[str, str]], budget_s: float) -> dict:
    """Each query once, in order, until the list or the time budget runs out."""
    samples: list[float] = []
    by_kind: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    deadline = time.monotonic() + budget_s
    for kind, q in queries:
        t0 = time.perf_counter()
        try:
            fn(q)
        except Exception as exc:  # noqa: BLE001 - a failing query is a finding, not a crash
            failures.append(f"{q[:60]!r}: {type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - t0) * 1000
        samples.append(ms)
        by_kind[kind].append(ms)
        if time.monotonic() > deadline:
            break
    out = bl.summarize_ms(samples)
    out["samples"] = samples
    out["planned"] = len(queries)
    out["cut"] = len(samples) < len(queries)
    out["by_kind"] = {k: bl.summarize_ms(v) for k, v in sorted(by_kind.items())}
    out["failures"] = failures[:10]
    out["failed"] = len(failures)
    return out


def plain_whoosh(gen_path: Path) -> tuple[Callable[[str], list], Any]:
    """The baseline: a reused BM25F searcher, an Or of the query's terms over question and
    answer, top 10 ids and scores, no snippets, no synonyms, no spelling, no phrase."""
    from whoosh import index as whoosh_index
    from whoosh import scoring
    from whoosh.query import Or, Term

    from indexer.schema import analyze

    ix = whoosh_index.open_dir(str(gen_path))
    searcher = ix.searcher(weighting=scoring.BM25F())

    def search(q: str) -> list:
        terms = list(dict.fromkeys(analyze(q)))[:32]
        if not terms:
            return []
        query = Or([Term(f, t) for t in terms for f in ("question", "answer")])
        return [(hit["id"], hit.score) for hit in searcher.search(query, limit=10)]

    return search, searcher


def run_inprocess_phase(index: Path, queries: list[tuple[str, str]], warmup: list[str],
                        profile_qs: list[str], budget_s: float | None, profile_n: int,
                        results: dict, deadline: float | None) -> None:
    """Each call measured on its own fresh ``Engine`` (so that one call's warm engine-internal
    caches, e.g. spelling corrections, do not flatter the next), after a warm-up."""
    from indexer.publish import current_generation
    from service.search import Engine

    config = bl_config(corpus_dir=ROOT / "corpus", index_dir=index)

    def fresh_engine() -> Engine:
        t0 = time.perf_counter()
        engine = Engine(config)
        engine.generation()
        results.setdefault("engine_load_s", time.perf_counter() - t0)
        return engine

    def budget(parts_left: int) -> float:
        if budget_s is not None:
            return budget_s
        if deadline is None:
            return 60.0
        return max(10.0, min(60.0, (deadline - time.monotonic() - 10 * parts_left) / max(parts_left, 1)))

    gen_path = current_generation(index)[1]
    plain, plain_searcher = plain_whoosh(gen_path)
    lat = results["latency"] = {}
    order = ["plain Whoosh (baseline)", "Engine.search", "Engine.answer", "Engine.suggest"]
    engine = None
    for i, name in enumerate(order):
        if name == "plain Whoosh (baseline)":
            fn = plain
        else:
            if name != "Engine.suggest":  # suggest shares answer's engine: it uses no query caches
                engine = None
                gc.collect()
                engine = fresh_engine()
            method = name.split(".", 1)[1]
            fn = (lambda q, e=engine: e.search(q, limit=10)) if method == "search" else getattr(engine, method)
        for q in warmup:  # first-use costs: searchers, correctors, Whoosh's own caches
            with contextlib.suppress(Exception):
                fn(q)
        gc.collect()
        b = budget(len(order) - i + 3)  # two 2nd passes and the profile come too
        log(f"in-process {name}: up to {len(queries)} queries, budget {b:.0f} s ...")
        passes = [name, f"{name} (2nd pass)"] if name in ("Engine.search", "Engine.answer") else [name]
        for label in passes:  # the 2nd pass: the same engine with its term caches warm, as in a worker
            lat[label] = time_calls(fn, queries, b)
            s = lat[label]
            log(f"  {label}: n={s['n']} p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f}, p99 {s['p99']:.2f}"
                + (f" (cut by the budget: {s['n']} of {s['planned']})" if s["cut"] else "")
                + (f", {s['failed']} FAILED" if s["failed"] else ""))
    plain_searcher.close()
    common = min(s["n"] for s in lat.values())
    base = lat["plain Whoosh (baseline)"]["samples"][:common]
    for s in lat.values():
        s["common_n"] = common
        s["common"] = bl.summarize_ms(s["samples"][:common])
    results["baseline_common"] = bl.summarize_ms(base)
    b = budget(1)
    engine = None
    gc.collect()
    engine = fresh_engine()
    for q in warmup:
        with contextlib.suppress(Exception):
            engine.search(q, limit=10)
    log(f"profiling Engine.search on {profile_n} MedQuAD questions (budget {b:.0f} s) ...")
    prof = cProfile.Profile()
    n = 0
    stop_at = time.monotonic() + b
    t0 = time.perf_counter()
    for q in profile_qs[:profile_n]:
        prof.enable()
        engine.search(q, limit=10)
        prof.disable()
        n += 1
        if time.monotonic() > stop_at:
            break
    results["search_profile"] = {"queries": n, "planned": min(profile_n, len(profile_qs)),
                                 "seconds": time.perf_counter() - t0,
                                 **profile_tables(prof, "search", "service/search.py")}
    sug = lat.get("Engine.suggest")
    if sug and sug["p99"] > 5.0:  # its target is missed: show where its time goes too (cheap)
        log("profiling Engine.suggest over the query set ...")
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        n = 0
        for _, q in queries:
            prof.enable()
            engine.suggest(q)
            prof.disable()
            n += 1
            if time.perf_counter() - t0 > 20:
                break
        results["suggest_profile"] = {"queries": n, "planned": len(queries), "seconds": time.perf_counter() - t0,
                                      **profile_tables(prof, "suggest", "service/search.py")}
    results["bench_process_rss_mb"] = bl.self_max_rss_mb()
