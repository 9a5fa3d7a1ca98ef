"""Helpers shared by ``bench/run.py`` and ``bench/soak.py``: machine facts, a real gunicorn
on loopback, worker memory, child-process timing, wrk, and small statistics.

Everything here talks only to 127.0.0.1 and stops what it started.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of an already sorted list; NaN when empty."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarize_ms(samples_ms: list[float]) -> dict:
    s = sorted(samples_ms)
    return {
        "n": len(s),
        "p50": percentile(s, 50),
        "p95": percentile(s, 95),
        "p99": percentile(s, 99),
        "max": s[-1] if s else float("nan"),
        "mean": sum(s) / len(s) if s else float("nan"),
    }


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------- machine and code


def machine_info() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(len(os.sched_getaffinity(0)))
    return {
        "nproc": nproc,
        "cpu": cpu,
        "memory_gib": mem_kb / 1024 / 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def git_revision() -> str:
    """``git rev-parse --short HEAD`` plus ``+dirty`` when the work tree differs from it.

    Read-only: ``--no-optional-locks`` keeps ``git status`` from touching the index file
    while other people work in the same tree.
    """
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    from eval.reports import tree_is_clean  # the reports themselves do not count as changes

    return rev + ("" if tree_is_clean() in (True, None) else "+dirty")


def package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(ROOT)
    return shlex.join(["python", str(script), *sys.argv[1:]])


def project_env(**overrides: str) -> dict[str, str]:
    """The environment for the project's own processes: importable from ROOT, with overrides."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({k: str(v) for k, v in overrides.items()})
    return env


# --------------------------------------------------------------------------- child processes


@dataclass
class ChildRun:
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    stdout: str
    stderr: str


def run_child(argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> ChildRun:
    """Run a command to completion; wall time and that child's own peak RSS (``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(proc.returncode, wall, usage.ru_utime, usage.ru_stime,
                        usage.ru_maxrss / 1024, out.read(), err.read())


def self_max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- memory of processes


def proc_status(pid: int) -> dict[str, int]:
    """``/proc/<pid>/status`` memory lines in kB (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0])
    return out


def children_of(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        for task in task_dir.iterdir():
            with contextlib.suppress(OSError, ValueError):
                kids += [int(x) for x in (task / "children").read_text().split()]
    if kids:
        return sorted(set(kids))
    # Fallback for kernels without the children file: scan /proc for the parent pid.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                kids.append(int(entry.name))
    return sorted(kids)


# --------------------------------------------------------------------------- loopback HTTP


def count_log_errors(path: Path) -> int:
    """Errors, tracebacks and worker timeouts in a gunicorn log."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return len(re.findall(r"\[(?:ERROR|CRITICAL)\]|Traceback \(most recent call last\)|WORKER TIMEOUT", text))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def http_json(port: int, path: str, timeout: float = 10.0) -> tuple[int, dict | None]:
    status, _, body = http_get(port, path, timeout)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


@dataclass
class Server:
    """A real gunicorn (the project's ``gunicorn.conf.py``) on 127.0.0.1 and a free port."""

    index_dir: Path
    corpus_dir: Path
    log_path: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    started_s: float = 0.0  # from exec to every worker ready
    proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 120.0) -> Server:
        self.port = self.port or free_port()
        env = project_env(
            FAQ_INDEX_DIR=str(self.index_dir), FAQ_CORPUS_DIR=str(self.corpus_dir),
            HOST="127.0.0.1", PORT=str(self.port), **self.env_overrides,
        )
        argv = [PYTHON, "-m", "gunicorn"]
        if (ROOT / "gunicorn.conf.py").is_file():
            argv += ["-c", str(ROOT / "gunicorn.conf.py")]
        else:  # before the config existed: the same settings, stated
            from indexer.settings import load_config

            cfg = load_config(env)
            argv += ["--workers", str(cfg.workers), "--threads", str(cfg.threads)]
        argv += [*self.extra_args, "--bind", f"127.0.0.1:{self.port}", "service.app:create_app()"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        t0 = time.monotonic()
        deadline = t0 + ready_timeout
        first_ready = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.proc.returncode}; log:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = http_json(self.port, "/readyz", timeout=5)
                if status == 200 and len(self.workers()) >= self.expected_workers():
                    first_ready = first_ready or time.monotonic()
                    # Every worker opened the index (its log line), or 60 s passed: a log level
                    # above INFO hides those lines.
                    if self._all_booted() or time.monotonic() - first_ready > 60:
                        self.started_s = time.monotonic() - t0
                        return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"gunicorn was not ready within {ready_timeout:.0f} s; log:\n{self.log_tail()}")

    def _all_booted(self) -> bool:
        """Every worker logged that it serves a generation (when the log says so at all)."""
        level = self.env_overrides.get("FAQ_LOG_LEVEL") or os.environ.get("FAQ_LOG_LEVEL") or "info"
        if level.lower() not in ("info", "debug"):
            return True  # those lines are not logged
        boots = self.worker_boots()
        return all(b["ready_s"] is not None for b in boots) if boots else True

    def worker_boots(self) -> list[dict]:
        """Per worker: seconds from "Booting worker" to the engine's "serving generation" (log lines,
        one-second resolution)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        stamp = r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[^\]]*\] \[(\d+)\]"
        booted: dict[int, datetime] = {}
        out: list[dict] = []
        for m in re.finditer(stamp + r" \[\w+\] [\w.]+: (Booting worker with pid: (\d+)|serving generation)", text):
            when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            if m.group(4):
                booted[int(m.group(4))] = when
                out.append({"pid": int(m.group(4)), "ready_s": None})
            else:
                pid = int(m.group(2))
                if pid in booted:
                    for b in out:
                        if b["pid"] == pid and b["ready_s"] is None:
                            b["ready_s"] = (when - booted[pid]).total_seconds()
        return out

    def expected_workers(self) -> int:
        from indexer.settings import load_config

        return max(int(load_config(project_env(**self.env_overrides)).workers), 1)

    def workers(self) -> list[int]:
        return children_of(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def worker_memory(self) -> list[dict]:
        out = []
        for pid in self.workers():
            st = proc_status(pid)
            out.append({"pid": pid, "rss_mb": st.get("VmRSS", 0) / 1024, "hwm_mb": st.get("VmHWM", 0) / 1024,
                        "anon_mb": st.get("RssAnon", 0) / 1024, "file_mb": st.get("RssFile", 0) / 1024})
        return out

    def master_memory(self) -> dict:
        st = proc_status(self.proc.pid) if self.proc else {}
        return {"pid": self.proc.pid if self.proc else 0, "rss_mb": st.get("VmRSS", 0) / 1024}

    def readyz(self) -> dict | None:
        status, body = http_json(self.port, "/readyz", timeout=10)
        return body if status == 200 else None

    def log_tail(self, lines: int = 40, skip_access: bool = True) -> str:
        """The log's last lines; access-log lines (JSON) left out unless ``skip_access`` is false."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        if skip_access:
            text = [ln for ln in text if not ln.startswith("{")]
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to gunicorn's master (it stops its workers), SIGKILL to the group if it lingers."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own session: only this gunicorn
            proc.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- wrk


