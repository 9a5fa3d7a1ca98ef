"""Soak test: ``make soak`` (``python bench/soak.py``), a script, not a unit test.

Runs the real gunicorn (the project's ``gunicorn.conf.py``, response cache on) on 127.0.0.1
with an index of a copy of ``corpus/``, drives a steady mixed load from Python clients for a
bounded time (``--seconds``, default 60), and publishes a new generation every
``--publish-every`` seconds (default 10) by editing the copied corpus and calling
``indexer.publish.build`` (``update``, every third one ``full``; every other publish adds,
then removes, a small extra article). Checks:

- no 5xx, no other non-2xx, no socket errors;
- every publish succeeds, and after it every worker serves the new generation: ``/readyz``
  reports it within ``--grace`` seconds and never an older one afterwards, and a word that
  exists only in the new generation is found by ``/v1/search`` (through the response cache)
  on every request after the grace period, while the word it replaced is no longer found;
- the RSS of each worker grows by at most ``--max-rss-growth-mb`` between warm-up and the end.

Then (unless ``--ops-seconds 0``) the load-balancer drills of ``bench/ops.py``: nginx with
``deploy/faq-search.conf`` in front of two replicas; 20 slow-header connections held for
``--ops-seconds`` (default 20), a replica killed with SIGKILL under load, a generation shipped
to both replicas, a burst of wrong reindex tokens. Each is one more check of the report.

Writes ``docs/soak.md`` and exits 1 when a check fails. Stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import shutil
import signal
import string
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib as bl  # noqa: E402

from eval.reports import with_marker  # noqa: E402

ROOT = bl.ROOT
DOC = ROOT / "docs" / "soak.md"
MIX = (("search", 40), ("suggest", 30), ("answer", 20), ("readyz", 5), ("healthz", 5))

EXTRA_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Soak Test Extra Page | My Psychotherapy</title>
<meta name="description" content="A page the soak test adds and removes."></head>
<body><main><article><h1>Soak Test Extra Page</h1>
<h2 id="what-is-a-soak-test">What is a soak test?</h2>
<p>A long run under steady load that looks for leaks and for errors during index publishes.</p>
<h2 id="why-publish-during-load">Why publish during load?</h2>
<p>Because editors publish while visitors search, and neither should notice the other.</p>
</article></main></body></html>
"""


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter = field(default_factory=Counter)  # by kind
    statuses: Counter = field(default_factory=Counter)  # by status code
    errors: Counter = field(default_factory=Counter)  # socket/protocol errors by kind of exception
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    bad: list = field(default_factory=list)  # (t, kind, status or error, path)

    def record(self, kind: str, status: int | None, ms: float, path: str, error: str | None = None) -> None:
        with self.lock:
            self.requests[kind] += 1
            if error is not None:
                self.errors[error] += 1
                self.bad.append((time.time(), kind, error, path[:80]))
                return
            self.statuses[status] += 1
            self.latencies[kind].append(ms)
            if not 200 <= status < 300:
                self.bad.append((time.time(), kind, status, path[:80]))


