"""Generations as a worker sees them: open one, notice a newly published one, switch to it.

A ``Generation`` is one published index folder opened with everything derived from it
(catalog, suggester, speller, synonyms, scorer). ``Generations`` is the small explicit state
of a worker — the served generation, the one loading, the last failure — consulted once
per request through ``current()``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
from whoosh import index as whoosh_index

from indexer.publish import (
    CATALOG,
    CURRENT,
    GENERATION_INFO,
    SYNONYMS,
    current_generation,
    read_catalog,
)
from indexer.schema import analyze, words
from service.query import Synonyms
from service.scoring import DEFAULT_RANKING, Ranking, Scorer
from service.spelling import Speller
from service.suggest import Suggester

log = logging.getLogger("faq.search")

SWITCH_WAIT = 0.5  # seconds the request that notices a new generation waits for it to open


class NoIndex(Exception):
    """No generation has been published (or it cannot be opened)."""


class Generation:
    """One published generation opened by a worker: index, catalog, suggestions, synonyms."""

    def __init__(self, name: str, path: Path, ranking: Ranking = DEFAULT_RANKING):
        self.name = name
        self.path = path
        self.info = json.loads((path / GENERATION_INFO).read_text(encoding="utf-8"))
        self.ix = whoosh_index.open_dir(str(path))
        self.articles = _read_articles(path / CATALOG)
        self.backlinks: dict[str, list[str]] = defaultdict(list)
        for slug, art in self.articles.items():
            for target in art["related"]:
                if target != slug and slug not in self.backlinks[target]:
                    self.backlinks[target].append(slug)
        self.synonyms = Synonyms.from_file(path / SYNONYMS)
        self._local = threading.local()
        entries = []
        self.question_terms: dict[int, tuple[str, ...]] = {}
        answer_keys: dict[int, str] = {}
        by_slug: dict[str, list[int]] = defaultdict(list)
        with self.ix.searcher() as s:
            self.doc_count = s.doc_count()
            for docnum, stored in s.iter_docs():
                self.question_terms[docnum] = tuple(analyze(stored["question"]))
                answer_keys[docnum] = stored["meta"]["answer_hash"]  # written by the indexer
                by_slug[stored["slug"]].append(docnum)
                entries.append(
                    {
                        "id": stored["id"],
                        "text": stored["question"],
                        "url": stored["meta"]["url"],
                        "position": (stored["slug"], stored["position"]),
                        "words": words(stored["question"]),
                    }
                )
        self.docs_by_slug = {slug: np.asarray(sorted(d), dtype=np.int64) for slug, d in by_slug.items()}
        self.slug_of = {d: slug for slug, docs in by_slug.items() for d in docs}
        # Sections with identical answers share an id (collapsed in results and totals).
        ids_of: dict[str, int] = {}
        self.answer_ids = np.full(self.ix.doc_count_all(), -1, dtype=np.int64)
        for docnum, key in answer_keys.items():
            self.answer_ids[docnum] = ids_of.setdefault(key, len(ids_of))
        self.answer_id_count = max(len(ids_of), 1)
        entries.sort(key=lambda e: e["position"])
        self.suggester = Suggester.build(entries)
        self.reader = self.ix.reader()  # the scorer's own; searchers stay per thread
        self.scorer = Scorer(self.reader, ranking)
        self.similar_cache: dict[tuple[str, int], list[tuple[str, float]]] = {}
        vocabulary: dict[str, int] = defaultdict(int)
        for art in self.articles.values():
            for w in art.pop("words"):
                vocabulary[w] += 1
        self.speller = Speller(vocabulary)
        threading.Thread(target=self.scorer.warm, name=f"warm-{name}", daemon=True).start()

    def searcher(self):
        """This thread's searcher over this generation (created on first use)."""
        s = getattr(self._local, "searcher", None)
        if s is None:
            s = self.ix.searcher()
            self._local.searcher = s
        return s


def _read_articles(path: Path) -> dict[str, dict]:
    """Catalog rows by slug, with the slugs each article links to (``related``)."""
    out = {}
    for row in sorted(read_catalog(path).values(), key=lambda r: r["slug"]):
        row["related"] = list(dict.fromkeys(
            lk["slug"] for lk in row["links"] if lk["kind"] == "internal" and lk["slug"] != row["slug"]
        ))
        out[row["slug"]] = row
    return out


