"""Operations drills with the real parts: Debian's nginx (``deploy/faq-search.conf``) on a
loopback port in front of two replicas (separate gunicorn masters, each with its own index
folder filled by ``faq-index ship`` from a builder folder), and four drills measured from a
client's side:

- ``slow_headers``: 20 connections send their headers a byte at a time (reconnecting when
  nginx drops them) while another client's requests must all succeed;
- ``kill_replica``: one replica's process group gets SIGKILL under load; no request may fail;
- ``ship_new_generation``: a new generation built once and shipped to both replicas under
  load; both serve it within 2 s, no request fails;
- ``reindex_burst``: 50 wrong reindex tokens in a burst get 429s after the limit, and the
  right token works once ``Retry-After`` has passed.

``tests/deploy/test_nginx.py`` runs them with short durations (CI); ``make soak`` runs them
with the long ones through ``bench/soak.py``; ``python bench/ops.py`` runs them alone.
Everything listens on 127.0.0.1 only and stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib as bl  # noqa: E402

ROOT = bl.ROOT
SITE = ROOT / "deploy" / "faq-search.conf"
TOKEN = "ops-drill-reindex-token-0123456789"
QUERIES = ("what is psychotherapy", "how long does psychoanalysis take", "online therapy",
           "can therapy notes be subpoenaed", "goals of counselling", "coping skills")
OLD_HEADING, NEW_HEADING = ">What Is Psychotherapy?</h2>", ">What Is Zanzibar Psychotherapy?</h2>"


class NginxMissing(RuntimeError):
    pass


def find_nginx() -> str | None:
    """Debian's nginx binary (``/usr/sbin`` is not on a normal user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def render_site(listen_port: int, replica_ports: list[int], log_dir: Path, text: str | None = None) -> str:
    """``deploy/faq-search.conf`` with only its EDIT lines rewritten for loopback and ``log_dir``."""
    text = SITE.read_text(encoding="utf-8") if text is None else text
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in replica_ports)
    edits = [
        (r"    server 127\.0\.0\.1:8001 [^\n]*\n    server 127\.0\.0\.1:8002 [^\n]*\n", servers),
        (r"listen 80;", f"listen 127.0.0.1:{listen_port};"),
        (r"/var/log/nginx/faq-search\.access\.log", str(log_dir / "access.log")),
        (r"/var/log/nginx/faq-search\.error\.log", str(log_dir / "error.log")),
    ]
    for pattern, replacement in edits:
        text, n = re.subn(pattern, lambda _m, r=replacement: r, text)
        if n != 1:
            raise ValueError(f"{SITE.name}: expected one match of {pattern!r}, found {n}")
    return text


class Nginx:
    """nginx in the foreground with every path (pid, logs, temp files) inside ``root``."""

    def __init__(self, root: Path, replica_ports: list[int]):
        binary = find_nginx()
        if binary is None:
            raise NginxMissing("nginx is not installed (Debian: apt-get install nginx)")
        self.binary, self.root = binary, root
        self.port = bl.free_port()
        root.mkdir(parents=True, exist_ok=True)
        (root / "site.conf").write_text(render_site(self.port, replica_ports, root), encoding="utf-8")
        temps = "".join(f"    {kind}_temp_path {root / kind};\n"
                        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, nginx's workers would switch to `nobody`, who cannot enter a private tmp folder.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        self.conf = root / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {root / 'nginx.pid'};\nerror_log {root / 'main-error.log'} warn;\n"
            f"events {{ worker_connections 1024; }}\nhttp {{\n{temps}    include {root / 'site.conf'};\n}}\n",
            encoding="utf-8")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Nginx:
        argv = [self.binary, "-p", str(self.root), "-c", str(self.conf), "-e", str(self.root / "main-error.log"),
                "-g", "daemon off;"]
        check = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}")
        out = open(self.root / "nginx.out", "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.log('main-error.log')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {timeout} s: {self.log('main-error.log')}")

    def log(self, name: str) -> str:
        try:
            return (self.root / name).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: only this nginx
                self.proc.wait(5)


