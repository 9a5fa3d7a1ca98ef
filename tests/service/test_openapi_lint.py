"""service/openapi.json passes Redocly CLI (`recommended`) and Spectral (`spectral:oas`): 0 errors, 0 warnings.

Both linters are npm packages at exact versions, installed once into ``.venv/npm-tools``
(git-ignored) and reused by later runs. Without node/npm, or when the install fails, the test
is skipped locally and fails under CI (``CI`` set): CI must never skip it. The rule
configuration is in ``tests/service/lint/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

REDOCLY = ("@redocly/cli", "2.77.0")
SPECTRAL = ("@stoplight/spectral-cli", "6.16.3")
TOOLS = REPO / ".venv" / "npm-tools"
LINT = Path(__file__).with_name("lint")
DOCUMENT = REPO / "service" / "openapi.json"
INSTALL_TIMEOUT = 600
LINT_TIMEOUT = 120


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str):
    if _on_ci():
        pytest.fail(f"{reason} (CI is set: the OpenAPI lint must run, not be skipped)")
    pytest.skip(reason)


def _installed_version(package: str) -> str | None:
    try:
        manifest = json.loads((TOOLS / "node_modules" / package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest.get("version")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # No update checks, telemetry or colour codes in the output we parse.
    env.update({"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "NO_COLOR": "1",
                "FORCE_COLOR": "0", "npm_config_update_notifier": "false", "npm_config_fund": "false",
                "npm_config_audit": "false"})
    return env


@pytest.fixture(scope="session")
def lint_tools() -> Path:
    """The folder of the linters' executables, installing the pinned versions when needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _unavailable("node and npm are needed to lint the OpenAPI document (apt-get install nodejs npm)")
    wanted = (REDOCLY, SPECTRAL)
    if any(_installed_version(name) != version for name, version in wanted):
        TOOLS.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--prefix", str(TOOLS), "--no-save", "--no-audit", "--no-fund",
                   "--loglevel=error", *(f"{name}@{version}" for name, version in wanted)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=_env())
        except subprocess.TimeoutExpired:
            _unavailable(f"npm install of the linters took over {INSTALL_TIMEOUT} s")
        if done.returncode != 0:
            _unavailable(f"npm install of the linters failed ({done.returncode}): {done.stderr[-2000:]}")
        for name, version in wanted:
            assert _installed_version(name) == version, f"{name}@{version} is not in {TOOLS} after npm install"
    return TOOLS / "node_modules" / ".bin"


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=LINT_TIMEOUT, cwd=REPO, env=_env(),
                          stdin=subprocess.DEVNULL)


def test_redocly_recommended_finds_nothing(lint_tools: Path):
    done = _run([str(lint_tools / "redocly"), "lint", "--config", str(LINT / "redocly.yaml"),
                 "--format=json", str(DOCUMENT)])
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"redocly printed no JSON report (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                    f"{done.stderr[-2000:]}")
    problems = [f"{p['severity']} {p['ruleId']}: {p['message']} at "
                f"{', '.join(loc.get('pointer', '?') for loc in p.get('location', []))}"
                for p in report["problems"]]
    assert (report["totals"]["errors"], report["totals"]["warnings"]) == (0, 0), "\n".join(problems)
    assert done.returncode == 0, done.stderr[-2000:]


def test_spectral_oas_finds_nothing(lint_tools: Path):
    done = _run([str(lint_tools / "spectral"), "lint", "--ruleset", str(LINT / "spectral.yaml"),
                 "--format", "json", "--fail-severity", "hint", str(DOCUMENT)])
    start = done.stdout.find("[")  # the JSON array, without the trailing "No results..." line
    try:
        results = json.JSONDecoder().raw_decode(done.stdout[start:])[0] if start >= 0 else None
    except ValueError:
        results = None
    if results is None:
        pytest.fail(f"spectral printed no JSON report (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                    f"{done.stderr[-2000:]}")
    severity = {0: "error", 1: "warning", 2: "info", 3: "hint"}
    problems = [f"{severity.get(r['severity'], r['severity'])} {r['code']}: {r['message']} at "
                f"{'.'.join(map(str, r['path']))}" for r in results]
    assert problems == []
    assert done.returncode == 0, done.stderr[-2000:]
