"""The catalog as a worker reads it: article rows fetched from the generation's SQLite
catalog when a request needs them, not decoded into every worker at start-up.

A worker used to hold every row — outline, links, issues and the article's word list, as
Python objects — in its private memory: tens of megabytes at MedQuAD scale, growing with
the corpus and the number of workers. The generation's ``catalog.sqlite`` is immutable once
published (an update writes a copy), so each thread opens it read-only and ``immutable``
(no locking), rows are read by primary key, and a small LRU keeps the decoded rows of the
articles being asked for. What must be known for every article at once is kept compact: the
sorted slugs (one bytes array) and the backlinks, which only linked articles have.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

#: What the API shows of an article; ``words``, ``issues`` and the hashes are the build's.
COLUMNS = ("slug", "source", "title", "url", "canonical", "description", "published", "modified", "sections",
           "outline", "links")
CACHE_ROWS = 256


class Catalog(Mapping[str, dict]):
    """Article rows by slug (a read-only mapping), each with ``related``: the slugs it links
    to. ``backlinks[slug]`` lists the articles linking to ``slug``."""

    def __init__(self, path: Path, cache_rows: int = CACHE_ROWS):
        self.uri = f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cache_rows = cache_rows
        conn = self._conn()
        slugs = [row[0] for row in conn.execute("SELECT slug FROM articles ORDER BY slug")]
        self._slugs = np.array([s.encode("utf-8") for s in slugs], dtype=bytes) if slugs else np.empty(0, dtype="S1")
        self.backlinks: dict[str, list[str]] = {}
        for slug, links in conn.execute("SELECT slug, links FROM articles WHERE links != '[]' ORDER BY slug"):
            for target in _related(slug, json.loads(links)):
                self.backlinks.setdefault(target, [])
                if slug not in self.backlinks[target]:
                    self.backlinks[target].append(slug)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def _row(self, values: tuple) -> dict:
        row = dict(zip(COLUMNS, values, strict=True))
        row["outline"] = json.loads(row["outline"])
        row["links"] = json.loads(row["links"])
        row["related"] = _related(row["slug"], row["links"])
        return row

    def __getitem__(self, slug: str) -> dict:
        with self._lock:
            row = self._cache.get(slug)
            if row is not None:
                self._cache.move_to_end(slug)
                return row
        found = self._conn().execute(f"SELECT {', '.join(COLUMNS)} FROM articles WHERE slug = ?",
                                     (slug,)).fetchone() if slug in self else None
        if found is None:
            raise KeyError(slug)
        row = self._row(found)
        with self._lock:
            self._cache[slug] = row
            while len(self._cache) > self._cache_rows:
                self._cache.popitem(last=False)
        return row

    def __contains__(self, slug: object) -> bool:
        if not isinstance(slug, str):
            return False
        try:
            key = slug.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no slug holds one
            return False
        i = int(np.searchsorted(self._slugs, key))
        return i < len(self._slugs) and self._slugs[i] == key

    def __iter__(self) -> Iterator[str]:
        return (s.decode("utf-8") for s in self._slugs.tolist())

    def __len__(self) -> int:
        return len(self._slugs)

    def rows(self) -> Iterator[dict]:
        """Every row in slug order, one query (a listing would otherwise be one per article);
        the rows are not cached."""
        for values in self._conn().execute(f"SELECT {', '.join(COLUMNS)} FROM articles ORDER BY slug"):
            yield self._row(values)

    def words(self) -> Iterator[list[str]]:
        """Each article's vocabulary, for a generation built before the speller table."""
        for (text,) in self._conn().execute("SELECT words FROM articles"):
            yield json.loads(text)


def _related(slug: str, links: list[dict]) -> list[str]:
    return list(dict.fromkeys(lk["slug"] for lk in links if lk["kind"] == "internal" and lk["slug"] != slug))
