"""Side by side (``python bench/peers.py``, outside CI): our engine, tantivy, bm25s and SQLite
FTS5 over the same sections and the same questions — ranking quality and in-process latency.

The sections are a generation's (question, title and answer of each, read from its Whoosh
stored fields), so every engine indexes the same text; each uses its own analysis with
English stemming (tantivy ``en_stem``, FTS5 ``porter unicode61``, bm25s with PyStemmer and
its English stopwords) and its own BM25 over question + title + answer. Questions:

- MedQuAD questions (a seeded sample): relevant = the section rendered from that QA pair
  and every section with the same answer text (MedQuAD repeats answers; our engine shows a
  repeated answer once);
- TREC-2017 LiveQA medical, summary and message, judged: relevant = sections of answers
  graded 3 or 4.

Reported per engine and set: MRR@10 and acc@1, and the latency of a top-10 query (p50/p99
over the set, medians over ``--runs`` runs after a warm-up pass; ours, tantivy and FTS5 take
turns within each run). Ours is timed twice: ranking only (``snippets=False``, ids like the
others) and as served (snippets). bm25s is not a project dependency: it runs in
``.venv-baseline`` (``make eval`` creates it) with the reference baseline's settings, in a
subprocess that builds its index once and times its own runs, after the others.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib as bl  # noqa: E402
from common import ROOT, bl_config, log  # noqa: E402

K = 10
_WORD = re.compile(r"\w+")
BM25S_PYTHON = ROOT / ".venv-baseline" / "bin" / "python"

# Run in .venv-baseline with the reference baseline's settings (shared/data/tools/bm25_baseline.py):
# reads {"docs": [...], "sets": {name: [query, …]}, "runs": n} on stdin, writes per set
# {"ranked": [[doc index, …] per query], "latency_ms": [[ms per query] per run]} on stdout.
_BM25S = r"""
import json, sys, time
import bm25s, Stemmer
job = json.load(sys.stdin)
stemmer = Stemmer.Stemmer("english")
tok = lambda texts: bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
retriever.index(tok(job["docs"]), show_progress=False)
k = min(10, len(job["docs"]))
def search(q):
    try:
        docs, scores = retriever.retrieve(tok([q]), k=k, show_progress=False, n_threads=1)
    except (ValueError, IndexError, KeyError):
        return []
    order = sorted(range(len(docs[0])), key=lambda i: (-float(scores[0][i]), int(docs[0][i])))
    return [int(docs[0][i]) for i in order if float(scores[0][i]) > 0]
out = {}
for name, queries in job["sets"].items():
    ranked = [search(q) for q in queries]  # also the warm-up
    runs = []
    for _ in range(job["runs"]):
        lat = []
        for q in queries:
            t = time.perf_counter()
            search(q)
            lat.append((time.perf_counter() - t) * 1000)
        runs.append(lat)
    out[name] = {"ranked": ranked, "latency_ms": runs}
json.dump(out, sys.stdout)
"""


def sections(index_dir: Path) -> list[dict]:
    """The served generation's live sections: id, question, title, answer, answer hash."""
    from whoosh import index as whoosh_index

    from indexer.publish import current_generation

    ix = whoosh_index.open_dir(str(current_generation(index_dir)[1]))
    with ix.searcher() as s:
        return [{"id": d["id"], "question": d["question"], "title": d.get("title", ""), "answer": d["answer"],
                 "hash": d["meta"]["answer_hash"]} for d in s.all_stored_fields()]


