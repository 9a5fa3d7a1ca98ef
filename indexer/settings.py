"""Every setting of the indexer and the service, in one table.

The README's configuration section is generated from ``SETTINGS`` (``make settings-doc``)
and a test checks that it matches, so the documentation cannot drift from the code.
Both the ``faq-index`` CLI and the API read their configuration through ``load_config``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Setting:
    """One setting: where it comes from, its type and allowed range, and what it does.

    ``type`` is one of ``path``, ``str``, ``int``, ``float``, ``bool``, ``csv``; ``min``/``max``
    bound numbers (inclusive), ``choices`` lists the allowed words, and ``check`` tests what a
    range cannot (returns what is allowed when the value is not). ``load_config`` enforces all
    of them, so a typo in a deployment fails at start-up with the variable named.
    """

    name: str  # attribute name on Config
    env: str  # environment variable
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    type: str = "str"
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    allowed: str = ""  # the range in words, when ``check`` decides it

    def range_text(self) -> str:
        """The type and allowed range in words, as the README's table and errors show it."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.allowed:
            return self.allowed
        if self.min is not None or self.max is not None:
            low = _num(self.min) if self.min is not None else "-inf"
            high = _num(self.max) if self.max is not None else "inf"
            return f"{self.type} in [{low}, {high}]"
        return self.type


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _optional(value: str) -> str | None:
    return value or None


