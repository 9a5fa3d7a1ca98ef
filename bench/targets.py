"""The specification's performance targets and the verdict on each from a run's results:
the one place that says what counts as passing."""

from __future__ import annotations

import benchlib as bl

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


def measured_values(results: dict) -> dict:
    """The figure of each target found in ``results`` (a target not measured is absent)."""
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
    """PASS / MISS / not measured for every target, with how far a miss is off."""
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


def value_text(v: dict) -> str:
    """A verdict's measured value with its unit, as the report and the summary print it."""
    if v["value"] is None or v["value"] != v["value"]:
        return "–"
    unit = v.get("unit", "")
    if not unit:
        return f"{v['value']:,.0f}"
    num = bl.fmt(v["value"], 2 if v["value"] < 10 else 1)
    return f"{num}{'%' if unit == '%' else (' ' + unit if unit else '')}"
