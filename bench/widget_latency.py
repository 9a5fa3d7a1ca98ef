"""Keystroke-to-suggestions-painted latency of the search box, in Chromium over loopback.

Why a benchmark and not a test: the figure depends on the machine. It starts gunicorn on a
private index of ``corpus/`` (the browser tests' ``Server``), opens the demo page in Debian's
Chromium and types questions one character at a time at ``--gap`` ms between keys (a brisk
typist). In the page, a keydown listener stamps ``performance.now()`` and a MutationObserver
on the listbox stamps the next update of the list (the widget re-renders it, and sets its
``data-seq``, for every answer, empty ones included), then waits one animation frame so the
figure includes the paint. Only keystrokes that leave text in the box are counted.

    .venv/bin/python bench/widget_latency.py [--keys 200] [--gap 150]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.service.conftest import Site  # noqa: E402
from tests.service.test_gunicorn import Server  # noqa: E402

QUERIES = ["coping skills", "what is psychotherapy", "online therapy new york", "how long does psychoanalysis take",
           "can psychotherapy notes be subpoenaed", "goals of counselling", "psychotherapist patient privilege",
           "types of psychotherapy", "how often are sessions", "psychodynamic therapy"]

PROBE = """() => {
  const box = document.querySelector('[role=combobox]');
  const list = document.getElementById(box.getAttribute('aria-controls'));
  window.__lat = [];
  let t0 = null;
  box.addEventListener('keydown', () => { t0 = performance.now(); }, true);
  new MutationObserver(() => {
    if (t0 === null || !box.value.trim()) { t0 = null; return; }
    const start = t0; t0 = null;
    requestAnimationFrame(() => window.__lat.push(performance.now() - start));
  }).observe(list, {childList: true, attributes: true, attributeFilter: ['data-seq']});
}"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keystrokes to measure (default 200)")
    parser.add_argument("--gap", type=int, default=150, help="ms between keystrokes (default 150)")
    parser.add_argument("--chromium", default=os.environ.get("FAQ_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = Site(Path(tmp))
        site.build()
        server = Server(site, Path(tmp))
        try:
            server.wait_ready()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page()
                page.goto(server.base + "/")
                page.wait_for_function("() => document.querySelector('[role=combobox]') !== null")
                page.evaluate(PROBE)
                box = page.get_by_role("combobox")
                typed = 0
                while typed < args.keys:
                    for q in QUERIES:
                        box.fill("")
                        page.wait_for_timeout(args.gap)
                        for ch in q:
                            if typed >= args.keys:
                                break
                            box.press(ch)
                            page.wait_for_timeout(args.gap)
                            typed += 1
                        if typed >= args.keys:
                            break
                page.wait_for_timeout(500)
                latencies = page.evaluate("() => window.__lat")
                browser.close()
        finally:
            server.stop()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"keystrokes typed: {typed}, list updates measured: {len(latencies)}, gap {args.gap} ms")
    print(f"p50 {statistics.median(latencies):.1f} ms  p95 {percentile(latencies, 95):.1f} ms  "
          f"max {max(latencies):.1f} ms")
    print(f"commit {commit}, {os.cpu_count()} cores, {cpu_model()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
