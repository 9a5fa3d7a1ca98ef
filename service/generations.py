"""Generations as a worker sees them: open one, notice a newly published one, switch to it,
and never serve one whose files do not match its manifest.

A ``Generation`` is one published index folder opened with everything derived from it
(catalog, suggester, speller, synonyms, scorer). ``Generations`` is the small explicit state
of a worker — the served generation, the one loading, the last failure, the generations
found damaged — consulted once per request through ``current()``.

Integrity (``indexer.manifest``): file sizes are checked before a generation is opened (a
truncated file is refused before Whoosh or a memory map reads past its end), re-checked
every ``RECHECK_SECONDS`` while it is served, and every file's SHA-256 is compared in a
background thread after it opens. A damaged generation is dropped at once for the newest
intact one still in ``generations/`` (the pointer's own, or an older one); ``problem`` says
which and why, the log names each damaged file, and only when nothing intact is left does
the worker answer 503. A generation built before manifests opens unverified (logged once).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from whoosh import index as whoosh_index

from indexer.derived import Documents, open_derived
from indexer.manifest import MANIFEST, Damage, ManifestError, check_sizes, read_manifest, verify
from indexer.publish import (
    CATALOG,
    CURRENT,
    GENERATION_INFO,
    GENERATIONS,
    SYNONYMS,
    current_generation,
)
from indexer.schema import analyze, words
from indexer.spelltable import open_vocabulary
from indexer.suggesttable import entries_of, open_suggestions, suggest_arrays
from service.catalog import Catalog
from service.lexicon import COMBINING_FORMS, Lexicon
from service.query import Synonyms
from service.scoring import DEFAULT_RANKING, Ranking, Scorer
from service.spelling import Speller
from service.suggest import Suggester

log = logging.getLogger("faq.search")

SWITCH_WAIT = 0.5  # seconds the request that notices a new generation waits for it to open
RECHECK_SECONDS = 5.0  # how often the served generation's file sizes are checked again

_unverified_logged: set[str] = set()  # folders of generations without a manifest, logged


class NoIndex(Exception):
    """No generation has been published (or none can be opened intact)."""


class Damaged(Exception):
    """A generation whose files do not match its manifest; it is never served."""

    def __init__(self, name: str, damage: list[Damage]):
        self.name, self.damage = name, damage
        super().__init__(f"generation {name} is damaged: {describe(damage)}")


def describe(damage: list[Damage]) -> str:
    """The damage in one short line (file names only, never the folder)."""
    more = f" and {len(damage) - 2} more file(s)" if len(damage) > 2 else ""
    return "; ".join(str(d) for d in damage[:2]) + more


def _promises_manifest(path: Path) -> bool:
    """Whether the build that wrote this generation also wrote a manifest (it says so)."""
    try:
        return bool(json.loads((path / GENERATION_INFO).read_text(encoding="utf-8")).get("manifest"))
    except (OSError, ValueError):
        return True  # unreadable: not a generation to serve unverified


def _checked_manifest(name: str, path: Path) -> dict | None:
    """The generation's manifest once its file sizes match it (else ``Damaged``); None for a
    generation built before manifests, logged once per process."""
    try:
        manifest = read_manifest(path)
    except ManifestError as exc:
        raise Damaged(name, [Damage(*str(exc).split(": ", 1))]) from None
    if manifest is None:
        if _promises_manifest(path):
            raise Damaged(name, [Damage(MANIFEST, "missing")])
        if str(path) not in _unverified_logged:
            _unverified_logged.add(str(path))
            log.warning("generation %s has no manifest (built before manifests): served unverified; "
                        "the next `faq-index build` writes one", name)
        return None
    damage = check_sizes(path, manifest)
    if damage:
        raise Damaged(name, damage)
    return manifest


class Generation:
    """One published generation opened by a worker: index, catalog, suggestions, synonyms."""

    def __init__(self, name: str, path: Path, ranking: Ranking = DEFAULT_RANKING):
        self.name = name
        self.path = path
        self.manifest = _checked_manifest(name, path)  # before any file is read
        self.damage: list[Damage] | None = None  # set when a check finds the files changed
        self.verified = False  # every file's SHA-256 matched the manifest
        self.info = json.loads((path / GENERATION_INFO).read_text(encoding="utf-8"))
        self.ix = whoosh_index.open_dir(str(path))
        self.articles = Catalog(path / CATALOG)  # rows read on demand, not held per worker
        self.backlinks = self.articles.backlinks
        self.synonyms = Synonyms.from_file(path / SYNONYMS)
        self._local = threading.local()
        self.reader = self.ix.reader()  # the scorer's own; searchers stay per thread
        # Memory-mapped arrays written at build time; None for a generation built before
        # them, which is then scored from Whoosh's postings as it always was.
        self.derived = open_derived(path, self.ix)
        documents = self.derived.documents if self.derived is not None else None
        if documents is not None:  # read from the build's document table: no stored field decoded
            self._documents_from_table(documents, self.derived.live)
        else:
            self._documents_from_stored_fields()
        self.scorer = Scorer(self.reader, ranking, derived=self.derived)
        self.similar_cache: dict[tuple[str, int], list[tuple[str, float]]] = {}
        vocabulary: dict[str, int] = defaultdict(int)
        table = open_vocabulary(path)  # the build's speller table, memory-mapped; None before it
        if table is None:
            for article_words in self.articles.words():
                for w in article_words:
                    vocabulary[w] += 1
        self.speller = Speller(vocabulary, table)
        # The lexicon reads only the words built on a combining form out of the vocabulary.
        family_words = table.starting_with(COMBINING_FORMS) if table is not None else vocabulary
        self.lexicon = Lexicon(family_words, lambda term: self.scorer.doc_frequency(term) > 0)
        if self.derived is None:  # decoding Whoosh postings is slow: read the common ones ahead
            threading.Thread(target=self.scorer.warm, name=f"warm-{name}", daemon=True).start()

    def _documents_from_stored_fields(self) -> None:
        """Question terms, answer groups, sections by article and suggestions, from every
        stored document (a generation built before the document table)."""
        entries = []
        question_terms: dict[int, tuple[str, ...]] = {}
        answer_keys: dict[int, str] = {}
        by_slug: dict[str, list[int]] = defaultdict(list)
        with self.ix.searcher() as s:
            self.doc_count = s.doc_count()
            for docnum, stored in s.iter_docs():
                question_terms[docnum] = tuple(analyze(stored["question"]))
                answer_keys[docnum] = stored["meta"]["answer_hash"]  # written by the indexer
                by_slug[stored["slug"]].append(docnum)
                entry = {
                    "id": stored["id"],
                    "text": stored["question"],
                    "url": stored["meta"]["url"],
                    "position": (stored["slug"], stored["position"]),
                    "words": words(stored["question"]),
                }
                entries.append(entry)
                entries += _alternate_entries(entry, stored.get("alternates", ""))
        self.question_terms = question_terms
        self.docs_by_slug = {slug: np.asarray(sorted(d), dtype=np.int64) for slug, d in by_slug.items()}
        self.slug_of = {d: slug for slug, docs in by_slug.items() for d in docs}
        # Sections with identical answers share an id (collapsed in results and totals).
        ids_of: dict[str, int] = {}
        self.answer_ids = np.full(self.ix.doc_count_all(), -1, dtype=np.int64)
        for docnum, key in answer_keys.items():
            self.answer_ids[docnum] = ids_of.setdefault(key, len(ids_of))
        self.answer_id_count = max(len(ids_of), 1)
        entries.sort(key=lambda e: e["position"])
        self.suggester = Suggester.from_entries(entries)

    def _documents_from_table(self, documents: Documents, live: np.ndarray) -> None:
        """The same structures as ``_documents_from_stored_fields``, from the build's document
        table: per-document look-ups read the memory-mapped table, the rest is vectorised."""
        live_docs = np.flatnonzero(live)
        self.doc_count = len(live_docs)
        self.question_terms = QuestionTerms(documents, live)
        slugs = documents.column("slug")
        self.docs_by_slug = DocsBySlug(np.asarray([slugs[d] for d in live_docs.tolist()], dtype=object), live_docs)
        self.slug_of = SlugOf(documents)
        hashes = np.asarray([h.encode("ascii") for h in documents.column("answer_hash")])[live_docs]
        # Ids in order of first appearance, as the stored-field path numbers them.
        uniques, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        rank = np.empty(len(uniques), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(uniques))
        self.answer_ids = np.full(len(live), -1, dtype=np.int64)
        self.answer_ids[live_docs] = rank[inverse.reshape(-1)]
        self.answer_id_count = max(len(uniques), 1)
        # The build's suggester arrays, memory-mapped; computed here for a generation before them.
        arrays = open_suggestions(self.path, len(live))
        if arrays is None:
            arrays = suggest_arrays(*entries_of(documents, live))
        entry_doc, entry_alt = arrays["entry_doc"], arrays["entry_alt"]

        def phrasing(d: int, k: int) -> str:
            return documents.value("alternates", d).split("\n")[k]

        def show(i: int) -> dict:
            d, k = int(entry_doc[i]), int(entry_alt[i])
            out = {"id": documents.value("id", d), "text": documents.value("question", d),
                   "url": documents.value("url", d), "position": (documents.value("slug", d), int(documents.positions[d]))}
            if k >= 0:
                out["alternate"] = phrasing(d, k)
            return out

        def text(i: int) -> str:
            d, k = int(entry_doc[i]), int(entry_alt[i])
            return documents.value("words", d) if k < 0 else " ".join(words(phrasing(d, k)))

        self.suggester = Suggester(arrays, show, text)

    def start_verification(self) -> None:
        """Compare every file's SHA-256 with the manifest in a background thread; on a
        mismatch ``damage`` is set and the owner stops serving this generation."""
        if self.manifest is None:
            return
        threading.Thread(target=self._verify, name=f"verify-{self.name}", daemon=True).start()

    def _verify(self) -> None:
        damage = verify(self.path, self.manifest)
        if damage and self.path.is_dir():  # a pruned folder is not damage: a newer one is served
            self.damage = damage
        elif not damage:
            self.verified = True

    def check_sizes(self) -> list[Damage]:
        """The served files' sizes against the manifest ([] when they match or it has none);
        a file truncated while served is caught here, before a read past its end."""
        if self.manifest is None or self.damage:
            return self.damage or []
        damage = check_sizes(self.path, self.manifest)
        if damage and self.path.is_dir():
            self.damage = damage
            return damage
        return []

    def searcher(self):
        """This thread's searcher over this generation (created on first use)."""
        s = getattr(self._local, "searcher", None)
        if s is None:
            s = self.ix.searcher()
            self._local.searcher = s
        return s