class WrkMissing(RuntimeError):
    pass


def ensure_wrk() -> str:
    """Path of ``wrk``; installs Debian's package when missing (root + apt-get), else raises."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise WrkMissing("wrk is not installed and cannot be installed here (needs root and apt-get): "
                         "install the Debian package `wrk`, or pass --skip-http")
    print("wrk is missing: installing it with apt-get (Debian package `wrk`) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise WrkMissing(f"`{' '.join(argv)}` failed (status {done.returncode}):\n{done.stderr[-2000:]}\n"
                             "install the Debian package `wrk` by hand, or pass --skip-http")
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing("apt-get installed wrk but it is not on PATH; pass --skip-http")
    return found


_LUA = r"""
-- Generated by bench/benchlib.py: cycles through PATHS; thread k of n takes k, k+n, k+2n, ...
local paths = {
%(paths)s
}
local count = #paths
local created = 0
function setup(thread)
  thread:set("tid", created)
  created = created + 1
end
function init(args)
  nthreads = tonumber(args[1]) or 1
  position = tid or 0
end
function request()
  local p = paths[(position %% count) + 1]
  position = position + nthreads
  return wrk.format("GET", p)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "mean_us": %%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def write_lua(path: Path, paths: list[str]) -> Path:
    for p in paths:
        if not re.fullmatch(r"/[A-Za-z0-9/_.~+%=&?-]*", p):
            raise ValueError(f"path is not URL-encoded: {p!r}")
    path.write_text(_LUA % {"paths": ",\n".join(f'  "{p}"' for p in paths)}, encoding="utf-8")
    return path


@dataclass
class WrkResult:
    endpoint: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    timeouts: int
    raw: dict

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors + self.timeouts


def run_wrk(wrk: str, port: int, lua: Path, endpoint: str, connections: int, seconds: float,
            timeout_s: float = 10.0) -> WrkResult:
    threads = 1  # one wrk thread drives 32 connections easily and leaves the cores to gunicorn
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", f"{timeout_s:g}s", "-s", str(lua), f"http://127.0.0.1:{port}", "--", str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout_s + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (status {done.returncode}):\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    d = json.loads(line.split(" ", 1)[1])
    dur = d["duration_us"] / 1e6 or seconds
    return WrkResult(
        endpoint=endpoint, connections=connections, seconds=dur, requests=d["requests"],
        rps=d["requests"] / dur, p50_ms=d["p50_us"] / 1000, p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000, max_ms=d["max_us"] / 1000, non2xx=d["status"],
        socket_errors=d["connect"] + d["read"] + d["write"], timeouts=d["timeout"], raw=d,
    )
