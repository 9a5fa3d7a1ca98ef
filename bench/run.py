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
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import pstats
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote_plus

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib as bl  # noqa: E402

ROOT = bl.ROOT
DOC = ROOT / "docs" / "performance.md"
NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
CONCURRENCY = (1, 8, 32)
ENDPOINTS = ("search", "suggest", "answer")
SEED = 20240917

# The spec's targets: (key, label, kind, bound, unit).
TARGETS = [
    ("search_p50", "`/v1/search` in-process p50 (top 10, snippets, uncached)", "max", 15.0, "ms"),
    ("search_p99", "`/v1/search` in-process p99", "max", 60.0, "ms"),
    ("search_http_rps", "`/v1/search` HTTP c=8 throughput", "min", 150.0, "req/s"),
    ("search_http_p99", "`/v1/search` HTTP c=8 p99", "max", 150.0, "ms"),
    ("repeated_ratio", "repeated queries (cache hit) HTTP c=8, share of `/healthz` ceiling", "min", 50.0, "%"),
    ("suggest_p99", "`/v1/suggest` in-process p99", "max", 5.0, "ms"),
    ("suggest_ratio", "`/v1/suggest` HTTP c=8, share of `/healthz` ceiling", "min", 50.0, "%"),
    ("full_build", "full build (MedQuAD, end to end)", "max", 60.0, "s"),
    ("update_one", "update after 1 changed article (end to end)", "max", 2.0, "s"),
    ("worker_rss", "RSS per gunicorn worker after warm-up (largest)", "max", 250.0, "MB"),
    ("http_errors", "HTTP errors (non-2xx, socket errors, timeouts) over all runs", "max", 0.0, ""),
]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- queries


def normalise(text: str, max_chars: int) -> str:
    """As the API sees it: whitespace collapsed, cut at a word boundary to ``max_chars``."""
    q = " ".join(text.split())
    if len(q) > max_chars:
        q = q[:max_chars + 1].rsplit(" ", 1)[0][:max_chars]
    return q


def build_queries(liveqa: list[dict], questions: list[str], n_questions: int, n_prefixes: int,
                  n_liveqa: int, max_chars: int) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(kind, query) pairs in a seeded random order; plus warm-up and profile questions."""
    rng = random.Random(SEED)
    out: dict[str, str] = {}
    for item in liveqa[:n_liveqa]:
        for kind, key in (("LiveQA summary", "summary"), ("LiveQA message", "message")):
            q = normalise(item.get(key) or "", max_chars)
            if q:
                out.setdefault(q, kind)
    pool = list(dict.fromkeys(normalise(q, max_chars) for q in questions if q.strip()))
    rng.shuffle(pool)
    taken = 0
    for q in pool:
        if taken >= n_questions:
            break
        if q not in out:
            out[q] = "MedQuAD question"
            taken += 1
    rest = pool[n_questions:]
    taken = 0
    for i, q in enumerate(rest):
        if taken >= n_prefixes:
            break
        words = q.split()
        k = 1 + i % 3
        if len(words) <= k:
            continue
        prefix = " ".join(words[:k])
        if prefix not in out:
            out[prefix] = f"prefix ({k} word{'s' if k > 1 else ''})"
            taken += 1
    pairs = [(kind, q) for q, kind in out.items()]
    rng.shuffle(pairs)
    spare = [q for q in rest[len(rest) // 2:] if q not in out]
    return pairs, spare[:20], spare[20:]


# --------------------------------------------------------------------------- build


def render_corpus(data_dir: Path, corpus: Path) -> dict:
    from service import datasets

    started = time.perf_counter()
    docs = datasets.load_medquad(data_dir)
    mapping = datasets.render_medquad(corpus, docs)
    files = sorted(corpus.glob("*.html"))
    return {"documents": len(docs), "pairs": len(mapping), "pages": len(files),
            "bytes": sum(p.stat().st_size for p in files), "seconds": time.perf_counter() - started}


def cli_build(mode: str, corpus: Path, index: Path) -> dict:
    argv = [bl.PYTHON, "-m", "indexer.cli", "build" if mode == "full" else "update",
            "--corpus", str(corpus), "--index", str(index), "--json", "--force"]
    run = bl.run_child(argv, env=bl.project_env())
    if run.returncode != 0:
        raise RuntimeError(f"`faq-index {argv[3]}` failed with status {run.returncode}:\n{run.stderr[-3000:]}")
    m = re.search(r"^\{", run.stdout, re.M)
    report = json.loads(run.stdout[m.start():]) if m else {}
    return {
        "mode": mode, "ran_as": report.get("mode", mode), "wall_s": run.wall_s, "cpu_s": run.user_s + run.sys_s, "inside_s": report.get("seconds"),
        "peak_rss_mb": run.max_rss_mb, "sections": report.get("sections", 0), "articles": report.get("articles", 0),
        "rewritten": len(report.get("rewritten", [])), "published": report.get("published"),
        "generation": report.get("generation"), "warnings": report.get("warnings", 0),
        "errors": report.get("errors", 0),
    }


def edit_articles(corpus: Path, files: list[Path], tag: str) -> None:
    """Change each file's text (one answer paragraph gets a sentence), as an editor would."""
    for path in files:
        text = path.read_text(encoding="utf-8")
        marker = f" Reviewed for the benchmark ({tag})."
        new = text.replace("</p>", marker + "</p>", 1) if "</p>" in text else text.replace(
            "</article>", f"<p>{marker}</p></article>", 1)
        path.write_text(new, encoding="utf-8")