def get(port: int, path: str, timeout: float = 15.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def client(port: int, seed: int, queries: list[str], stop: threading.Event, stats: Stats, rate: float) -> None:
    rng = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    while not stop.is_set():
        kind = rng.choice(kinds)
        q = rng.choice(queries)
        if kind in ("search", "answer"):
            path = f"/v1/{kind}?q={quote_plus(q)}"
        elif kind == "suggest":
            words = q.split()
            cut = " ".join(words[: rng.randint(1, max(1, min(4, len(words))))])
            path = f"/v1/suggest?q={quote_plus(cut[: max(1, len(cut) - rng.randint(0, 3))])}"
        else:
            path = f"/{kind}"
        t0 = time.perf_counter()
        try:
            status, _ = get(port, path)
            stats.record(kind, status, (time.perf_counter() - t0) * 1000, path)
        except (OSError, http.client.HTTPException) as exc:
            stats.record(kind, None, 0.0, path, error=type(exc).__name__)
        if interval:
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                next_at = time.monotonic()


def watch_ready(port: int, stop: threading.Event, seen: list) -> None:
    """``/readyz`` every 0.2 s: (time, generation or None, status)."""
    while not stop.is_set():
        try:
            status, body = get(port, "/readyz", timeout=10)
            gen = json.loads(body).get("generation") if status == 200 else None
            seen.append((time.time(), gen, status))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            seen.append((time.time(), None, type(exc).__name__))
        stop.wait(0.2)


def watch_memory(server: bl.Server, stop: threading.Event, samples: list) -> None:
    while not stop.is_set():
        samples.append((time.time(), {w["pid"]: w["rss_mb"] for w in server.worker_memory()}))
        stop.wait(2.0)


def seq(generation: str | None) -> int:
    try:
        return int(str(generation).split("-", 1)[0])
    except ValueError:
        return -1


def marker(rng: random.Random) -> str:
    return "soak" + "".join(rng.choice(string.ascii_lowercase) for _ in range(10))


def set_marker(path: Path, old: str | None, new: str) -> None:
    """Put ``new`` (or swap ``old`` for it) into the first answer paragraph after a heading."""
    text = path.read_text(encoding="utf-8")
    if old and old in text:
        text = text.replace(old, new, 1)
    else:
        start = max(0, next((i for i in (text.find("<h2"), text.find("<h1"), text.find("<article"))
                             if i >= 0), 0))
        end = text.find("</p>", start)
        if end < 0:
            raise RuntimeError(f"{path.name} has no paragraph to edit")
        text = f"{text[:end]} Soak marker {new}.{text[end:]}"
    path.write_text(text, encoding="utf-8")


def found(port: int, word: str) -> bool:
    status, body = get(port, f"/v1/search?q={quote_plus(word)}")
    if status != 200:
        return False
    data = json.loads(body)
    return any(word in (r.get("answer") or "") for r in data.get("results", []))


def check_publish(port: int, new: str, old: str | None, published_at: float, grace: float) -> dict:
    """How long until the new word is found; then 10 requests in a row must see new, not old."""
    first = None
    deadline = published_at + grace
    while time.time() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            if found(port, new):
                first = time.time() - published_at
                break
        time.sleep(0.1)
    if time.time() < deadline:
        time.sleep(deadline - time.time())
    stale = 0
    for _ in range(10):
        try:
            if not found(port, new) or (old and found(port, old)):
                stale += 1
        except (OSError, http.client.HTTPException, ValueError):
            stale += 1
    return {"visible_after_s": first, "stale_after_grace": stale}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="length of the load (default 60)")
    p.add_argument("--publish-every", type=float, default=10.0, help="seconds between publishes (default 10)")
    p.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--rate", type=float, default=50.0, help="requests/s per client, at most (default 50)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds a publish may take to reach every worker")
    p.add_argument("--max-rss-growth-mb", type=float, default=40.0, help="allowed RSS growth per worker")
    p.add_argument("--output", type=Path, default=DOC, help="report path (default docs/soak.md)")
    p.add_argument("--no-write", action="store_true", help="print the result only")
    p.add_argument("--ops-seconds", type=float, default=20.0,
                   help="slow-header drill of the nginx drills (bench/ops.py); 0 skips the drills")
    args = p.parse_args(argv)

    from indexer.publish import build
    from indexer.settings import load_config

    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="faq-soak-"))
    corpus, index = work / "corpus", work / "index"
    shutil.copytree(ROOT / "corpus", corpus)
    config = load_config(corpus_dir=corpus, index_dir=index)
    rng = random.Random(7)
    first = build(config, mode="full")
    pages = sorted(corpus.glob("*.html"))
    queries = corpus_questions(index) or ["psychotherapy"]
    queries += ["how long does therapy take", "psychoterapy goals", "online therapy", "notes subpoena"]
    server = bl.Server(index, corpus, work / "gunicorn.log", {})
    stats, ready_seen, mem_samples = Stats(), [], []
    publishes: list[dict] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    log(f"gunicorn on loopback, {args.clients} clients, {args.seconds:.0f} s, a publish every "
        f"{args.publish_every:.0f} s (work folder {work})")
    failure = None
    try:
        server.start()
        threads = [threading.Thread(target=client, daemon=True,
                                    args=(server.port, i, queries, stop, stats, args.rate))
                   for i in range(args.clients)]
        threads.append(threading.Thread(target=watch_ready, args=(server.port, stop, ready_seen), daemon=True))
        threads.append(threading.Thread(target=watch_memory, args=(server, stop, mem_samples), daemon=True))
        for t in threads:
            t.start()
        t0 = time.time()
        end = t0 + args.seconds
        markers: dict[Path, str] = {}
        extra = corpus / "soak-extra.html"
        n = 0
        while True:
            next_publish = t0 + (n + 1) * args.publish_every
            if next_publish + args.grace + 1 > end:
                break
            stop.wait(max(0.0, next_publish - time.time()))
            n += 1
            page = pages[(n - 1) % len(pages)]
            old, new = markers.get(page), marker(rng)
            set_marker(page, old, new)
            markers[page] = new
            change = f"edited {page.name}"
            if n % 2 == 0:  # every other publish adds, then removes, a small article
                if extra.exists():
                    extra.unlink()
                    change += ", removed soak-extra.html"
                else:
                    extra.write_text(EXTRA_PAGE, encoding="utf-8")
                    change += ", added soak-extra.html"
            mode = "full" if n % 3 == 0 else "update"
            b0 = time.time()
            try:
                report = build(config, mode=mode)
                published_at = time.time()
                entry = {"n": n, "mode": mode, "change": change, "generation": report.generation,
                         "published": report.published, "build_s": published_at - b0,
                         "sections": report.sections, "at_s": published_at - t0, "wall": published_at}
            except Exception as exc:  # noqa: BLE001 - a failed publish is a finding
                publishes.append({"n": n, "mode": mode, "change": change, "generation": None,
                                  "published": False, "error": f"{type(exc).__name__}: {exc}",
                                  "build_s": time.time() - b0, "at_s": time.time() - t0})
                continue
            entry.update(check_publish(server.port, new, old, published_at, args.grace))
            publishes.append(entry)
            log(f"publish {n} ({mode}, {change}): {entry['generation']} in {entry['build_s']:.2f} s; "
                f"new word found after {fmt_s(entry['visible_after_s'])}, stale after grace: "
                f"{entry['stale_after_grace']}")
        stop.wait(max(0.0, end - time.time()))
    except Exception as exc:  # noqa: BLE001 - report and fail
        failure = f"{type(exc).__name__}: {exc}"
        log(f"FAILED: {failure}")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
        final_workers = server.worker_memory() if server.proc else []
        log_errors = bl.count_log_errors(server.log_path)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    result = evaluate(args, stats, ready_seen, mem_samples, publishes, first.generation, final_workers,
                      log_errors, failure)
    if args.ops_seconds > 0:
        add_ops_checks(result, args.ops_seconds)
    result["elapsed_s"] = time.time() - started
    text = render(args, result)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(with_marker(text), encoding="utf-8")
        log(f"wrote {args.output}")
    print(text)
    return 0 if result["ok"] else 1


