"""Scale benchmark: ``python bench/run.py --scale 1,4,10`` (or ``python bench/scale.py``),
outside CI. How build, update, memory, start-up and latency grow with the corpus, beside
tantivy on the same sections (in-process, and as a minimal Falcon app under gunicorn with
the same settings).

Growth (seeded, deterministic): the N× corpus is MedQuAD's pages plus N−1 perturbed copies
of each (``<name>-cK.html``); in every text node of a copy each word is kept with
probability 0.8, otherwise replaced by a word drawn from MedQuAD's word frequencies.

For each size: full build and one-page update (subprocesses, wall time and peak RSS),
index size; in-process search p50/p99 over the same query sample for our engine (first
pass on a fresh engine, then warm) and tantivy; then 2 gunicorn workers of each app:
ready time, USS/PSS per worker (``/proc/<pid>/smaps_rollup``), and ``wrk`` at 8
connections on search (our response cache off), the two apps' runs interleaved over
``--rounds`` rounds (medians; the ratio is the median of the per-round ratios). A
least-squares exponent k of figure ∝ size^k is fitted per figure. Budget: about 5 min at
1×, 10 min at 4×, 25 min at 10× on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from itertools import accumulate
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib as bl  # noqa: E402
from builds import cli_build, edit_articles, generation_size, render_corpus  # noqa: E402
from common import ROOT, bl_config, log  # noqa: E402

SEED = 13
KEEP = 0.8
_TEXT = re.compile(r">([^<]+)<")
_WORDS = re.compile(r"[A-Za-z]+")


def grow_corpus(base: Path, out: Path, factor: int, seed: int = SEED) -> int:
    """``out`` = ``base``'s pages plus ``factor − 1`` perturbed copies of each; returns pages."""
    pages = sorted(base.glob("*.html"))
    freq: Counter[str] = Counter()
    for p in pages:
        for text in _TEXT.findall(p.read_text(encoding="utf-8")):
            freq.update(w.lower() for w in _WORDS.findall(text))
    vocab, weights = zip(*freq.most_common(), strict=True)
    # Cumulative once: choices(vocab, weights) would accumulate the whole vocabulary per
    # drawn word (hours at 10×); with cum_weights it bisects, drawing the very same words.
    cum = list(accumulate(weights))
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for p in pages:
        html = p.read_text(encoding="utf-8")
        shutil.copy(p, out / p.name)
        count += 1
        for k in range(2, factor + 1):
            rnd = random.Random(f"{seed}:{p.name}:{k}")

            def perturb(m: re.Match, rnd=rnd) -> str:
                def word(w: re.Match) -> str:
                    return w.group(0) if rnd.random() < KEEP else rnd.choices(vocab, cum_weights=cum)[0]
                return ">" + _WORDS.sub(word, m.group(1)) + "<"

            (out / f"{p.stem}-c{k}.html").write_text(_TEXT.sub(perturb, html), encoding="utf-8")
            count += 1
    return count


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"p50_ms": bl.percentile(s, 50), "p99_ms": bl.percentile(s, 99), "n": len(s)}


def time_queries(fn, queries: list[str]) -> dict:
    lat = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        lat.append((time.perf_counter() - t) * 1000)
    return percentiles(lat)


def tantivy_index(index_dir: Path, out: Path) -> tuple[float, object]:
    """The same sections (question, title, answer) in a tantivy index; build seconds, index."""
    import tantivy
    from whoosh import index as whoosh_index

    from indexer.publish import current_generation

    sb = tantivy.SchemaBuilder()
    for f in ("question", "title", "answer"):
        sb.add_text_field(f, stored=f != "answer")
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    schema = sb.build()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    ix = whoosh_index.open_dir(str(current_generation(index_dir)[1]))
    with ix.searcher() as s:
        docs = [(d["question"], d.get("title", ""), d["answer"], d["id"]) for d in s.all_stored_fields()]
    t0 = time.perf_counter()
    tix = tantivy.Index(schema, path=str(out))
    writer = tix.writer(heap_size=200_000_000, num_threads=2)
    for q, title, a, i in docs:
        writer.add_document(tantivy.Document(question=q, title=title, answer=a, id=i))
    writer.commit()
    writer.wait_merging_threads()
    tix.reload()
    return time.perf_counter() - t0, tix