def generation_size(index: Path) -> dict:
    from indexer.publish import current_generation

    current = current_generation(index)
    gen_bytes = sum(p.stat().st_size for p in current[1].iterdir() if p.is_file()) if current else 0
    seen: set[tuple[int, int]] = set()
    disk = 0
    for p in index.rglob("*"):
        st = p.lstat()
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            disk += st.st_blocks * 512
    return {"generation_mb": gen_bytes / 1e6, "folder_disk_mb": disk / 1e6,
            "generations": len([p for p in (index / "generations").iterdir() if p.name[:1].isdigit()])}


def run_build_phase(work: Path, data_dir: Path, results: dict) -> None:
    corpus, index = work / "corpus", work / "index"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    log("rendering MedQuAD as HTML pages ...")
    results["corpus"] = render_corpus(data_dir, corpus)
    c = results["corpus"]
    log(f"  {c['pages']} pages, {c['pairs']} QA pairs, {c['bytes'] / 1e6:.1f} MB in {c['seconds']:.1f} s")
    builds = results["builds"] = []
    log("full build (faq-index build, subprocess) ...")
    full = cli_build("full", corpus, index)
    full["label"] = "full build"
    full.update(generation_size(index))
    builds.append(full)
    log(f"  {full['wall_s']:.1f} s, {full['sections']} sections, peak RSS {full['peak_rss_mb']:.0f} MB")
    pages = sorted(corpus.glob("*.html"))
    for label, changed in (("update, nothing changed", []), ("update, 1 article changed", pages[:1]),
                           ("update, 50 articles changed", pages[1:51])):
        edit_articles(corpus, changed, label)
        log(f"{label} ...")
        up = cli_build("update", corpus, index)
        up["label"] = label
        up["changed"] = len(changed)
        builds.append(up)
        log(f"  {up['wall_s']:.2f} s end to end ({up['inside_s'] or 0:.2f} s inside build()), "
            f"{up['rewritten']} rewritten" + (f" (ran as {up['ran_as']})" if up["ran_as"] != "update" else ""))
    results["index_after_updates"] = generation_size(index)


def profile_build(work: Path, data_dir: Path, pages: int, results: dict) -> None:
    """cProfile of ``indexer.publish.build`` in-process on the first ``pages`` pages."""
    from indexer.publish import build
    from indexer.settings import load_config

    src = work / "corpus"
    sub, sub_index = work / "profile-corpus", work / "profile-index"
    shutil.rmtree(sub, ignore_errors=True)
    shutil.rmtree(sub_index, ignore_errors=True)
    sub.mkdir(parents=True)
    for p in sorted(src.glob("*.html"))[:pages]:
        shutil.copy2(p, sub / p.name)
    config = bl_config(corpus_dir=sub, index_dir=sub_index, load_config=load_config)
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    report = build(config, mode="full", force=True)
    prof.disable()
    results["build_profile"] = {"pages": pages, "sections": report.sections,
                                "seconds": time.perf_counter() - started,
                                **profile_tables(prof, "build", "indexer/publish.py")}
    shutil.rmtree(sub, ignore_errors=True)
    shutil.rmtree(sub_index, ignore_errors=True)


def bl_config(corpus_dir: Path, index_dir: Path, load_config=None):
    if load_config is None:
        from indexer.settings import load_config
    return load_config(corpus_dir=Path(corpus_dir), index_dir=Path(index_dir))


# --------------------------------------------------------------------------- in-process


def time_calls(fn, queries: list[tuple[str, str]], budget_s: float) -> dict:
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


def plain_whoosh(gen_path: Path):
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