def add_ops_checks(result: dict, slow_seconds: float) -> None:
    """Run the nginx drills of ``bench/ops.py`` and add one check per drill to ``result``."""
    import ops

    log(f"nginx drills: two replicas behind nginx, slow headers for {slow_seconds:g} s")
    try:
        drills = ops.run_all(slow_seconds=slow_seconds)
    except ops.NginxMissing as exc:
        drills = {"nginx": {"ok": False, "detail": str(exc)}}
    except Exception as exc:  # noqa: BLE001 - a drill that cannot run is a failed check
        drills = {"nginx": {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}}
    for name, r in drills.items():
        detail = r.get("detail") or ops.describe(name, r)
        result["checks"].append({"name": f"nginx drill: {name.replace('_', ' ')}", "ok": r["ok"], "detail": detail})
    result["ok"] = all(c["ok"] for c in result["checks"])


def corpus_questions(index: Path) -> list[str]:
    from whoosh import index as whoosh_index

    from indexer.publish import current_generation

    current = current_generation(index)
    if current is None:
        return []
    ix = whoosh_index.open_dir(str(current[1]))
    with ix.searcher() as s:
        return [f["question"] for f in s.all_stored_fields() if f.get("question")]


def fmt_s(v: float | None) -> str:
    return "never" if v is None else f"{v:.2f} s"