def question_sets(data_dir: Path, secs: list[dict], n_medquad: int, seed: int = 13) -> dict[str, list[dict]]:
    """{set name: [{"q", "relevant": set of section ids}]}."""
    from eval import datasets

    by_hash: dict[str, set[str]] = {}
    hash_of: dict[str, str] = {}
    for s in secs:
        by_hash.setdefault(s["hash"], set()).add(s["id"])
        hash_of[s["id"]] = s["hash"]
    section_of = {}
    medquad = []
    for doc in datasets.load_medquad(data_dir):
        for qa in doc["qa"]:
            sid = f"{doc['doc_id'].lower()}#{datasets.medquad_anchor(qa['qa_id'])}"
            section_of[qa["qa_id"]] = sid
            if sid in hash_of:
                medquad.append({"q": qa["question"], "relevant": by_hash[hash_of[sid]]})
    random.Random(seed).shuffle(medquad)
    qrels = datasets.load_qrels(data_dir)
    live = datasets.evaluated_liveqa(datasets.load_liveqa_queries(data_dir), qrels)
    out = {"MedQuAD question": medquad[:n_medquad]}
    for field in ("summary", "message"):
        out[f"LiveQA {field}"] = [
            {"q": q[field], "relevant": {section_of[a] for a, g in qrels[q["qid"]].items()
                                         if g >= datasets.RELEVANT_GRADE and a in section_of}}
            for q in live if q.get(field)]
    return out


def _tantivy(secs: list[dict], work: Path):
    import tantivy

    sb = tantivy.SchemaBuilder()
    for f in ("question", "title", "answer"):
        sb.add_text_field(f, stored=False, tokenizer_name="en_stem")
    sb.add_integer_field("n", stored=True)
    out = work / "peers-tantivy"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    tix = tantivy.Index(sb.build(), path=str(out))
    writer = tix.writer(heap_size=200_000_000, num_threads=2)
    for i, s in enumerate(secs):
        writer.add_document(tantivy.Document(question=s["question"], title=s["title"], answer=s["answer"], n=i))
    writer.commit()
    writer.wait_merging_threads()
    tix.reload()
    searcher = tix.searcher()

    def search(q: str) -> list[int]:
        words = _WORD.findall(q.lower())  # lower-cased: AND/OR/NOT in capitals are operators
        if not words:
            return []
        query = tix.parse_query(" ".join(words), ["question", "title", "answer"])
        return [searcher.doc(a)["n"][0] for _, a in searcher.search(query, K).hits]

    return search


def _fts5(secs: list[dict]):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE s USING fts5(question, title, answer, tokenize='porter unicode61')")
    conn.executemany("INSERT INTO s(rowid, question, title, answer) VALUES (?, ?, ?, ?)",
                     [(i, s["question"], s["title"], s["answer"]) for i, s in enumerate(secs)])
    conn.commit()

    def search(q: str) -> list[int]:
        words = dict.fromkeys(w.lower() for w in _WORD.findall(q))
        if not words:
            return []
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        return [r[0] for r in conn.execute("SELECT rowid FROM s WHERE s MATCH ? ORDER BY bm25(s) LIMIT ?",
                                           (match, K))]

    return search


