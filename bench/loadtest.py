"""The HTTP phase: real gunicorn on 127.0.0.1 driven by ``wrk`` at several concurrencies,
uncached per endpoint and cached with repeated queries, plus worker memory and start-up,
so the figures include everything a client waits for."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote_plus

import benchlib as bl
from common import ROOT, log

CONCURRENCY = (1, 8, 32)
ENDPOINTS = ("search", "suggest", "answer")


def run_http_phase(work: Path, queries: list[tuple[str, str]], repeated: list[str], seconds: float, warm_s: float,
                   results: dict, keep_recycling: bool = False) -> None:
    """Two gunicorn servers in turn (response cache off, then on), each endpoint at each
    concurrency; fills ``results["http"]`` and ``results["memory"]``."""
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