def tantivy_search(tix):
    searcher = tix.searcher()

    def search(q: str):
        words = re.findall(r"\w+", q)
        if not words:
            return []
        # Lower-cased: AND, OR and NOT in capitals are tantivy query operators (LiveQA has them).
        query = tix.parse_query(" ".join(words).lower(), ["question", "title", "answer"])
        hits = searcher.search(query, 10).hits
        return [searcher.doc(a)["id"] for _, a in hits]
    return search


def memory(pid: int) -> dict:
    """USS (private), PSS, RSS and anonymous memory of one process, MB, from smaps_rollup.

    USS counts the pages of the memory-mapped generation that only this process has touched
    so far (``Private_Clean``): page cache, which becomes shared once the other worker reads
    the same page. ``Anonymous`` is what the process really holds alone (heap, Python objects)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"uss_mb": uss / 1024, "pss_mb": fields.get("Pss", 0) / 1024, "rss_mb": fields.get("Rss", 0) / 1024,
            "anon_mb": fields.get("Anonymous", 0) / 1024}


def memory_probe(factors: list[int], work: Path, paths: list[str], counts: tuple[int, ...] = (200, 1000)) -> dict:
    """``--memory-only``: 2 workers of our app on each size's index already built in ``work``,
    memory of each after ``counts`` queries (cycling ``paths``), one at a time."""
    out = {}
    for n in factors:
        index, corpus = work / f"index-{n}x", work / f"corpus-{n}x"
        proc, port, ready = gunicorn("service.app:create_app()", {"FAQ_INDEX_DIR": str(index),
                                     "FAQ_CORPUS_DIR": str(corpus), "FAQ_CACHE_SIZE": "0"}, work / "memory.log")
        try:
            kids = bl.children_of(proc.pid)
            rows = [{"queries": 0, "workers": [memory(k) for k in kids]}]
            done = 0
            for count in counts:
                for p in (paths * (count // len(paths) + 1))[done:count]:
                    bl.http_get(port, p, timeout=30)
                done = count
                rows.append({"queries": count, "workers": [memory(k) for k in kids]})
            out[f"{n}x"] = {"ready_s": ready, "after": rows}
            log(f"memory {n}x: {json.dumps(out[f'{n}x'])}")
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
    return out


def gunicorn(app: str, env: dict, log_path: Path) -> tuple[subprocess.Popen, int, float]:
    """2 sync workers of ``app`` under the project's gunicorn.conf.py; (proc, port, ready s)."""
    port = bl.free_port()
    env = bl.project_env(HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="2", **env)
    env["PYTHONPATH"] = f"{ROOT / 'bench'}:{env.get('PYTHONPATH', ROOT)}"
    argv = [bl.PYTHON, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--max-requests", "0",
            "--bind", f"127.0.0.1:{port}", app]
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300:
        if proc.poll() is not None:
            raise RuntimeError(f"{app} exited: {log_path.read_text()[-2000:]}")
        ok = 0
        for _ in range(4):  # each worker answers once it has opened the index
            try:
                status, _ = bl.http_json(port, "/v1/search?q=diabetes", timeout=30)
                ok += status == 200
            except OSError:
                pass
        if ok == 4 and len(bl.children_of(proc.pid)) >= 2:
            return proc, port, time.monotonic() - t0
        time.sleep(0.1)
    raise RuntimeError(f"{app} not ready in 300 s")