@dataclass
class Cluster:
    """A builder folder, two replicas with their own index folders, and nginx in front."""

    work: Path
    corpus: Path = field(init=False)
    builder: Path = field(init=False)
    replicas: list[bl.Server] = field(default_factory=list)
    nginx: Nginx | None = None

    def __post_init__(self) -> None:
        self.corpus, self.builder = self.work / "corpus", self.work / "builder"

    def start(self, replicas: int = 2, workers: int = 2) -> Cluster:
        from indexer.publish import build

        shutil.copytree(ROOT / "corpus", self.corpus)
        build(self.config(), mode="full")
        try:
            for i in range(replicas):
                index = self.work / f"replica{i + 1}" / "index"
                self.ship_to(index)
                server = bl.Server(index, self.corpus, self.work / f"replica{i + 1}" / "gunicorn.log",
                                   {"WEB_CONCURRENCY": str(workers), "FAQ_THREADS": "1",
                                    "FAQ_REINDEX_TOKEN": TOKEN, "FAQ_LOG_LEVEL": "info"})
                self.replicas.append(server)
                server.start(ready_timeout=60)
            self.nginx = Nginx(self.work / "nginx", [r.port for r in self.replicas]).start()
        except BaseException:
            self.stop()
            raise
        return self

    def config(self):
        from indexer.settings import load_config

        return load_config(env={}, corpus_dir=self.corpus, index_dir=self.builder)

    def ship_to(self, index: Path):
        from indexer.ship import ship_to, source_generation

        return ship_to(source_generation(self.builder), index, keep=3)

    @property
    def port(self) -> int:
        assert self.nginx is not None
        return self.nginx.port

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.replicas:
            server.stop()


# --------------------------------------------------------------------------- clients


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
            timeout: float = 5.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@dataclass
class Load:
    """Client threads sending GETs through nginx until stopped; every outcome is counted."""

    port: int
    threads: int = 4
    pause: float = 0.01
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies_ms: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list = field(default_factory=list)

    def _run(self, seed: int) -> None:
        n = seed
        while not self._stop.is_set():
            q = QUERIES[n % len(QUERIES)]
            path = (f"/v1/search?q={quote_plus(q)}", f"/v1/suggest?q={quote_plus(q[:5])}", "/readyz")[n % 3]
            n += 1
            t0 = time.perf_counter()
            try:
                status, _, _ = request(self.port, "GET", path)
                with self._lock:
                    self.statuses[status] += 1
                    self.latencies_ms.append((time.perf_counter() - t0) * 1000)
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.errors[type(exc).__name__] += 1
            self._stop.wait(self.pause)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(15)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200) + sum(self.errors.values())

    def summary(self) -> dict:
        lat = bl.summarize_ms(self.latencies_ms)
        return {"requests": self.total, "failed": self.failed, "statuses": dict(self.statuses),
                "errors": dict(self.errors), "p50_ms": lat["p50"], "p99_ms": lat["p99"], "max_ms": lat["max"]}


# --------------------------------------------------------------------------- drills