def _bool(value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false (1/0, yes/no, on/off)")


def _http_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    ok = (parts.scheme in ("http", "https") and parts.hostname and value.isprintable()
          and "\\" not in value and " " not in value)
    return None if ok else "must be empty or an http:// or https:// URL with a host"


#: A browser Origin: scheme, host (name, IPv4 or [IPv6]) and optional port; no path.
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?/?")


def _origins(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if v != "*" and not _ORIGIN.fullmatch(v)]
    if bad:
        return f"each entry must be an origin (scheme://host[:port]) or *; not {', '.join(map(repr, bad))}"
    return None


def _folder(value: Path) -> str | None:
    """A folder path must not be, or lie under, an existing file."""
    path = Path(value)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if candidate.is_dir():
                return None
            if candidate == path:
                return f"{path} is a file, not a folder"
            return f"{path} lies under {candidate}, which is a file"
    return None


_BIG = 1_000_000_000

SETTINGS: tuple[Setting, ...] = (
    Setting("corpus_dir", "FAQ_CORPUS_DIR", "corpus", "Folder of the site's HTML articles (and `synonyms.txt`, `alternates.txt`).", Path, "path"),
    Setting("index_dir", "FAQ_INDEX_DIR", "var/index", "Folder that holds the index generations and the `CURRENT` pointer.", Path, "path",
            check=_folder, allowed="path of a folder (not a file)"),
    Setting("content_selector", "FAQ_CONTENT_SELECTOR", "", "CSS selector of the article body; empty: detect it (`<article>`, `<main>`, CMS classes, text density).", _optional),
    Setting("max_file_bytes", "FAQ_MAX_FILE_BYTES", 5_000_000, "HTML files larger than this are skipped with a warning.", int, "int", 1, _BIG),
    Setting("max_sections_per_article", "FAQ_MAX_SECTIONS_PER_ARTICLE", 1000, "Sections kept per article; the text of further headings joins the last kept section (with a warning).", int, "int", 1, 100_000),
    Setting("max_section_loss", "FAQ_MAX_SECTION_LOSS", 0.10, "Refuse to publish a generation that lost more than this share of the served sections (`--force` overrides).", float, "float", 0, 1),
    Setting("keep_generations", "FAQ_KEEP_GENERATIONS", 3, "How many published generations to keep on disk (the served one included).", int, "int", 1, 1000),
    Setting("reindex_token", "FAQ_REINDEX_TOKEN", "", "Bearer token for `POST /v1/reindex`; empty: reindexing over HTTP is off (404).", _optional),
    Setting("cors_origins", "FAQ_CORS_ORIGINS", "", "Comma-separated origins allowed to call the API from a browser.", _csv, "csv",
            check=_origins, allowed="origins (scheme://host[:port]) or `*`"),
    Setting("site_url", "FAQ_SITE_URL", "", "Optional base URL that makes article links absolute (e.g. `https://example.org`).", str,
            check=_http_url, allowed="empty or an http(s) URL"),
    Setting("answer_threshold", "FAQ_ANSWER_THRESHOLD", 0.4, "Confidence below which `/v1/answer` returns `null` (chosen by `make eval`).", float, "float", 0, 1),
    Setting("cache_size", "FAQ_CACHE_SIZE", 2048, "Responses kept per worker in the LRU cache (keyed by index generation); 0 disables it.", int, "int", 0, 10_000_000),
    Setting("max_query_chars", "FAQ_MAX_QUERY_CHARS", 256, "Longest accepted `q`; longer gets 400.", int, "int", 1, 10_000),
    Setting("max_text_chars", "FAQ_MAX_TEXT_CHARS", 4000, "Longest `text` of a `POST /v1/search` or `/v1/answer` body (whole messages from other services); longer gets 413.", int, "int", 1, 50_000),
    Setting("cache_max_age", "FAQ_CACHE_MAX_AGE", 60, "`Cache-Control: max-age` in seconds for GET responses.", int, "int", 0, 31_536_000),
    Setting("cache_public", "FAQ_CACHE_PUBLIC", False, "Send `Cache-Control: public` for query responses too (`/v1/search`, `/v1/answer`, `/v1/suggest`); only for sites whose own CDN should cache them. Default: `private`.", _bool, "bool"),
    Setting("host", "HOST", "127.0.0.1", "Address gunicorn binds to.", str),
    Setting("port", "PORT", 8000, "Port gunicorn binds to.", int, "int", 1, 65535),
    Setting("workers", "WEB_CONCURRENCY", 2, "Number of gunicorn worker processes.", int, "int", 1, 256),
    Setting("threads", "FAQ_THREADS", 1, "Threads per gunicorn worker (each thread gets its own searcher).", int, "int", 1, 256),
    Setting("log_level", "FAQ_LOG_LEVEL", "info", "Log level of the service and the access log.", lambda v: v.strip().lower(),
            choices=("debug", "info", "warning", "error", "critical")),
    Setting("crawl_user_agent", "FAQ_CRAWL_USER_AGENT", "MyPsychotherapyFAQ-indexer/0.1 (site search)",
            "User-Agent of `faq-index crawl`; robots.txt rules for it are obeyed.", str,
            check=lambda v: None if v.strip() and v.isprintable() else "must be printable and not empty",
            allowed="printable, not empty"),
    Setting("crawl_concurrency", "FAQ_CRAWL_CONCURRENCY", 2, "Requests `faq-index crawl` has open at once per host.", int, "int", 1, 16),
    Setting("crawl_timeout", "FAQ_CRAWL_TIMEOUT", 10.0, "Seconds `faq-index crawl` waits for each request: connect, each read, and the whole download.", float, "float", 0.1, 300),
    Setting("crawl_max_pages", "FAQ_CRAWL_MAX_PAGES", 1000, "Pages `faq-index crawl` requests at most (`--max-pages`).", int, "int", 1, 1_000_000),
    Setting("crawl_max_depth", "FAQ_CRAWL_MAX_DEPTH", 5, "Link hops from the start page `faq-index crawl` follows at most (`--max-depth`).", int, "int", 0, 100),
    Setting("crawl_max_redirects", "FAQ_CRAWL_MAX_REDIRECTS", 5, "Redirects `faq-index crawl` follows per page.", int, "int", 0, 20),
    Setting("analytics", "FAQ_ANALYTICS", True, "Count searches per normalised query and day for editors (`faq-index report`, `GET /v1/analytics`; privacy rules in `docs/operations.md`); `off` stores nothing at all.", _bool, "bool"),
    Setting("analytics_min_count", "FAQ_ANALYTICS_MIN_COUNT", 3, "A query appears in the analytics report only once it was counted at least this many times in the reported days (k).", int, "int", 2, 1_000_000),
    Setting("analytics_retention_days", "FAQ_ANALYTICS_RETENTION_DAYS", 90, "Days of search analytics kept; older rows are deleted.", int, "int", 1, 3650),
    Setting("analytics_flush_seconds", "FAQ_ANALYTICS_FLUSH_SECONDS", 5.0, "Longest time a worker keeps search counts in memory before writing them (and at exit).", float, "float", 0.05, 5),
)


def validate(setting: Setting, value: Any) -> None:
    """Raise ValueError saying what is allowed when ``value`` is outside ``setting``'s range."""
    if setting.type in ("int", "float") and value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {setting.range_text()}")
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number in [{_num(setting.min)}, {_num(setting.max)}]")
        if (setting.min is not None and value < setting.min) or (setting.max is not None and value > setting.max):
            what = "a finite number" if setting.type == "float" else "an int"
            raise ValueError(f"must be {what} in [{_num(setting.min)}, {_num(setting.max)}]")
    if setting.choices and value not in setting.choices:
        raise ValueError(f"must be one of {', '.join(setting.choices)} (any case)")
    if setting.check is not None and value is not None:
        problem = setting.check(value)
        if problem:
            raise ValueError(problem)


_BY_NAME = {s.name: s for s in SETTINGS}


class Config:
    """Resolved settings: environment over defaults, explicit overrides over both."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **overrides: Any) -> Config:
        unknown = set(overrides) - set(_BY_NAME)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        return Config({**self._values, **overrides})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def load_config(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Read every setting from ``env`` (default ``os.environ``); a bad value names its variable."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = env.get(s.env)
        try:
            values[s.name] = s.parse(raw) if raw is not None else s.parse(str(s.default))
            validate(s, values[s.name])
        except ValueError as exc:
            raise ValueError(f"{s.env}={raw!r} is not valid: {exc}") from None
    config = Config(values).replace(**overrides)
    for name, value in overrides.items():
        s = _BY_NAME[name]
        try:
            validate(s, value)
        except ValueError as exc:
            raise ValueError(f"{s.env}={str(value)!r} is not valid: {exc}") from None
    return config


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | type and range | what it does |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        if isinstance(s.default, bool):
            default = f"`{str(s.default).lower()}`"
        else:
            default = f"`{s.default}`" if s.default != "" else "(empty)"
        lines.append(f"| `{s.env}` | {default} | {s.range_text()} | {s.help} |")
    return "\n".join(lines)


README_START, README_END = "<!-- settings:start -->", "<!-- settings:end -->"


def write_readme(path: Path) -> None:
    """Replace the README's configuration table (between the markers) with ``markdown_table()``."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_START}\n{markdown_table()}\n{README_END}{tail}", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover - documentation helper
    if sys.argv[1:2] == ["--write-readme"]:
        write_readme(Path(sys.argv[2] if len(sys.argv) > 2 else "README.md"))
    else:
        sys.stdout.write(markdown_table() + "\n")