def http_phase(apps: dict[str, tuple[str, dict]], work: Path, paths: list[str], seconds: float,
               rounds: int = 3) -> dict[str, dict]:
    """Each app (name → gunicorn app, environment) under gunicorn at once: ready time,
    memory once every query was served, then a warm-up run and ``rounds`` interleaved
    ``wrk`` runs (one per app per round, so both meet the same moments of a shared machine).
    Per app: the runs and their median req/s, p50 and p99 (``round_ratios`` compares)."""
    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    out: dict[str, dict] = {}
    try:
        for name, (app, env) in apps.items():
            proc, port, ready = gunicorn(app, env, work / f"{name}.log")
            servers[name] = (proc, port)
            # Touch every query once on each worker so the memory figure is a serving one.
            for p in paths[:200]:
                bl.http_get(port, p, timeout=30)
            out[name] = {"ready_s": ready, "workers": [memory(pid) for pid in bl.children_of(proc.pid)], "runs": []}
        try:
            wrk = bl.ensure_wrk()
        except bl.WrkMissing as exc:
            for result in out.values():
                result["wrk"] = str(exc)
            return out
        lua = bl.write_lua(work / "scale.lua", paths)
        for _, port in servers.values():  # a warm-up run each, not recorded
            bl.run_wrk(wrk, port, lua, "search", 8, max(2.0, seconds / 4))
        for _ in range(rounds):
            for name, (_, port) in servers.items():
                res = bl.run_wrk(wrk, port, lua, "search", 8, seconds)
                out[name]["runs"].append({"rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                                          "errors": res.errors})
        for result in out.values():
            for key in ("rps", "p50_ms", "p99_ms"):
                result[key] = statistics.median(r[key] for r in result["runs"])
            result["errors"] = sum(r["errors"] for r in result["runs"])
        return out
    finally:
        for proc, _ in servers.values():
            os.killpg(proc.pid, 15)
            proc.wait(30)


def round_ratios(ours: dict, reference: dict) -> float | None:
    """The median over rounds of ours ÷ reference req/s (runs of a round are seconds apart)."""
    pairs = [a["rps"] / b["rps"] for a, b in zip(ours.get("runs", []), reference.get("runs", []), strict=True)
             if b["rps"]]
    return statistics.median(pairs) if pairs else None


def exponent(sizes: list[float], values: list[float | None]) -> float | None:
    """k in value ∝ size^k, least squares on logs (None with fewer than 2 points)."""
    pts = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if v and v > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def run_scale(factors: list[int], work: Path, data_dir: Path, n_queries: int = 300,
              http_seconds: float = 10.0, base_corpus: Path | None = None, rounds: int = 3) -> dict:
    from eval import datasets
    from service.search import Engine

    work.mkdir(parents=True, exist_ok=True)
    base = base_corpus or work / "corpus-1x"
    if not base.is_dir():
        render_corpus(data_dir, base)
    qs = [qa["question"] for d in datasets.load_medquad(data_dir) for qa in d["qa"]]
    random.Random(SEED).shuffle(qs)
    queries = qs[:n_queries]
    paths = [f"/v1/search?q={quote(q)}" for q in queries]
    rows = []
    for n in factors:
        log(f"scale {n}x: growing the corpus")
        corpus, index = work / f"corpus-{n}x", work / f"index-{n}x"
        shutil.rmtree(corpus, ignore_errors=True)
        shutil.rmtree(index, ignore_errors=True)
        pages = grow_corpus(base, corpus, n)
        log(f"scale {n}x: full build of {pages} pages")
        full = cli_build("full", corpus, index)
        edit_articles(corpus, [sorted(corpus.glob("*.html"))[0]], f"scale-{n}")
        update = cli_build("update", corpus, index)
        row = {"factor": n, "pages": pages, "sections": full["sections"], "build_s": full["wall_s"],
               "build_peak_rss_mb": full["peak_rss_mb"], "update_s": update["wall_s"],
               "update_peak_rss_mb": update["peak_rss_mb"], **generation_size(index)}
        log(f"scale {n}x: in-process latency")
        t0 = time.perf_counter()
        engine = Engine(bl_config(corpus, index))
        engine.generation()
        row["open_s"] = time.perf_counter() - t0
        row["ours_first"] = time_queries(engine.search, queries)
        row["ours_warm"] = time_queries(engine.search, queries)
        del engine
        row["tantivy_build_s"], tix = tantivy_index(index, work / f"tantivy-{n}x")
        search = tantivy_search(tix)
        time_queries(search, queries)
        row["tantivy_warm"] = time_queries(search, queries)
        log(f"scale {n}x: gunicorn, ours and the tantivy app")
        http = http_phase({"ours": ("service.app:create_app()",
                                    {"FAQ_INDEX_DIR": str(index), "FAQ_CORPUS_DIR": str(corpus), "FAQ_CACHE_SIZE": "0"}),
                           "tantivy": ("tantivy_app:create_app()", {"TANTIVY_INDEX": str(work / f"tantivy-{n}x")})},
                          work, paths, http_seconds, rounds)
        row["http_ours"], row["http_tantivy"] = http["ours"], http["tantivy"]
        row["http_ratio"] = round_ratios(http["ours"], http["tantivy"])
        rows.append(row)
        log(f"scale {n}x: {json.dumps(row)}")
    sizes = [r["sections"] for r in rows]
    figures = {
        "build_s": [r["build_s"] for r in rows], "update_s": [r["update_s"] for r in rows],
        "generation_mb": [r["generation_mb"] for r in rows], "open_s": [r["open_s"] for r in rows],
        "warm_p50_ms": [r["ours_warm"]["p50_ms"] for r in rows],
        "warm_p99_ms": [r["ours_warm"]["p99_ms"] for r in rows],
        "uss_mb": [max(w["uss_mb"] for w in r["http_ours"]["workers"]) for r in rows],
        "ready_s": [r["http_ours"]["ready_s"] for r in rows],
    }
    return {"rows": rows, "exponents": {k: exponent(sizes, v) for k, v in figures.items()},
            "machine": bl.machine_info(), "revision": bl.git_revision(), "date": bl.now_utc()}


def render(result: dict) -> str:
    """The markdown table of a scale run."""
    f = bl.fmt
    lines = ["| size | sections | build s | update s | update peak MB | generation MB | open s | "
             "first p50/p99 ms | warm p50/p99 ms | tantivy p50/p99 ms | ready s | USS/PSS MB per worker | "
             "HTTP req/s (8 conn) | HTTP p50/p99 ms | tantivy app req/s | ours ÷ tantivy app | tantivy app USS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ho, ht = r["http_ours"], r["http_tantivy"]
        mem = ", ".join(f"{f(w['uss_mb'], 0)}/{f(w['pss_mb'], 0)}" for w in ho["workers"])
        lines.append(
            f"| {r['factor']}× | {r['sections']:,} | {f(r['build_s'])} | {f(r['update_s'], 2)} | "
            f"{f(r['update_peak_rss_mb'], 0)} | {f(r['generation_mb'], 0)} | {f(r['open_s'], 2)} | "
            f"{f(r['ours_first']['p50_ms'], 2)} / {f(r['ours_first']['p99_ms'], 2)} | "
            f"{f(r['ours_warm']['p50_ms'], 2)} / {f(r['ours_warm']['p99_ms'], 2)} | "
            f"{f(r['tantivy_warm']['p50_ms'], 2)} / {f(r['tantivy_warm']['p99_ms'], 2)} | "
            f"{f(ho['ready_s'], 1)} | {mem} | {f(ho.get('rps'), 0)} | {f(ho.get('p50_ms'), 1)} / "
            f"{f(ho.get('p99_ms'), 1)} | {f(ht.get('rps'), 0)} | {f(r.get('http_ratio'), 2)} | "
            f"{', '.join(f(w['uss_mb'], 0) for w in ht['workers'])} |")
    exps = ", ".join(f"{k} {f(v, 2)}" for k, v in result["exponents"].items())
    lines += ["", f"Growth exponents (figure ∝ sections^k): {exps}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="1,4,10", help="comma-separated corpus factors")
    p.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-scale")
    p.add_argument("--corpus", type=Path, default=None, help="an already rendered 1× corpus to reuse")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved wrk runs per app and size (medians)")
    p.add_argument("--memory-only", action="store_true",
                   help="only the workers' memory after 200 and 1,000 queries, on indexes --workdir already holds")
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    from eval import datasets

    data_dir = datasets.shared_data_dir()
    if args.memory_only:
        qs = [qa["question"] for d in datasets.load_medquad(data_dir) for qa in d["qa"]]
        random.Random(SEED).shuffle(qs)
        paths = [f"/v1/search?q={quote(q)}" for q in qs[:args.queries]]
        result = memory_probe([int(x) for x in args.scale.split(",")], args.workdir, paths)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
        return 0
    result = run_scale([int(x) for x in args.scale.split(",")], args.workdir, data_dir, args.queries,
                       args.duration, args.corpus, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