def evaluate(args, stats: Stats, ready_seen: list, mem_samples: list, publishes: list, first_gen: str,
             final_workers: list, log_errors: int, failure: str | None) -> dict:
    checks = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    total = sum(stats.requests.values())
    five = sum(n for s, n in stats.statuses.items() if s >= 500)
    other = sum(n for s, n in stats.statuses.items() if not 200 <= s < 300 and s < 500)
    sock = sum(stats.errors.values())
    check("run completed", failure is None, failure or "the load ran for the whole time")
    check("no 5xx", five == 0, f"{five} of {total:,} responses")
    check("no other non-2xx", other == 0, f"{other} of {total:,} responses")
    check("no socket errors", sock == 0, ", ".join(f"{k}: {v}" for k, v in stats.errors.items()) or "none")
    check("no errors in the gunicorn log", log_errors == 0, f"{log_errors} error lines or tracebacks")
    ok_pub = [p for p in publishes if p.get("published")]
    check("every publish succeeded", bool(publishes) and len(ok_pub) == len(publishes),
          f"{len(ok_pub)} of {len(publishes)} published"
          + "".join(f"; #{p['n']}: {p.get('error')}" for p in publishes if not p.get("published")))
    gens = [(t, g) for t, g, s in ready_seen if s == 200 and g]
    for p in ok_pub:
        first_seen = next((t for t, g in gens if g == p["generation"]), None)
        p["readyz_after_s"] = None if first_seen is None else max(0.0, first_seen - p["wall"])
    # Stale /readyz answers: a response, more than `grace` seconds after a publish, that
    # names a generation older than the published one.
    pubs = sorted((p["wall"], seq(p["generation"])) for p in ok_pub)
    late = 0
    for t, g in gens:
        required = max((sq for wall, sq in pubs if wall <= t - args.grace), default=-1)
        if seq(g) < required:
            late += 1
    expected = [p["generation"] for p in ok_pub]
    seen_gens = {g for _, g in gens}
    missing = [g for g in expected if g not in seen_gens]
    check("/readyz reports each new generation", not missing,
          f"{len(expected) - len(missing)} of {len(expected)} generations seen on /readyz"
          + (f"; never seen: {', '.join(missing)}" if missing else ""))
    check("/readyz never goes back after the grace period", late == 0,
          f"{late} of {len(gens):,} /readyz answers named a generation older than one published "
          f"more than {args.grace:g} s before")
    stale = sum(p.get("stale_after_grace", 0) for p in ok_pub)
    invisible = [p["n"] for p in ok_pub if p.get("visible_after_s") is None]
    check("new content is served after each publish", not invisible and stale == 0,
          f"{len(ok_pub) - len(invisible)} of {len(ok_pub)} publishes' new words found within "
          f"{args.grace:g} s; {stale} stale answers in the {10 * len(ok_pub)} checks after the grace period")
    # Memory: per worker pid, first sample after warm-up against the last one.
    growth = {}
    if mem_samples:
        t_warm = mem_samples[0][0] + min(10.0, args.seconds / 6)
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for t, by_pid in mem_samples:
            for pid, rss in by_pid.items():
                if t >= t_warm and pid not in first:
                    first[pid] = rss
                last[pid] = rss
        growth = {pid: (first[pid], last[pid]) for pid in first}
    all_pids = {pid for _, by_pid in mem_samples for pid in by_pid}
    worst = max((b - a for a, b in growth.values()), default=0.0)
    check("worker RSS growth within bound", bool(growth) and worst <= args.max_rss_growth_mb,
          f"largest growth {worst:+.1f} MB (bound {args.max_rss_growth_mb:g} MB); {len(all_pids)} worker "
          "processes seen" + (" (workers were recycled by max_requests or restarted)" if len(all_pids) > 2 else ""))
    lat = {k: bl.summarize_ms(v) for k, v in stats.latencies.items()}
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "total": total, "requests": dict(stats.requests),
            "statuses": dict(stats.statuses), "latency": lat, "publishes": publishes, "first_generation": first_gen,
            "rss": growth, "readyz_samples": len(gens), "bad": stats.bad[:10], "final_workers": final_workers}