def run_inprocess_phase(index: Path, queries, warmup, profile_qs, budget_s, profile_n: int,
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


def _short_file(path: str) -> str:
    if path.startswith("~") or path.startswith("<"):
        return ""
    p = path.replace("\\", "/")
    if "/site-packages/" in p:
        p = p.split("/site-packages/", 1)[1]
    else:
        p = re.sub(r"^.*/lib/python3\.\d+/", "", p)
    root = str(ROOT).replace("\\", "/") + "/"
    return p[len(root):] if p.startswith(root) else p


def _label(key: tuple) -> str:
    file, line, func = key
    short = _short_file(file)
    return f"{func} ({short}:{line})" if short else func


def profile_tables(prof: cProfile.Profile, entry_func: str, entry_file: str, top: int = 25) -> dict:
    """Top functions by cumulative and by own time, as shares of the entry point's total."""
    st = pstats.Stats(prof)
    stats = st.stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = 0.0
    for (file, _, func), (_, _, _, ct, _) in stats.items():
        if func == entry_func and file.replace("\\", "/").endswith(entry_file):
            total = max(total, ct)
    total = total or sum(v[2] for v in stats.values()) or 1.0
    rows = []
    for key, (_cc, nc, tt, ct, _) in stats.items():
        if key[2] in ("<built-in method builtins.exec>", "disable", "enable") or "cProfile" in key[0] \
                or _short_file(key[0]).startswith("bench/"):
            continue
        rows.append({"function": _label(key), "calls": nc, "own_s": tt, "cum_s": ct,
                     "cum_pct": 100 * ct / total, "own_pct": 100 * tt / total,
                     "project": _short_file(key[0]).startswith(("service/", "indexer/"))})
    by_cum = sorted(rows, key=lambda r: -r["cum_s"])[:top]
    by_own = sorted(rows, key=lambda r: -r["own_s"])[:15]
    project = sorted((r for r in rows if r["project"]), key=lambda r: -r["cum_s"])[:15]
    return {"total_s": total, "by_cumulative": by_cum, "by_own": by_own, "project": project}


# --------------------------------------------------------------------------- HTTP


def run_http_phase(work: Path, queries, repeated: list[str], seconds: float, warm_s: float,
                   results: dict, keep_recycling: bool = False) -> None:
    wrk = bl.ensure_wrk()
    version = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    text = (version.stdout or version.stderr or "wrk ?").splitlines()[0]
    results["wrk_version"] = text.split(" Copyright")[0].strip()
    index, corpus = work / "index", work / "corpus"
    qs = [q for _, q in queries]
    luas = {"healthz": bl.write_lua(work / "healthz.lua", ["/healthz"])}
    for ep in ENDPOINTS:
        luas[ep] = bl.write_lua(work / f"{ep}.lua", [f"/v1/{ep}?q={quote_plus(q)}" for q in qs])
    luas["repeated"] = bl.write_lua(work / "repeated.lua", [f"/v1/search?q={quote_plus(q)}" for q in repeated])
    http = results["http"] = {"runs": [], "seconds": seconds}
    memory = results["memory"] = []

    def wrk_run(server, name, lua, c, secs, record=True):
        r = bl.run_wrk(wrk, server.port, lua, name, c, secs)
        if record:
            http["runs"].append(r.__dict__ | {"errors": r.errors})
            log(f"  {name:9s} c={c:<3d} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms"
                f"  errors {r.errors}")
        return r

    from indexer.settings import load_config

    cfg = load_config(bl.project_env())
    http["workers"], http["threads"] = cfg.workers, cfg.threads
    http["config"] = "gunicorn.conf.py" if (ROOT / "gunicorn.conf.py").is_file() else "command line"
    conf = gunicorn_settings()
    http["max_requests"], http["max_requests_jitter"] = conf.get("max_requests"), conf.get("max_requests_jitter")
    extra = [] if keep_recycling else ["--max-requests", "0"]
    http["recycling_off"] = not keep_recycling and bool(conf.get("max_requests"))
    recycle_note = ", worker recycling (max_requests) off" if http["recycling_off"] else ""
    http["servers"] = []

    def start(label: str, log_name: str, env: dict) -> bl.Server:
        server = bl.Server(index, corpus, work / log_name, env, extra)
        log(f"gunicorn ({cfg.workers} workers x {cfg.threads} threads, {label}{recycle_note}) ...")
        server.start()
        return server

    def finish(server: bl.Server, label: str) -> None:
        boots = server.worker_boots()
        restarts = max(0, len(boots) - int(cfg.workers))
        errors = bl.count_log_errors(server.log_path)
        http["servers"].append({"label": label, "ready_s": server.started_s, "boots": boots,
                                "restarts": restarts, "log_errors": errors})
        if errors or restarts:
            log(f"  gunicorn log ({errors} errors, {restarts} worker restarts), last lines:\n"
                + server.log_tail(30))

    # 1) every endpoint uncached: the response cache off, so each request runs the engine.
    server = start("response cache off", "gunicorn-uncached.log", {"FAQ_CACHE_SIZE": "0"})
    try:
        check_responses(server.port, qs[:5])
        http["generation"] = (server.readyz() or {}).get("generation")
        for ep in ENDPOINTS:  # warm-up: each worker opens its searcher and correctors
            wrk_run(server, ep, luas[ep], 4, warm_s, record=False)
        for c in CONCURRENCY:
            for name in ("healthz", *ENDPOINTS):
                wrk_run(server, name, luas[name], c, seconds)
        memory.append({"server": "response cache off, after its runs",
                       "workers": server.worker_memory(), "master": server.master_memory()})
        finish(server, "response cache off")
    finally:
        server.stop()
    # 2) the service as configured (response cache on): 20 repeated queries.
    server = start(f"response cache on, {cfg.cache_size} entries per worker", "gunicorn-cached.log", {})
    try:
        wrk_run(server, "repeated", luas["repeated"], 8, warm_s, record=False)
        for c in CONCURRENCY:  # this server's own ceiling, next to each repeated run
            wrk_run(server, "healthz-2", luas["healthz"], c, seconds)
            wrk_run(server, "repeated", luas["repeated"], c, seconds)
        memory.append({"server": "response cache on, after the repeated-query runs",
                       "workers": server.worker_memory(), "master": server.master_memory()})
        finish(server, "response cache on")
    finally:
        server.stop()


def gunicorn_settings() -> dict:
    """``max_requests`` and its jitter from ``gunicorn.conf.py`` (it is plain Python)."""
    path = ROOT / "gunicorn.conf.py"
    if not path.is_file():
        return {}
    try:
        import runpy

        ns = runpy.run_path(str(path))
    except Exception:  # noqa: BLE001 - informational only
        return {}
    return {k: ns.get(k) for k in ("max_requests", "max_requests_jitter", "worker_class", "preload_app")}


def check_responses(port: int, qs: list[str]) -> None:
    """One real request per endpoint must answer 200 with JSON before any load is sent."""
    for ep in ENDPOINTS:
        status, body = bl.http_json(port, f"/v1/{ep}?q={quote_plus(qs[0])}", timeout=60)
        if status != 200 or body is None:
            raise RuntimeError(f"/v1/{ep} answered {status} before the load test: {str(body)[:300]}")


def profile_wsgi(index: Path, endpoint: str, queries: list[str], cache: bool, budget_s: float = 10.0) -> dict:
    """cProfile of the Falcon app itself (``create_app``, called as WSGI in-process, the access
    log written to /dev/null as under gunicorn) on ``endpoint`` requests: what the HTTP layer
    adds to the engine. ``cache`` keeps the response cache as configured, else it is off."""
    import logging

    from falcon import testing

    from service.app import create_app

    config = bl_config(corpus_dir=ROOT / "corpus", index_dir=index)
    if not cache:
        config = config.replace(cache_size=0)
    access = logging.getLogger("faq.access")
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    handler = logging.StreamHandler(sink)
    saved = (access.level, access.propagate)
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        app = create_app(config)
        environs = [testing.create_environ(path=f"/v1/{endpoint}", query_string=f"q={quote_plus(q)}")
                    for q in queries]
        statuses: dict[str, int] = defaultdict(int)

        def start_response(status, headers, exc_info=None):
            statuses[status.split()[0]] += 1

        def call(env):
            body = app(dict(env), start_response)
            b"".join(body)
            if hasattr(body, "close"):
                body.close()

        for env in environs[:20]:
            call(env)
        statuses.clear()
        prof = cProfile.Profile()
        n = 0
        t0 = time.perf_counter()
        for env in environs:
            prof.enable()
            call(env)
            prof.disable()
            n += 1
            if time.perf_counter() - t0 > budget_s:
                break
        out = {"endpoint": endpoint, "requests": n, "cache": cache, "seconds": time.perf_counter() - t0,
               "statuses": dict(statuses), **profile_tables(prof, "__call__", "falcon/app.py")}
        out["per_request_ms"] = 1000 * out["total_s"] / max(n, 1)
        return out
    finally:
        access.removeHandler(handler)
        access.setLevel(saved[0])
        access.propagate = saved[1]
        sink.close()


# --------------------------------------------------------------------------- evaluation


def measured_values(results: dict) -> dict:
    v: dict = {}
    lat = results.get("latency", {})
    if "Engine.search" in lat:
        v["search_p50"] = lat["Engine.search"]["p50"]
        v["search_p99"] = lat["Engine.search"]["p99"]
    if "Engine.suggest" in lat:
        v["suggest_p99"] = lat["Engine.suggest"]["p99"]
    runs = results.get("http", {}).get("runs", [])

    def run(name, c):
        return next((r for r in runs if r["endpoint"] == name and r["connections"] == c), None)

    ceiling = run("healthz", 8)
    ceiling2 = run("healthz-2", 8) or ceiling
    if run("search", 8):
        v["search_http_rps"] = run("search", 8)["rps"]
        v["search_http_p99"] = run("search", 8)["p99_ms"] if run("search", 8)["requests"] else float("nan")
    if ceiling2 and ceiling2["rps"] and run("repeated", 8):
        v["repeated_ratio"] = 100 * run("repeated", 8)["rps"] / ceiling2["rps"]
    if ceiling and ceiling["rps"] and run("suggest", 8):
        v["suggest_ratio"] = 100 * run("suggest", 8)["rps"] / ceiling["rps"]
    if runs:
        v["http_errors"] = sum(r["errors"] + (r["requests"] == 0) for r in runs)
    builds = results.get("builds", [])
    if builds:
        v["full_build"] = builds[0]["wall_s"]
        one = next((b for b in builds if b.get("changed") == 1), None)
        if one:
            v["update_one"] = one["wall_s"]
    mem = [w["rss_mb"] for m in results.get("memory", []) for w in m["workers"]]
    if mem:
        v["worker_rss"] = max(mem)
    return v


def verdicts(results: dict) -> list[dict]:
    values = measured_values(results)
    out = []
    for key, label, kind, bound, unit in TARGETS:
        value = values.get(key)
        if value is None:
            out.append({"key": key, "label": label, "target": _bound(kind, bound, unit), "value": None,
                        "result": "not measured", "by": ""})
            continue
        ok = value <= bound if kind == "max" else value >= bound  # NaN (nothing completed) fails
        by = ""
        if value != value:
            by = "no request completed"
        elif not ok:
            if kind == "max" and bound > 0:
                by = f"{value / bound:.1f}× the bound (+{value - bound:,.1f} {unit})".replace(" )", ")")
            elif kind == "max":
                by = f"{value:,.0f} over"
            elif unit == "%":
                by = f"{bound - value:.1f} points short"
            else:
                by = f"{100 * (1 - value / bound):.0f}% short ({bound - value:,.1f} {unit} below)"
        out.append({"key": key, "label": label, "target": _bound(kind, bound, unit), "value": value,
                    "unit": unit, "result": "PASS" if ok else "MISS", "by": by})
    return out


def _bound(kind: str, bound: float, unit: str) -> str:
    return f"{'≤' if kind == 'max' else '≥'} {bound:g}{(' ' + unit) if unit and unit != '%' else unit}"


def _value(v: dict) -> str:
    if v["value"] is None or v["value"] != v["value"]:
        return "–"
    unit = v.get("unit", "")
    if not unit:
        return f"{v['value']:,.0f}"
    num = bl.fmt(v["value"], 2 if v["value"] < 10 else 1)
    return f"{num}{'%' if unit == '%' else (' ' + unit if unit else '')}"


# --------------------------------------------------------------------------- report


def render_doc(results: dict, args, notes: str) -> str:
    m = results["machine"]
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`bench/run.py`); every figure below is replaced by the next run.",
        "Only the notes at the end (between the `notes` markers) are written by hand and kept.",
        "",
        f"- **Date**: {results['date']}",
        f"- **Code**: `{results['revision']}`",
        f"- **Command**: `{results['command']}`" + (" (run by `make bench`)" if not sys.argv[1:] else ""),
        f"- **Machine**: {m['nproc']} CPUs (`nproc`), {m['cpu']}, {m['memory_gib']:.1f} GiB memory, "
        f"Linux {m['kernel']}; load average at start {m['loadavg'][0]:.2f} / {m['loadavg'][1]:.2f} / "
        f"{m['loadavg'][2]:.2f} (the machine is shared: figures are noisy, compare ratios measured in the same run)",
        f"- **Software**: Python {m['python']}, Whoosh {bl.package_version('Whoosh')}, Falcon "
        f"{bl.package_version('falcon')}, gunicorn {bl.package_version('gunicorn')}"
        + (f", {results['wrk_version']}" if results.get("wrk_version") else ""),
        f"- **Run time** of this benchmark: {results['run_seconds'] / 60:.1f} min",
        "",
    ]
    if results.get("mode_note"):
        lines += [f"> {results['mode_note']}", ""]

    lines += ["## Targets", "", "| target | bound | measured | result |", "| --- | --- | ---: | --- |"]
    for v in results["verdicts"]:
        res = v["result"] + (f": {v['by']}" if v["by"] else "")
        lines.append(f"| {v['label']} | {v['target']} | {_value(v)} | {res} |")
    lines.append("")

    if results.get("builds"):
        c = results["corpus"]
        lines += [
            "## Build",
            "",
            f"MedQuAD rendered by `service.datasets.render_medquad`: {c['pages']:,} pages, {c['pairs']:,} QA pairs, "
            f"{c['bytes'] / 1e6:.1f} MB of HTML (rendering took {c['seconds']:.1f} s, not counted). Each step runs "
            "`faq-index build|update --json` in a subprocess: *end to end* is the process's wall time (interpreter "
            "start and imports included), *inside* is `build()`'s own time; peak RSS is that process's "
            "`ru_maxrss` (`os.wait4`).",
            "",
            "| step | end to end s | inside s | CPU s | sections | rewritten | sections/s | peak RSS MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for b in results["builds"]:
            rate = b["sections"] / b["wall_s"] if b["label"] == "full build" and b["wall_s"] else None
            label = b["label"] + (f" (ran as {b['ran_as']})" if b.get("ran_as", b["mode"]) != b["mode"] else "")
            lines.append(
                f"| {label} | {b['wall_s']:.2f} | {b['inside_s'] or 0:.2f} | {b['cpu_s']:.1f} | "
                f"{b['sections']:,} | {b['rewritten']:,} | {bl.fmt(rate) if rate else '–'} | {b['peak_rss_mb']:.0f} |"
            )
        full = results["builds"][0]
        after = results["index_after_updates"]
        lines += [
            "",
            f"Index size: the full build's generation is {full['generation_mb']:.1f} MB on disk (Whoosh segment, "
            f"stored fields and `catalog.sqlite`) for {full['sections']:,} sections; after the updates the index "
            f"folder holds {after['generations']} generations in {after['folder_disk_mb']:.1f} MB (updates hard-link "
            f"the unchanged segment files). Build warnings reported: {full['warnings']}, errors: {full['errors']}.",
            "",
        ]

    if results.get("latency"):
        lat = results["latency"]
        planned = next(iter(lat.values()))["planned"]
        kinds = results.get("query_kinds", {})
        lines += [
            "## In-process latency",
            "",
            f"{planned:,} distinct queries in a seeded random order: "
            + ", ".join(f"{n:,} {k}" for k, n in sorted(kinds.items()))
            + f", whitespace collapsed and cut at {results['max_query_chars']} characters like the API does. "
            "Each call runs each query once, uncached (no response cache), on its own freshly opened `Engine` "
            "after a warm-up on 20 other questions; a call stops early when its share of the run's time "
            "budget is spent (`n` says how many ran; the list is shuffled, so a cut keeps the mix). "
            "`Engine.search` is top 10 with snippets; the baseline is plain Whoosh on the same index: a "
            "reused BM25F searcher, an `Or` of the query's analysed terms over `question` and `answer`, the "
            "top 10 ids and scores, no snippets. A *2nd pass* runs the same queries again on the same engine: "
            "its caches of posting lists and word analyses are then warm, as in a worker that has served a "
            "while (the targets are judged on the first pass). The ratio columns compare each call with the baseline on "
            f"the first {next(iter(lat.values())).get('common_n', 0):,} queries, which every call ran.",
            "",
            "| call | n | p50 ms | p95 ms | p99 ms | max ms | mean ms | p50 × baseline | p99 × baseline |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, s in lat.items():
            bc, sc = results.get("baseline_common"), s.get("common")
            r50 = sc["p50"] / bc["p50"] if bc and sc and bc["p50"] else None
            r99 = sc["p99"] / bc["p99"] if bc and sc and bc["p99"] else None
            flag = " (cut by budget)" if s["cut"] else ""
            failed = f"; {s['failed']} raised" if s["failed"] else ""
            lines.append(
                f"| {name}{flag}{failed} | {s['n']:,} | {bl.fmt(s['p50'], 2)} | {bl.fmt(s['p95'], 2)} | "
                f"{bl.fmt(s['p99'], 2)} | {bl.fmt(s['max'], 1)} | {bl.fmt(s['mean'], 2)} | "
                f"{bl.fmt(r50, 1) + '×' if r50 else '–'} | {bl.fmt(r99, 1) + '×' if r99 else '–'} |"
            )
        lines += ["", "By kind of query (p50 / p99 ms):", "",
                  "| kind | n | " + " | ".join(lat) + " |", "| --- | ---: |" + " ---: |" * len(lat)]
        all_kinds = sorted({k for s in lat.values() for k in s["by_kind"]})
        for k in all_kinds:
            cells = []
            for s in lat.values():
                bk = s["by_kind"].get(k)
                cells.append(f"{bl.fmt(bk['p50'], 2)} / {bl.fmt(bk['p99'], 2)}" if bk else "–")
            n = max((s["by_kind"].get(k, {}).get("n", 0) for s in lat.values()), default=0)
            lines.append(f"| {k} | {n:,} | " + " | ".join(cells) + " |")
        failures = [f for s in lat.values() for f in s["failures"]]
        if failures:
            lines += ["", "Queries that raised (first few):", ""] + [f"- `{f}`" for f in failures[:10]]
        lines += ["", f"Opening the index in a new `Engine` took {results['engine_load_s']:.1f} s "
                  f"(what each gunicorn worker does at start).", ""]

    if results.get("http", {}).get("runs"):
        h = results["http"]
        lines += [
            "## HTTP",
            "",
            f"Real gunicorn ({h['config']}: {h['workers']} workers × {h['threads']} threads) on 127.0.0.1, "
            f"serving generation `{h.get('generation')}`, driven by `wrk` (1 thread, {h['seconds']:.0f} s per "
            "run) with a Lua script that cycles through the URL-encoded query set (the same queries as "
            "in-process). `/healthz` is the stack's ceiling on this machine (gunicorn + Falcon + middleware, no "
            "search). The endpoint runs use a server with the response cache off (`FAQ_CACHE_SIZE=0`), so "
            "every request runs the engine; *repeated* cycles through 20 questions against a second server "
            "as configured (cache on), so almost every request is a cache hit, and is compared with that "
            "server's own `/healthz` measured just before it. Errors = non-2xx + socket errors + timeouts "
            "(10 s). Ratios above 100% are noise: the two runs compared are 10 s apart on a shared machine.",
            "",
            "| endpoint | c | req/s | p50 ms | p99 ms | errors | % of /healthz at same c |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        ceilings = {r["connections"]: r["rps"] for r in h["runs"] if r["endpoint"] == "healthz"}
        ceilings2 = {r["connections"]: r["rps"] for r in h["runs"] if r["endpoint"] == "healthz-2"}
        order = {"healthz": 0, "search": 1, "suggest": 2, "answer": 3, "healthz-2": 4, "repeated": 5}
        names = {"healthz": "/healthz", "healthz-2": "/healthz (server 2)",
                 "repeated": "/v1/search repeated (server 2: 20 queries, cached)"}
        for r in sorted(h["runs"], key=lambda r: (order.get(r["endpoint"], 9), r["connections"])):
            ceil = (ceilings2 if r["endpoint"] == "repeated" else ceilings).get(r["connections"]) or \
                ceilings.get(r["connections"])
            share = f"{100 * r['rps'] / ceil:.1f}%" if ceil and not r["endpoint"].startswith("healthz") else "–"
            name = names.get(r["endpoint"], f"/v1/{r['endpoint']}")
            err = f"{r['errors']:,}" + (f" ({r['timeouts']} timeouts)" if r["timeouts"] else "") + (
                " (no request completed)" if not r["requests"] else "")
            lines.append(f"| {name} | {r['connections']} | {bl.fmt(r['rps'])} | {bl.fmt(r['p50_ms'])} | "
                         f"{bl.fmt(r['p99_ms'])} | {err} | {share} |")
        lat = results.get("latency", {})
        h8 = next((r for r in h["runs"] if r["endpoint"] == "healthz" and r["connections"] == 8), None)
        if h8 and h8["rps"] and lat:
            lines += [
                "",
                "Where a request's time goes at c=8, in worker time per request (workers ÷ req/s; wrk shares the "
                "cores, so it is an upper bound): the `/healthz` cost is the stack's floor, the engine's mean is "
                "from the in-process table (2nd pass where there is one: the workers have seen the cycling "
                "queries before), the rest is what the HTTP layer adds for that endpoint (response JSON, "
                "middleware, ETag, parameters). A negative rest means the figures are within the noise.",
                "",
                "| endpoint | worker ms per request | of which stack floor (/healthz) | engine mean in-process | rest |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            floor = h["workers"] / h8["rps"] * 1000
            lines.append(f"| /healthz | {floor:.2f} | {floor:.2f} | – | – |")
            for ep in ENDPOINTS:
                r = next((r for r in h["runs"] if r["endpoint"] == ep and r["connections"] == 8), None)
                eng = lat.get(f"Engine.{ep} (2nd pass)") or lat.get(f"Engine.{ep}")
                if not r or not r["rps"] or not eng:
                    continue
                per = h["workers"] / r["rps"] * 1000
                lines.append(f"| /v1/{ep} | {per:.2f} | {floor:.2f} | {eng['mean']:.2f} | "
                             f"{per - floor - eng['mean']:.2f} |")
            lines.append("")
        servers = h.get("servers", [])
        logged = sum(sv["log_errors"] for sv in servers)
        restarts = sum(sv["restarts"] for sv in servers)
        lines += ["", f"Errors or tracebacks in the gunicorn logs: {logged}; worker restarts during the runs: "
                  f"{restarts}.", ""]
        boots = [b["ready_s"] for sv in servers for b in sv["boots"] if b["ready_s"] is not None]
        if servers:
            lines.append(
                "Start-up: gunicorn answered `/readyz` with every worker ready after "
                + " and ".join(f"{sv['ready_s']:.1f} s ({sv['label']})" for sv in servers)
                + (f"; a worker takes {_span(boots)} s from boot to serving (log timestamps, "
                   "1 s resolution), all of it opening the generation, and serves nothing meanwhile." if boots else ".")
            )
            lines.append("")
        mr = h.get("max_requests")
        if mr:
            ceil8 = ceilings.get(8)
            search8 = next((r["rps"] for r in h["runs"] if r["endpoint"] == "search" and r["connections"] == 8), None)
            every = []
            for label, rate in (("at the `/healthz` ceiling", ceil8), ("at the `/v1/search` c=8 rate", search8)):
                if rate:
                    every.append(f"{label} ({bl.fmt(rate)} req/s) every {mr / (rate / h['workers']):,.0f} s")
            state = ("turned off for these runs (`--max-requests 0`; `--keep-max-requests` keeps it) so that they "
                     "measure the steady state" if h.get("recycling_off") else "left on for these runs")
            lines += [
                f"Worker recycling: `gunicorn.conf.py` sets `max_requests = {mr}` (jitter "
                f"{h.get('max_requests_jitter') or 0}), {state}. With it, each worker is replaced after that many "
                "requests: " + ("; ".join(every) if every else "–") + ", and each replacement takes a worker out "
                "for its boot time above.",
                "",
            ]

    if results.get("memory"):
        lines += ["## Memory", "", "Resident memory of each gunicorn worker (`/proc/<pid>/status`), after warm-up "
                  "and the load runs. `VmHWM` is the worker's peak.", "",
                  "| server | worker pid | RSS MB | anon MB | file MB | peak (VmHWM) MB |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for mem in results["memory"]:
            for w in mem["workers"]:
                lines.append(f"| {mem['server']} | {w['pid']} | {w['rss_mb']:.0f} | {w['anon_mb']:.0f} | "
                             f"{w['file_mb']:.0f} | {w['hwm_mb']:.0f} |")
        lines += ["", f"The gunicorn master: {results['memory'][0]['master']['rss_mb']:.0f} MB. The benchmark "
                  f"process itself (in-process engine) peaked at {results.get('bench_process_rss_mb', 0):.0f} MB.", ""]

    prof = results.get("search_profile")
    if prof:
        lines += [
            "## Where the time goes: `Engine.search`",
            "",
            f"`cProfile` over {prof['queries']} MedQuAD questions"
            + (f" (of {prof['planned']}: cut by the time budget)" if prof["queries"] < prof.get("planned", 0) else "")
            + f" ({prof['seconds']:.1f} s with the profiler's overhead; `Engine.search` total "
            f"{prof['total_s']:.2f} s = 100%).",
            "",
        ]
        named = [r for r in prof["project"] if not r["function"].startswith(("<", "search ("))][:6]
        if named:
            lines += ["Biggest costs in the project's code (cumulative, they nest): " + "; ".join(
                f"`{r['function'].split(' (')[0]}` {r['cum_pct']:.0f}%" for r in named) + ".", ""]
        lines += ["The project's own functions:", ""]
        lines += _profile_table(prof["project"])
        lines += ["", "Top functions by cumulative time (everything):", ""]
        lines += _profile_table(prof["by_cumulative"])
        lines += ["", "Top functions by own time (where the CPU is actually spent):", ""]
        lines += _profile_table(prof["by_own"], own=True)
        lines.append("")
    for wp in results.get("wsgi_profiles", []):
        cache = "response cache on, 20 repeated queries" if wp["cache"] else "response cache off"
        lines += [
            f"## Where the time goes: the HTTP layer of `/v1/{wp['endpoint']}`",
            "",
            f"An HTTP target of this endpoint is missed, so `cProfile` of the Falcon app itself "
            f"(`create_app`, {cache}), called as WSGI in-process for {wp['requests']:,} requests (statuses "
            + ", ".join(f"{k}: {v:,}" for k, v in sorted(wp["statuses"].items()))
            + f"): {wp['per_request_ms']:.2f} ms per request under the profiler, gunicorn's own work not "
            "included. The project's functions and Falcon's, by cumulative time:",
            "",
        ]
        rows = [r for r in wp["by_cumulative"] if not r["function"].startswith("<")][:18]
        lines += _profile_table(rows)
        lines += ["", "Top functions by own time:", ""]
        lines += _profile_table(wp["by_own"][:12], own=True)
        lines.append("")
    sprof = results.get("suggest_profile")
    if sprof:
        lines += [
            "## Where the time goes: `Engine.suggest`",
            "",
            f"Its p99 target is missed, so `cProfile` over {sprof['queries']:,} queries of the set "
            f"(`Engine.suggest` total {sprof['total_s']:.2f} s = 100%). The project's own functions:",
            "",
        ]
        lines += _profile_table(sprof["project"][:12])
        lines += ["", "Top functions by own time:", ""]
        lines += _profile_table(sprof["by_own"][:12], own=True)
        lines.append("")
    bprof = results.get("build_profile")
    if bprof:
        lines += [
            "## Where the time goes: the build",
            "",
            f"`cProfile` of `indexer.publish.build` in-process on the first {bprof['pages']} pages "
            f"({bprof['sections']} sections, {bprof['seconds']:.1f} s with the profiler):",
            "",
        ]
        lines += _profile_table(bprof["project"][:12])
        lines += ["", "Top functions by own time (time in a lock's `acquire` is the build waiting for work done "
                  "in other processes or threads, which this profile cannot see into):", ""]
        lines += _profile_table(bprof["by_own"][:12], own=True)
        lines.append("")
    lines += ["## Notes", "", NOTES_START, notes.strip("\n") if notes.strip() else
              "(Hand-written analysis goes here; `bench/run.py` keeps it across runs.)", NOTES_END, ""]
    return "\n".join(lines)


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"about {lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}–{hi:.0f}"


def _profile_table(rows: list[dict], own: bool = False) -> list[str]:
    out = ["| function | calls | own s | cumulative s | % of total |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        pct = r["own_pct"] if own else r["cum_pct"]
        fn = r["function"].replace("|", "\\|")
        out.append(f"| `{fn}` | {r['calls']:,} | {r['own_s']:.3f} | {r['cum_s']:.3f} | {pct:.1f}% |")
    return out


def read_notes(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    if NOTES_START in text and NOTES_END in text:
        return text.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
    return ""


def print_summary(results: dict) -> None:
    print()
    print("=" * 78)
    print(f"bench: {results['revision']} on {results['machine']['nproc']} CPUs, "
          f"{results['run_seconds'] / 60:.1f} min")
    for v in results["verdicts"]:
        res = v["result"] + (f" ({v['by']})" if v["by"] else "")
        print(f"  {res:<44.44s} {_value(v):>14s}  {v['label']} [{v['target']}]")
    lat = results.get("latency", {})
    bc = results.get("baseline_common")
    for name, s in lat.items():
        sc = s.get("common")
        ratio = (f"  ({sc['p50'] / bc['p50']:.2f}× baseline p50 on the first {s['common_n']})"
                 if bc and sc and bc["p50"] and not name.startswith("plain") else "")
        print(f"  {name:26s} n={s['n']:<5d} p50 {s['p50']:8.2f} ms  p99 {s['p99']:8.2f} ms{ratio}")
    print("=" * 78)


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
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
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    from service import datasets

    data_dir = args.data or datasets.shared_data_dir()
    if data_dir is None or not (Path(data_dir) / datasets.MEDQUAD_DOCS).is_file():
        where = args.data or os.environ.get(datasets.ENV_VAR) or datasets.DEFAULT_DIR
        print(f"bench: no MedQuAD data at {where} (expected {datasets.MEDQUAD_DOCS}); the benchmark needs "
              f"../shared/data beside the repository (or ${datasets.ENV_VAR}). Nothing was measured or written.")
        return 0
    data_dir = Path(data_dir)
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
        output.write_text(render_doc(results, args, read_notes(output)), encoding="utf-8")
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