class _Loader(threading.Thread):
    """Opens a generation in the background; ``done`` is set when it has, or has failed."""

    def __init__(self, current: tuple[str, Path], ranking: Ranking, key: tuple | None):
        super().__init__(name=f"load-{current[0]}", daemon=True)
        self.generation_name, self.path, self.ranking, self.key = current[0], current[1], ranking, key
        self.generation: Generation | None = None
        self.error: Exception | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.generation = Generation(self.generation_name, self.path, ranking=self.ranking)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()


class Generations:
    """Which generation this worker serves, switching when the ``CURRENT`` pointer moves.

    The first generation is opened before answering. A later one is opened in a background
    thread while the old one keeps answering: the request that noticed it waits up to
    ``switch_wait`` seconds (enough for a small corpus, so its very next answer comes from
    the new generation), the others do not wait at all. A generation that cannot be opened
    never replaces a working one; ``problem`` says what went wrong until a later one opens.
    """

    def __init__(self, index_dir: Path, ranking: Ranking = DEFAULT_RANKING, switch_wait: float = SWITCH_WAIT):
        self.index_dir = Path(index_dir)
        self.ranking = ranking
        self.switch_wait = switch_wait
        self.problem: str | None = None  # why the newest published generation is not served
        self._gen: Generation | None = None
        self._pointer_stat: tuple | None = None
        self._loader: _Loader | None = None
        self._lock = threading.Lock()

    def current(self) -> Generation:
        """The served generation; switches to a newly published one when the pointer moved."""
        try:
            st = os.stat(self.index_dir / CURRENT)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:  # not built yet, or the folder is not one
            key = None
        gen = self._gen
        if gen is not None and key == self._pointer_stat and self._loader is None:
            return gen
        with self._lock:
            loader = self._loader
            if loader is None or not loader.done.is_set():
                if self._gen is not None and key == self._pointer_stat and loader is None:
                    return self._gen
                try:
                    current = current_generation(self.index_dir)
                except OSError as exc:
                    current = None
                    self.problem = f"the index folder cannot be read ({exc.strerror or type(exc).__name__})"
                if current is None:
                    if self._gen is not None:
                        return self._gen
                    raise NoIndex(f"no index has been built in {self.index_dir}; run `faq-index build`")
                if self._gen is None:
                    try:
                        self._gen = Generation(*current, ranking=self.ranking)
                    except Exception as exc:
                        self.problem = f"generation {current[0]} cannot be opened: {exc}"
                        raise NoIndex(f"the index generation {current[0]} cannot be opened: {exc}") from exc
                    log.info("serving generation %s", self._gen.name)
                    self._pointer_stat = key
                    self.problem = None
                    return self._gen
                if self._gen.name == current[0]:
                    self._loader = None  # the pointer came back: forget a load in flight
                    self._pointer_stat = key
                    self.problem = None
                    return self._gen
                started = loader is None or loader.generation_name != current[0]
                if started:
                    loader = self._loader = _Loader(current, self.ranking, key)
                    loader.start()
            else:
                started = False
            # An idle worker can still hold a generation that pruning has since deleted:
            # its open files still read, but a new thread could not open a searcher on it.
            old_gone = not self._gen.path.is_dir()
        if started or old_gone:
            loader.done.wait(None if old_gone else self.switch_wait)
        with self._lock:
            if self._loader is loader and loader.done.is_set():
                self._loader = None
                self._pointer_stat = loader.key
                if loader.generation is not None:
                    self._gen = loader.generation
                    self.problem = None
                    log.info("serving generation %s", loader.generation_name)
                else:  # a broken generation must not take the service down
                    self.problem = (f"the newest generation {loader.generation_name} cannot be opened "
                                    f"({type(loader.error).__name__}); still serving {self._gen.name}")
                    log.error("cannot open generation %s (still serving %s): %s",
                              loader.generation_name, self._gen.name, loader.error)
            return self._gen

    @property
    def loading(self) -> bool:
        return self._loader is not None
