"""cProfile tables for the report: where the time of ``Engine.search``, a build or the
Falcon app goes, as shares of the entry point's total, with file paths shortened to the
project's (the benchmark's own frames left out)."""

from __future__ import annotations

import cProfile
import os
import pstats
import re
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote_plus

from common import ROOT, bl_config


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


def profile_wsgi(index: Path, endpoint: str, queries: list[str], cache: bool,
                 budget_s: float = 10.0) -> dict:
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