def render(args, r: dict) -> str:
    m = bl.machine_info()
    lines = [
        "# Soak test",
        "",
        "Generated by `make soak` (`bench/soak.py`); replaced by the next run.",
        "",
        f"- **Date**: {bl.now_utc()}; **code**: `{bl.git_revision()}`; **command**: `{bl.command_line()}`",
        f"- **Machine**: {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']:.1f} GiB; load average "
        f"{m['loadavg'][0]:.2f}",
        f"- **Setup**: gunicorn with the project's `gunicorn.conf.py` (response cache on) on 127.0.0.1, the "
        f"index of a copy of `corpus/`; {args.clients} client threads at most {args.rate:g} req/s each for "
        f"{args.seconds:.0f} s (mix: " + ", ".join(f"{k} {w}%" for k, w in MIX) + f"); a new generation "
        f"published every {args.publish_every:g} s; grace period {args.grace:g} s. Whole run: "
        f"{r['elapsed_s']:.0f} s.",
        "",
        f"**Result: {'PASS' if r['ok'] else 'FAIL'}**",
        "",
        "| check | result | detail |",
        "| --- | --- | --- |",
    ]
    for c in r["checks"]:
        lines.append(f"| {c['name']} | {'PASS' if c['ok'] else 'FAIL'} | {c['detail']} |")
    lines += ["", f"{r['total']:,} requests: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["requests"].items()))
              + "; statuses: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items())) + ".", "",
              "| endpoint | n | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for k, s in sorted(r["latency"].items()):
        lines.append(f"| {k} | {s['n']:,} | {bl.fmt(s['p50'])} | {bl.fmt(s['p99'])} | {bl.fmt(s['max'])} |")
    lines += ["", f"Publishes (the first generation, `{r['first_generation']}`, was built before the load):", "",
              "| # | at s | mode | change | generation | build s | on /readyz after | new word served after |",
              "| ---: | ---: | --- | --- | --- | ---: | ---: | ---: |"]
    for p in r["publishes"]:
        gen = p.get("generation") or f"failed: {p.get('error', '')[:60]}"
        lines.append(f"| {p['n']} | {p['at_s']:.1f} | {p['mode']} | {p['change']} | `{gen}` | "
                     f"{p['build_s']:.2f} | {fmt_s(p.get('readyz_after_s'))} | {fmt_s(p.get('visible_after_s'))} |")
    lines += ["", "Worker RSS (MB), after warm-up → at the end:", ""]
    for pid, (a, b) in sorted(r["rss"].items()):
        lines.append(f"- pid {pid}: {a:.0f} → {b:.0f} ({b - a:+.1f})")
    if r["bad"]:
        lines += ["", "First failed requests:", ""]
        lines += [f"- {time.strftime('%H:%M:%S', time.localtime(t))} {kind}: {what} `{path}`"
                  for t, kind, what, path in r["bad"]]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    # A SIGTERM (make killed, CI timeout) unwinds like Ctrl-C, so the gunicorn we started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
