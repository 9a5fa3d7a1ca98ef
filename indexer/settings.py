"""Every setting of the indexer and the service, in one table.

The README's configuration section is generated from ``SETTINGS`` (``make settings-doc``)
and a test checks that it matches, so the documentation cannot drift from the code.
Both the ``faq-index`` CLI and the API read their configuration through ``load_config``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str  # attribute name on Config
    env: str  # environment variable
    default: Any
    help: str
    parse: Callable[[str], Any] = str


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _optional(value: str) -> str | None:
    return value or None


SETTINGS: tuple[Setting, ...] = (
    Setting("corpus_dir", "FAQ_CORPUS_DIR", "corpus", "Folder of the site's HTML articles (and `synonyms.txt`).", Path),
    Setting("index_dir", "FAQ_INDEX_DIR", "var/index", "Folder that holds the index generations and the `CURRENT` pointer.", Path),
    Setting("content_selector", "FAQ_CONTENT_SELECTOR", "", "CSS selector of the article body; empty: detect it (`<article>`, `<main>`, CMS classes, text density).", _optional),
    Setting("max_file_bytes", "FAQ_MAX_FILE_BYTES", 5_000_000, "HTML files larger than this are skipped with a warning.", int),
    Setting("max_section_loss", "FAQ_MAX_SECTION_LOSS", 0.10, "Refuse to publish a generation that lost more than this share of the served sections (`--force` overrides).", float),
    Setting("keep_generations", "FAQ_KEEP_GENERATIONS", 3, "How many published generations to keep on disk (the served one included).", int),
    Setting("reindex_token", "FAQ_REINDEX_TOKEN", "", "Bearer token for `POST /v1/reindex`; empty: reindexing over HTTP is off (404).", _optional),
    Setting("cors_origins", "FAQ_CORS_ORIGINS", "", "Comma-separated origins allowed to call the API from a browser.", _csv),
    Setting("site_url", "FAQ_SITE_URL", "", "Optional base URL that makes article links absolute (e.g. `https://example.org`).", str),
    Setting("answer_threshold", "FAQ_ANSWER_THRESHOLD", 0.4, "Confidence below which `/v1/answer` returns `null` (chosen by `make eval`).", float),
    Setting("cache_size", "FAQ_CACHE_SIZE", 2048, "Responses kept per worker in the LRU cache (keyed by index generation); 0 disables it.", int),
    Setting("max_query_chars", "FAQ_MAX_QUERY_CHARS", 256, "Longest accepted `q`; longer gets 400.", int),
    Setting("cache_max_age", "FAQ_CACHE_MAX_AGE", 60, "`Cache-Control: max-age` in seconds for GET responses.", int),
    Setting("host", "HOST", "127.0.0.1", "Address gunicorn binds to.", str),
    Setting("port", "PORT", 8000, "Port gunicorn binds to.", int),
    Setting("workers", "WEB_CONCURRENCY", 2, "Number of gunicorn worker processes.", int),
    Setting("threads", "FAQ_THREADS", 1, "Threads per gunicorn worker (each thread gets its own searcher).", int),
    Setting("log_level", "FAQ_LOG_LEVEL", "info", "Log level of the service and the access log.", str),
)

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
        except ValueError as exc:
            raise ValueError(f"{s.env}={raw!r} is not valid: {exc}") from None
    return Config(values).replace(**overrides)


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default != "" else "(empty)"
        lines.append(f"| `{s.env}` | {default} | {s.help} |")
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