def _alternate_entries(entry: dict, alternates: str) -> list[dict]:
    """Suggestion entries for a section's alternate phrasings: typing a visitor's wording
    suggests the section, shown (and linked) by its own question; ``alternate`` is the
    phrasing that matched."""
    return [{**entry, "words": words(text), "alternate": text} for text in alternates.split("\n") if text]


class QuestionTerms:
    """A live document's analysed question terms, read from the document table (a dict's
    ``get``: deleted documents have none)."""

    def __init__(self, documents: Documents, live: np.ndarray):
        self.documents, self.live = documents, live

    def get(self, docnum: int, default: tuple = ()) -> tuple[str, ...]:
        if not 0 <= docnum < len(self.live) or not self.live[docnum]:
            return default
        text = self.documents.value("qterms", docnum)
        return tuple(text.split(" ")) if text else ()


class SlugOf:
    """The article slug of a document, read from the document table (a dict's ``[]``)."""

    def __init__(self, documents: Documents):
        self.documents = documents

    def __getitem__(self, docnum: int) -> str:
        return self.documents.value("slug", docnum)


class DocsBySlug:
    """The live documents of each article, ascending (a dict's ``get``), in two arrays."""

    def __init__(self, slugs: np.ndarray, docs: np.ndarray):
        order = np.lexsort((docs, slugs.astype(str)))
        sorted_slugs = slugs[order]
        self.docs = docs[order]
        starts = np.flatnonzero(np.r_[True, sorted_slugs[1:] != sorted_slugs[:-1]]) if len(slugs) else []
        ends = list(starts[1:]) + [len(slugs)] if len(slugs) else []
        self.spans = {sorted_slugs[a]: (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}

    def get(self, slug: str, default=None):
        span = self.spans.get(slug)
        return default if span is None else self.docs[span[0]:span[1]]


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
    never replaces a working one; one found damaged is never served (see the module), and a
    damaged served one is replaced by the newest intact one. ``problem`` says what went
    wrong until the pointer's generation is served again.
    """

    def __init__(self, index_dir: Path, ranking: Ranking = DEFAULT_RANKING, switch_wait: float = SWITCH_WAIT,
                 recheck_seconds: float = RECHECK_SECONDS):
        self.index_dir = Path(index_dir)
        self.ranking = ranking
        self.switch_wait = switch_wait
        self.recheck_seconds = recheck_seconds
        self.problem: str | None = None  # why the newest published generation is not served
        self._gen: Generation | None = None
        self._pointer_stat: tuple | None = None
        self._loader: _Loader | None = None
        self._checked_at = 0.0  # when the served generation's sizes were last checked
        # Generations found damaged, by name, with their folder's inode: never opened again
        # (a generation is write-once; a folder replaced under the same name is looked at anew).
        self._damaged: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def current(self) -> Generation:
        """The served generation; switches to a newly published one when the pointer moved,
        and away from one found damaged."""
        try:
            st = os.stat(self.index_dir / CURRENT)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:  # not built yet, or the folder is not one
            key = None
        gen = self._gen
        if (gen is not None and key == self._pointer_stat and self._loader is None and gen.damage is None
                and time.monotonic() - self._checked_at < self.recheck_seconds):
            return gen
        with self._lock:
            self._drop_if_damaged()
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
                    self._pointer_stat = key
                    return self._open_newest_intact(current)
                if self._gen.name == current[0] or self._is_damaged(*current):
                    self._loader = None  # the pointer came back, or to a known damaged one
                    self._pointer_stat = key
                    if self._gen.name == current[0]:
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
                    self._serve(loader.generation)
                    self.problem = None
                elif isinstance(loader.error, Damaged):
                    self._record_damage(loader.generation_name, loader.path, loader.error.damage)
                    self.problem = (f"the newest generation {loader.generation_name} is damaged "
                                    f"({describe(loader.error.damage)}); still serving {self._gen.name}")
                else:  # a broken generation must not take the service down
                    self.problem = (f"the newest generation {loader.generation_name} cannot be opened "
                                    f"({type(loader.error).__name__}); still serving {self._gen.name}")
                    log.error("cannot open generation %s (still serving %s): %s",
                              loader.generation_name, self._gen.name, loader.error)
            if self._gen is None or self._gen.damage:  # found damaged while we waited
                self._drop_if_damaged()
                return self._open_newest_intact(current_generation(self.index_dir))
            return self._gen

    @property
    def loading(self) -> bool:
        return self._loader is not None

    # -- integrity (call with the lock held)

    def _serve(self, gen: Generation) -> None:
        self._gen = gen
        self._checked_at = time.monotonic()
        gen.start_verification()
        log.info("serving generation %s", gen.name)

    def _drop_if_damaged(self) -> None:
        """Stop serving the current generation when a check found it damaged."""
        gen = self._gen
        if gen is None:
            return
        if gen.damage is None and time.monotonic() - self._checked_at >= self.recheck_seconds:
            self._checked_at = time.monotonic()
            gen.check_sizes()
        if gen.damage:
            self._record_damage(gen.name, gen.path, gen.damage)
            self._gen = None
            self._loader = None

    def _record_damage(self, name: str, path: Path, damage: list[Damage]) -> None:
        try:
            inode = os.stat(path).st_ino
        except OSError:
            inode = -1
        if self._damaged.get(name, (None,))[0] == inode:
            return
        self._damaged[name] = (inode, describe(damage))
        for d in damage:
            log.error("generation %s is damaged and will not be served: %s", name, d)

    def _is_damaged(self, name: str, path: Path) -> bool:
        known = self._damaged.get(name)
        if known is None:
            return False
        try:
            return os.stat(path).st_ino == known[0]
        except OSError:
            return True

    def _open_newest_intact(self, current: tuple[str, Path] | None) -> Generation:
        """Open the pointer's generation, or else the newest older one that opens intact.
        Raises ``NoIndex`` when none does (then the service answers 503)."""
        if current is None:
            raise NoIndex(f"no index has been built in {self.index_dir}; run `faq-index build`")
        wanted = current[0]
        older: list[Path] = []
        with contextlib.suppress(OSError):
            older = sorted((p for p in (self.index_dir / GENERATIONS).iterdir()
                            if p.name[:1].isdigit() and p.name < wanted and p.is_dir()),
                           key=lambda p: p.name, reverse=True)
        failures: list[str] = []
        for name, path in [current, *((p.name, p) for p in older)]:
            if self._is_damaged(name, path):
                failures.append(f"generation {name} is damaged ({self._damaged[name][1]})")
                continue
            try:
                gen = Generation(name, path, ranking=self.ranking)
            except Damaged as exc:
                self._record_damage(name, path, exc.damage)
                failures.append(f"generation {name} is damaged ({describe(exc.damage)})")
                continue
            except Exception as exc:
                log.error("cannot open generation %s: %s", name, exc)
                failures.append(f"generation {name} cannot be opened ({type(exc).__name__})")
                continue
            self._serve(gen)
            self.problem = None if name == wanted else f"{failures[0]}; serving the older generation {name}"
            return gen
        self.problem = f"{failures[0]}; no intact generation is left to serve" if failures else None
        raise NoIndex(f"no intact generation in {self.index_dir}: {'; '.join(failures)}")