def slow_headers(cluster: Cluster, seconds: float, connections: int = 20) -> dict:
    """``connections`` sockets trickle header bytes (reopened when nginx drops them) for
    ``seconds`` while one client sends requests through nginx one after another."""
    stop = threading.Event()
    held, reopened = Counter(), Counter()

    def attacker(i: int) -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", cluster.port), timeout=2) as sock:
                    sock.sendall(b"GET /v1/search?q=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    held[i] += 1
                    while not stop.wait(1.0):
                        sock.sendall(b"X")  # a header that never ends
            except OSError:
                reopened[i] += 1
                stop.wait(0.1)

    threads = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # every slow connection is open before the visitor starts
    with Load(cluster.port, threads=1, pause=0.05) as load:
        time.sleep(max(seconds - 1.0, 0.0))
    stop.set()
    for t in threads:
        t.join(5)
    return {"seconds": seconds, "connections": connections, "opened": sum(held.values()),
            "dropped_by_nginx": sum(reopened.values()), **load.summary()}


def kill_replica(cluster: Cluster, seconds: float, which: int = 1) -> dict:
    """SIGKILL to one replica's whole process group a third into ``seconds`` of load, then restart it."""
    victim = cluster.replicas[which]
    with Load(cluster.port, threads=4) as load:
        time.sleep(seconds / 3)
        before = load.total
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        killed_at = time.monotonic()
        time.sleep(seconds * 2 / 3)
        after = load.total - before
    result = {"seconds": seconds, "killed_replica": which + 1, "requests_after_kill": after,
              "load_after_kill_s": round(time.monotonic() - killed_at, 1), **load.summary()}
    victim.start(ready_timeout=60)
    return result


def replica_generations(server: bl.Server, probes: int = 6) -> set[str | None]:
    """Generations /readyz names on ``probes`` concurrent requests straight to one replica."""
    from concurrent.futures import ThreadPoolExecutor

    def probe(_):
        try:
            status, _, body = request(server.port, "GET", "/readyz", timeout=5)
            return json.loads(body).get("generation") if status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None

    with ThreadPoolExecutor(probes) as pool:
        return set(pool.map(probe, range(probes)))


def ship_new_generation(cluster: Cluster, deadline_s: float = 2.0) -> dict:
    """Edit the builder's corpus, build once, ship to every replica under load, and time how
    long until every replica's workers report the new generation."""
    from indexer.publish import build

    page = cluster.corpus / "goals-of-psychotherapy.html"
    text = page.read_text(encoding="utf-8")
    old, new = (OLD_HEADING, NEW_HEADING) if OLD_HEADING in text else (NEW_HEADING, OLD_HEADING)
    page.write_text(text.replace(old, new, 1), encoding="utf-8")
    with Load(cluster.port, threads=3) as load:
        time.sleep(0.5)
        generation = build(cluster.config(), mode="update").generation
        shipped = []
        for server in cluster.replicas:
            cluster.ship_to(server.index_dir)
            shipped.append(time.monotonic())
        seen_after: list[float | None] = []
        for server, at in zip(cluster.replicas, shipped, strict=True):
            first = None
            while time.monotonic() < at + deadline_s + 3:
                if replica_generations(server) == {generation}:
                    first = time.monotonic() - at
                    break
                time.sleep(0.05)
            seen_after.append(first)
        time.sleep(0.5)
    word = new.strip(">").split("</")[0]
    status, _, body = request(cluster.port, "GET", f"/v1/search?q={quote_plus(word)}")
    top = json.loads(body)["results"][0]["question"] if status == 200 else None
    return {"generation": generation, "served_after_s": seen_after, "deadline_s": deadline_s,
            "top_question": top, "expected_question": word, **load.summary()}


def reindex_burst(cluster: Cluster, attempts: int = 50) -> dict:
    """``attempts`` POSTs with wrong tokens as fast as one client can, then the right token
    once the largest ``Retry-After`` seen has passed."""
    statuses, retry_after = [], []
    for i in range(attempts):
        status, headers, _ = request(cluster.port, "POST", "/v1/reindex", body=b'{"mode": "update"}',
                                     headers={"Authorization": f"Bearer wrong-{i}",
                                              "Content-Type": "application/json"})
        statuses.append(status)
        if status == 429:
            retry_after.append(headers.get("retry-after"))
    wait = max((int(r) for r in retry_after if r and r.isdigit()), default=0)
    time.sleep(wait + 0.2)
    status, _, body = request(cluster.port, "POST", "/v1/reindex", body=b'{"mode": "update"}',
                              headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    job = json.loads(body).get("job") if status == 202 else None
    final = None
    deadline = time.monotonic() + 60
    while job and final is None and time.monotonic() < deadline:  # the job lives on one replica
        for server in cluster.replicas:
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                s, _, b = request(server.port, "GET", f"/v1/reindex/{job}",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
                if s == 200 and json.loads(b)["status"] in ("succeeded", "failed"):
                    final = json.loads(b)["status"]
        time.sleep(0.2)
    first_429 = statuses.index(429) if 429 in statuses else None
    return {"attempts": attempts, "statuses": dict(Counter(statuses)), "first_429_at": first_429,
            "after_first_429": Counter(statuses[first_429:]) if first_429 is not None else {},
            "retry_after": sorted(set(retry_after), key=str), "waited_s": wait + 0.2,
            "right_token_status": status, "job_status": final}


def run_all(slow_seconds: float = 20.0, kill_seconds: float = 9.0, work: Path | None = None) -> dict:
    """The four drills on one cluster; each result carries ``ok`` and a one-line ``detail``."""
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="faq-ops-")) if own else work
    cluster = Cluster(work)
    results: dict = {}
    try:
        cluster.start()
        a = slow_headers(cluster, slow_seconds)
        results["slow_headers"] = {**a, "ok": a["failed"] == 0 and a["requests"] > 0}
        c = ship_new_generation(cluster)
        results["ship"] = {**c, "ok": c["failed"] == 0 and all(
            s is not None and s <= c["deadline_s"] for s in c["served_after_s"])
            and c["top_question"] == c["expected_question"]}
        d = reindex_burst(cluster)
        results["reindex_burst"] = {**d, "ok": d["first_429_at"] is not None
                                    and set(d["after_first_429"]) == {429}
                                    and d["right_token_status"] == 202 and d["job_status"] == "succeeded"}
        b = kill_replica(cluster, kill_seconds)
        results["kill_replica"] = {**b, "ok": b["failed"] == 0 and b["requests_after_kill"] > 0}
        logs = (cluster.nginx.log("access.log") + cluster.nginx.log("error.log")) if cluster.nginx else ""
        results["privacy"] = {"ok": "q=" not in logs and "psychotherapy" not in logs.lower(),
                              "access_lines": logs.count("\n")}
    finally:
        cluster.stop()
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return results


def describe(name: str, r: dict) -> str:
    """One line of a drill's measured outcome, for docs/soak.md."""
    load = (f"{r.get('requests', 0):,} requests through nginx, {r.get('failed', 0)} failed, "
            f"p99 {bl.fmt(r.get('p99_ms'))} ms, max {bl.fmt(r.get('max_ms'))} ms")
    if name == "slow_headers":
        return (f"{r['connections']} slow-header connections for {r['seconds']:g} s ({r['opened']} opened, "
                f"{r['dropped_by_nginx']} dropped by nginx's header timeout and reopened); {load}")
    if name == "ship":
        after = ", ".join(bl.fmt(s, 2) + " s" if s is not None else "never" for s in r["served_after_s"])
        return f"`{r['generation']}` served by the replicas after {after} (bound {r['deadline_s']:g} s); {load}"
    if name == "reindex_burst":
        return (f"{r['attempts']} wrong tokens: {r['statuses']}, first 429 at attempt {r['first_429_at']}, "
                f"Retry-After {r['retry_after']}; the right token after {r['waited_s']:.1f} s: "
                f"{r['right_token_status']}, job {r['job_status']}")
    if name == "kill_replica":
        return (f"replica {r['killed_replica']} SIGKILLed, {r['requests_after_kill']:,} requests in the "
                f"{r['load_after_kill_s']:g} s after; {load}")
    if name == "privacy":
        return f"no query text in nginx's {r['access_lines']:,} log lines"
    return json.dumps(r, default=str)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slow-seconds", type=float, default=20.0, help="length of the slow-header drill")
    p.add_argument("--kill-seconds", type=float, default=9.0, help="length of the load around the kill")
    args = p.parse_args(argv)
    results = run_all(args.slow_seconds, args.kill_seconds)
    for name, r in results.items():
        print(f"{'PASS' if r['ok'] else 'FAIL'} {name}: {describe(name, r)}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