def _bm25s(secs: list[dict], sets: dict[str, list[str]], runs: int) -> dict | None:
    if not BM25S_PYTHON.is_file():
        log(f"peers: no {BM25S_PYTHON} (make eval creates it); bm25s left out")
        return None
    job = {"docs": [f"{s['question']} {s['title']} {s['answer']}" for s in secs], "sets": sets, "runs": runs}
    done = subprocess.run([str(BM25S_PYTHON), "-c", _BM25S], input=json.dumps(job), capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0:
        log(f"bm25s failed: {done.stderr[-800:]}")
        return None
    return json.loads(done.stdout)


def _quality(ranked: list[list[str]], qs: list[dict]) -> dict:
    rr, top = [], []
    for ids, q in zip(ranked, qs, strict=True):
        rank = next((i for i, d in enumerate(ids[:K], 1) if d in q["relevant"]), None)
        rr.append(1 / rank if rank else 0.0)
        top.append(1.0 if rank == 1 else 0.0)
    return {"MRR@10": statistics.fmean(rr), "acc@1": statistics.fmean(top)}


def _latency(runs: list[list[float]]) -> dict:
    per_run = [(bl.percentile(sorted(r), 50), bl.percentile(sorted(r), 99)) for r in runs]
    return {"p50_ms": statistics.median(p for p, _ in per_run), "p99_ms": statistics.median(p for _, p in per_run)}


def run_peers(index_dir: Path, corpus_dir: Path, data_dir: Path, work: Path, n_medquad: int = 500,
              runs: int = 3) -> dict:
    from service.search import Engine

    secs = sections(index_dir)
    ids = [s["id"] for s in secs]
    sets = question_sets(data_dir, secs, n_medquad)
    log(f"peers: {len(secs)} sections; " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    engine = Engine(bl_config(corpus_dir, index_dir))
    engine.generation()
    engines = {
        "ours (ranking only)": lambda q: [r["id"] for r in engine.search(q, limit=K, snippets=False)["results"]],
        "ours (as served, snippets)": lambda q: [r["id"] for r in engine.search(q, limit=K)["results"]],
    }
    t0 = time.perf_counter()
    search = _tantivy(secs, work)
    log(f"peers: tantivy indexed in {time.perf_counter() - t0:.1f} s")
    engines["tantivy"] = lambda q: [ids[i] for i in search(q)]
    t0 = time.perf_counter()
    fts = _fts5(secs)
    log(f"peers: FTS5 indexed in {time.perf_counter() - t0:.1f} s")
    engines["SQLite FTS5"] = lambda q: [ids[i] for i in fts(q)]
    result: dict = {"sets": {k: len(v) for k, v in sets.items()}, "engines": {}}
    for set_name, qs in sets.items():
        ranked: dict[str, list] = {}
        lat: dict[str, list] = {name: [] for name in engines}
        for q in qs:  # a warm-up pass, which also gives the rankings
            for name, fn in engines.items():
                ranked.setdefault(name, []).append(fn(q["q"]))
        for _ in range(runs):
            for name, fn in engines.items():  # the engines take turns within a run
                samples = []
                for q in qs:
                    t = time.perf_counter()
                    fn(q["q"])
                    samples.append((time.perf_counter() - t) * 1000)
                lat[name].append(samples)
        for name in engines:
            result["engines"].setdefault(name, {})[set_name] = {**_quality(ranked[name], qs), **_latency(lat[name])}
        log(f"peers: {set_name} done")
    t0 = time.perf_counter()
    b = _bm25s(secs, {name: [q["q"] for q in qs] for name, qs in sets.items()}, runs)
    if b is not None:
        log(f"peers: bm25s done in {time.perf_counter() - t0:.1f} s")
        result["engines"]["bm25s"] = {
            name: {**_quality([[ids[i] for i in r] for r in b[name]["ranked"]], qs), **_latency(b[name]["latency_ms"])}
            for name, qs in sets.items()}
    return {**result, "machine": bl.machine_info(), "revision": bl.git_revision(), "date": bl.now_utc()}


def render(result: dict) -> str:
    sets = list(result["sets"])
    head = "| engine | " + " | ".join(f"{s} MRR@10 / acc@1 | p50 / p99 ms" for s in sets) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(sets)]
    for name, by_set in result["engines"].items():
        cells = []
        for s in sets:
            r = by_set.get(s)
            cells += ["–", "–"] if r is None else [f"{r['MRR@10']:.3f} / {r['acc@1']:.3f}",
                                                    f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{s} {n}" for s, n in result["sets"].items())
    return "\n".join(lines) + f"\n\nQuestions: {sizes}.\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from eval import datasets

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=Path, required=True, help="an index folder built from the MedQuAD corpus")
    p.add_argument("--corpus", type=Path, required=True, help="the corpus folder it was built from")
    p.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-peers")
    p.add_argument("--medquad", type=int, default=500, help="MedQuAD questions in the sample")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    data_dir = datasets.shared_data_dir()
    if data_dir is None:
        print("peers: no ../shared/data; nothing was measured.")
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = run_peers(args.index, args.corpus, data_dir, args.workdir, args.medquad, args.runs)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=list), encoding="utf-8")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
