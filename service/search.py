"""Query the published index: ranked answers, the best answer, suggestions, related articles.

The user's text is never handed to Whoosh's query parser: it is analysed exactly like the
index (``indexer.schema``) and turned into term queries, so no input can inject field
names, wildcards or operators, raise a syntax error or explode into thousands of terms.

One ``Engine`` lives in each worker. It keeps the served generation open, notices a newly
published one with a ``stat`` of the pointer file (no reopen per request), and gives each
thread its own Whoosh searcher, because searchers are not thread-safe.
"""

from __future__ import annotations

import heapq
import html
import json
import logging
import os
import re
import threading
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from whoosh import index as whoosh_index
from whoosh.spelling import ListCorrector

from indexer.publish import (
    CATALOG,
    CURRENT,
    GENERATION_INFO,
    SYNONYMS,
    current_generation,
    read_catalog,
)
from indexer.schema import (
    COMMON_WORDS,
    SEARCH_FIELDS,
    STOP_WORDS,
    analyze,
    load_synonyms,
    term_spans,
    words,
)
from indexer.settings import Config
from service.scoring import Scorer, bm25_idf

log = logging.getLogger("faq.search")

MAX_QUERY_TERMS = 64  # a pasted essay keeps its 64 rarest distinct words (see Engine.plan)


class NoIndex(Exception):
    """No generation has been published (or it cannot be opened)."""


class NotFound(Exception):
    """An unknown article slug or section anchor."""


# --------------------------------------------------------------------------- ranking knobs


@dataclass(frozen=True)
class Ranking:
    """Ranking parameters (see ``service.scoring``); defaults chosen with ``make eval``."""

    fields: tuple[tuple[str, float], ...] = tuple(SEARCH_FIELDS.items())
    k1: float = 2.0
    b: float = 1.0
    coverage_power: float = 0.0  # score × coverage^p; 0 = plain OR: every p > 0 lost on the tuning sets
    synonym_weight: float = 0.6  # an editor synonym counts this much of the word as typed
    phrase_boost: float = 0.5  # × (1 + boost · share of the query's word pairs adjacent in the question)
    rerank_depth: int = 50
    collapse_duplicates: bool = True


DEFAULT_RANKING = Ranking()


# --------------------------------------------------------------------------- synonyms


class Synonyms:
    """Editor synonym groups applied to the analysed query.

    All-capital acronyms (DID, CBT) also match typed in lower case, except those that are
    ordinary English words too ("did"): those match only in capitals.
    """

    def __init__(self, groups: list[tuple[str, ...]]):
        self.by_terms: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        self.acronyms: dict[str, list[tuple[str, ...]]] = {}
        self.max_len = 1
        for group in groups:
            alternatives = [tuple(analyze(t)) for t in group]
            alternatives = [a for a in dict.fromkeys(alternatives) if a]
            if len(alternatives) < 2:
                continue
            for raw, alt in zip(group, [tuple(analyze(t)) for t in group], strict=True):
                if raw.isupper() and raw.lower() in COMMON_WORDS | STOP_WORDS:
                    self.acronyms[raw] = alternatives
                elif alt:
                    self.by_terms.setdefault(alt, alternatives)
                    self.max_len = max(self.max_len, len(alt))

    @classmethod
    def from_file(cls, path: Path) -> Synonyms:
        return cls(load_synonyms(path))

    def expand(self, tokens: list[str], raw_words: list[str]) -> list[list[tuple[str, ...]]]:
        """Group ``tokens`` into clauses; each clause lists its alternative term sequences,
        the words as typed first (the scorer weighs the other alternatives less)."""
        clauses: list[list[tuple[str, ...]]] = []
        consumed: set[str] = set()
        for raw in raw_words:
            if raw in self.acronyms:
                typed = tuple(analyze(raw))
                clauses.append(_typed_first(self.acronyms[raw], typed))
                consumed.update(typed)
        tokens = [t for t in tokens if t not in consumed]
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                span = tuple(tokens[i:i + n])
                if span in self.by_terms:
                    clauses.append(_typed_first(self.by_terms[span], span))
                    i += n
                    break
            else:
                clauses.append([(tokens[i],)])
                i += 1
        return clauses


def _typed_first(alternatives: list[tuple[str, ...]], typed: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [typed] + [a for a in alternatives if a != typed]


# --------------------------------------------------------------------------- suggestions


class Suggester:
    """As-you-type completion of questions from in-memory structures built at load.

    First the questions that begin with what was typed (a bisect into the sorted questions),
    then those that contain every typed word, the last one as a prefix (a word index). Within
    each tier shorter questions come first, then the site's own order. A keystroke costs a
    few look-ups, never a Whoosh query.
    """

    def __init__(self, entries: list[dict]):
        self.entries = entries  # {"id", "text", "url", "words"}, in the site's order
        joined = [" ".join(e["words"]) for e in entries]
        self.by_text = sorted(range(len(entries)), key=lambda i: (joined[i], i))
        self.sorted_text = [joined[i] for i in self.by_text]
        self.by_rank = sorted(range(len(entries)), key=lambda i: (len(entries[i]["words"]), i))
        self.rank = [0] * len(entries)
        for r, i in enumerate(self.by_rank):
            self.rank[i] = r
        # Ranks in question-text order: the best of a prefix range is an argpartition away.
        self.rank_by_text = np.asarray([self.rank[i] for i in self.by_text], dtype=np.int64)
        postings: dict[str, list[int]] = defaultdict(list)
        for i, entry in enumerate(entries):
            for w in dict.fromkeys(entry["words"]):
                postings[w].append(i)
        self.postings = {w: frozenset(ids) for w, ids in postings.items()}
        self.vocab = sorted(self.postings)
        self._prefix_cache: dict[str, frozenset[int]] = {}

    @classmethod
    def build(cls, entries: list[dict]) -> Suggester:
        return cls(entries)

    def _starting_with(self, text: str) -> range:
        lo = bisect_left(self.sorted_text, text)
        hi = bisect_left(self.sorted_text, text + "\U0010ffff")
        return range(lo, hi)

    def _with_prefix(self, prefix: str) -> frozenset[int]:
        """Questions with a word starting with ``prefix`` (cached: typing repeats prefixes)."""
        found = self._prefix_cache.get(prefix)
        if found is None:
            out: set[int] = set()
            i = bisect_left(self.vocab, prefix)
            while i < len(self.vocab) and self.vocab[i].startswith(prefix):
                out |= self.postings[self.vocab[i]]
                i += 1
            found = frozenset(out)
            if len(self._prefix_cache) >= 4096:
                self._prefix_cache.clear()
            self._prefix_cache[prefix] = found
        return found

    def suggest(self, q: str, limit: int) -> list[dict]:
        typed = words(q)
        if not typed:
            return []
        last_is_prefix = not q[-1:].isspace()
        head = " ".join(typed) + ("" if last_is_prefix else " ")
        span = self._starting_with(head)
        ranks = self.rank_by_text[span.start:span.stop]
        if len(ranks) > limit:
            ranks = np.sort(ranks[np.argpartition(ranks, limit)[:limit]])
        else:
            ranks = np.sort(ranks)
        first = [self.by_rank[r] for r in ranks.tolist()]
        if len(first) >= limit:
            return [self.entries[i] for i in first]
        complete, last = (typed[:-1], typed[-1]) if last_is_prefix else (typed, None)
        needed = [w for w in complete if w not in STOP_WORDS] or complete
        candidates: set[int] | frozenset[int] | None = None
        for w in sorted(needed, key=lambda w: len(self.postings.get(w, ()))):
            found = self.postings.get(w) or self._with_prefix(w)
            candidates = found if candidates is None else candidates & found
            if not candidates:
                return [self.entries[i] for i in first]
        if last is not None:
            prefixed = self._with_prefix(last)
            candidates = prefixed if candidates is None else candidates & prefixed
        chosen = set(first)
        rest = heapq.nsmallest(limit - len(first), (i for i in candidates or () if i not in chosen),
                               key=self.rank.__getitem__)
        return [self.entries[i] for i in first + rest]


_SURFACE_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")


def mark_prefixes(text: str, typed: list[str]) -> str:
    """HTML-escape ``text`` and wrap, in <mark>, the part of each word that a typed word
    is a prefix of (the longest such typed word)."""
    prefixes = sorted({w for w in typed if w}, key=len, reverse=True)
    out, last = [], 0
    for m in _SURFACE_WORD.finditer(text):
        word = m.group(0)
        folded = _folded(word)
        hit = next((p for p in prefixes if folded.startswith(p)), None)
        if hit is None:
            continue
        length = len(hit) if folded[:len(hit)] == word[:len(hit)].lower() else _surface_length(word, len(hit))
        out.append(html.escape(text[last:m.start()]))
        out.append(f"<mark>{html.escape(word[:length])}</mark>")
        out.append(html.escape(word[length:]))
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


@lru_cache(maxsize=100_000)
def _folded(word: str) -> str:
    return "".join(words(word))


def _surface_length(word: str, folded_len: int) -> int:
    """How many characters of ``word`` spell its first ``folded_len`` folded characters
    (differs from ``folded_len`` only around accents and apostrophes)."""
    for n in range(1, len(word) + 1):
        if len(_folded(word[:n])) >= folded_len:
            return n
    return len(word)


# --------------------------------------------------------------------------- snippets


SNIPPET_SCAN = 6000


def _window(text: str, start: int, end: int, chars: int) -> tuple[int, int]:
    """About ``chars`` characters around the match at start:end, cut at spaces."""
    ws = max(0, start - chars // 4)
    if ws > 0:
        space = text.find(" ", ws, start)
        ws = space + 1 if space != -1 else start
    we = min(len(text), ws + chars)
    if we < len(text):
        space = text.rfind(" ", end, we)
        we = space if space != -1 else max(we, end)
    return ws, we


def make_snippet(answer: str, terms: frozenset[str], chars: int = 240) -> str:
    """The answer's passage of about ``chars`` characters that holds the most distinct query
    terms (then the most matches, then the earliest), HTML-escaped, with the matched words —
    and only those — in <mark>.

    Whoosh's highlighter gives the same kind of passage but builds a Token object per word
    of the answer: it was 90% of a search's time on MedQuAD. This walks the answer once with
    the index's own cached word analysis.
    """
    # Long answers (MedQuAD's run to 27,000 characters) are searched for a passage only in
    # their first SNIPPET_SCAN characters, which bounds the cost of a result.
    scanned = answer[:SNIPPET_SCAN]
    matches = [(s, e, t) for s, e, t in term_spans(scanned) if t in terms][:200] if terms else []
    if not matches:
        cut = answer[:chars]
        if len(answer) > chars:
            cut = cut.rsplit(" ", 1)[0] + " …"
        return html.escape(cut)
    best = None
    for start, end, _ in matches:
        ws, we = _window(answer, start, end, chars)
        inside = [m for m in matches if m[0] >= ws and m[1] <= we]
        key = (len({t for _, _, t in inside}), len(inside), -start)
        if best is None or key > best[0]:
            best = (key, ws, we, inside)
    _, window_start, window_end, inside = best
    out = ["… " if window_start > 0 else ""]
    pos = window_start
    for start, end, _ in inside:
        out.append(html.escape(answer[pos:start]))
        out.append(f"<mark>{html.escape(answer[start:end])}</mark>")
        pos = end
    out.append(html.escape(answer[pos:window_end]))
    out.append(" …" if window_end < len(answer) else "")
    return "".join(out)


# --------------------------------------------------------------------------- generation


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
        entries.sort(key=lambda e: e["position"])
        self.suggester = Suggester.build(entries)
        self.reader = self.ix.reader()  # the scorer's own; searchers stay per thread
        self.scorer = Scorer(self.reader, ranking.fields, ranking.k1, ranking.b, ranking.coverage_power,
                             ranking.synonym_weight)
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


# --------------------------------------------------------------------------- engine


SWITCH_WAIT = 0.5  # seconds the request that notices a new generation waits for it to open


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


@dataclass
class Plan:
    """A query after analysis: what is searched and what is shown back."""

    tokens: list[str]  # analysed query terms, in order (after corrections)
    clauses: list[list[tuple[str, ...]]]  # one per word or synonym group: its alternatives
    weights: list[float]  # information (idf) of each clause
    unknown_weight: float  # information of the words found nowhere
    terms: frozenset[str]  # every index term searched, for highlighting
    did_you_mean: str | None
    unknown: list[str]  # words found nowhere and not corrected


class Engine:
    """The per-worker search engine over the served generation."""

    def __init__(self, config: Config, ranking: Ranking = DEFAULT_RANKING, plain: bool = False):
        self.config = config
        self.plain = plain  # score with the uncached reference path (tests compare the two)
        self.index_dir = Path(config.index_dir)
        self.site_url = (config.site_url or "").rstrip("/")
        self.ranking = ranking
        self._gen: Generation | None = None
        self._pointer_stat: tuple | None = None
        self._loader: _Loader | None = None
        self.switch_wait = SWITCH_WAIT
        self._lock = threading.Lock()

    # -- generation switching

    def generation(self) -> Generation:
        """The served generation; switches to a newly published one when the pointer moved.

        The first generation is opened before answering. A later one is opened in a
        background thread while the old one keeps answering: the request that noticed it
        waits up to ``switch_wait`` seconds (enough for a small corpus, so its very next
        answer comes from the new generation), the others do not wait at all.
        """
        try:
            st = os.stat(self.index_dir / CURRENT)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        gen = self._gen
        if gen is not None and key == self._pointer_stat and self._loader is None:
            return gen
        with self._lock:
            loader = self._loader
            if loader is None or not loader.done.is_set():
                if self._gen is not None and key == self._pointer_stat and loader is None:
                    return self._gen
                current = current_generation(self.index_dir)
                if current is None:
                    if self._gen is not None:
                        return self._gen
                    raise NoIndex(f"no index has been built in {self.index_dir}; run `faq-index build`")
                if self._gen is None:
                    try:
                        self._gen = Generation(*current, ranking=self.ranking)
                    except Exception as exc:
                        raise NoIndex(f"the index generation {current[0]} cannot be opened: {exc}") from exc
                    log.info("serving generation %s", self._gen.name)
                    self._pointer_stat = key
                    return self._gen
                if self._gen.name == current[0]:
                    self._loader = None  # the pointer came back: forget a load in flight
                    self._pointer_stat = key
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
                    log.info("serving generation %s", loader.generation_name)
                else:  # a broken generation must not take the service down
                    log.error("cannot open generation %s (still serving %s): %s",
                              loader.generation_name, self._gen.name, loader.error)
            return self._gen

    # -- query analysis

    def plan(self, gen: Generation, q: str, correct: bool = True) -> Plan:
        raw_words = re.findall(r"\w+", q)
        term_of = {w: analyze(w) for w in dict.fromkeys(words(q)) if w not in STOP_WORDS}
        term_of = {w: terms[0] for w, terms in term_of.items() if terms}
        surface = list(term_of)
        if len(surface) > MAX_QUERY_TERMS:
            # Keep the most informative words rather than the first ones: a long message often
            # states its actual question last (unknown words count as the rarest).
            df = {w: gen.scorer.doc_frequency(term_of[w]) for w in surface}
            keep = set(sorted(surface, key=lambda w: df[w])[:MAX_QUERY_TERMS])  # stable: ties keep order
            surface = [w for w in surface if w in keep]
        tokens: list[str] = []
        corrections: dict[str, str] = {}
        unknown: list[str] = []
        for w in surface:
            t = term_of[w]
            if correct and not gen.scorer.doc_frequency(t):
                fixed = gen.speller.correct(w)
                fixed_terms = analyze(fixed) if fixed else []
                if fixed_terms:
                    corrections[w] = fixed
                    t = fixed_terms[0]
                else:
                    unknown.append(w)
            tokens.append(t)
        if unknown and corrections:
            # A word we cannot place suggests an off-topic question: "correcting" its
            # neighbours into unrelated corpus words ("bread" → "broad") would only mislead.
            tokens = [term_of[w] for w in surface]
            unknown = [w for w in surface if w in corrections or w in unknown]
            corrections = {}
        tokens = list(dict.fromkeys(tokens))
        known = [t for t in tokens if gen.scorer.doc_frequency(t)]
        clauses = gen.synonyms.expand(known, raw_words)
        weights = [gen.scorer.clause_weight(c) for c in clauses]
        unknown_weight = len(unknown) * bm25_idf(gen.scorer.n, 0)
        terms = frozenset(t for clause in clauses for alt in clause for t in alt)
        did_you_mean = None
        if corrections:
            did_you_mean = q
            for wrong, right in corrections.items():
                did_you_mean = re.sub(rf"(?i)\b{re.escape(wrong)}\b", right, did_you_mean, count=1)
            if did_you_mean == q:
                did_you_mean = None
        return Plan(tokens, clauses, weights, unknown_weight, terms, did_you_mean, unknown)

    # -- results

    def _url(self, path: str) -> str:
        return f"{self.site_url}{path}" if self.site_url else path

    def _article_ref(self, gen: Generation, slug: str) -> dict:
        art = gen.articles.get(slug)
        if art is None:
            return {"slug": slug, "title": slug, "url": self._url(f"/{slug}/")}
        return {"slug": slug, "title": art["title"], "url": self._url(art["url"])}

    def _result(self, gen: Generation, stored: dict, score: float, terms: frozenset[str]) -> dict:
        meta = stored["meta"]
        return {
            "id": stored["id"],
            "question": stored["question"],
            "answer": stored["answer"],
            "snippet": make_snippet(stored["answer"], terms),
            "score": round(float(score), 4),
            "url": self._url(meta["url"]),
            "breadcrumbs": meta["breadcrumbs"],
            "article": self._article_ref(gen, stored["slug"]),
            "related": [self._article_ref(gen, r["slug"]) for r in meta["related"]],
        }

    def _scores(self, gen: Generation, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        if not self.plain:
            return gen.scorer.score(plan.clauses, plan.weights, plan.unknown_weight)
        scores, coverage = np.zeros(gen.scorer.n_all), np.zeros(gen.scorer.n_all)
        for d, (s, c) in gen.scorer.score_plain(plan.clauses, plan.weights, plan.unknown_weight).items():
            scores[d], coverage[d] = s, c
        return scores, coverage

    def _ranked(self, gen: Generation, plan: Plan, limit: int, offset: int = 0,
                article: str | None = None) -> tuple[list[tuple[int, float, float]], int]:
        """(docnum, score, coverage) of the requested page, and the number of matches.

        With duplicate collapsing, sections whose answers are identical count once, in
        ``total`` too; the candidates are deepened until the page is full of distinct ones.
        """
        if not plan.clauses:
            return [], 0
        scores, coverage = self._scores(gen, plan)
        if article is not None:
            keep = np.zeros(len(scores), dtype=bool)
            keep[gen.docs_by_slug.get(article, np.empty(0, dtype=np.int64))] = True
            scores = np.where(keep, scores, 0.0)
        matched = np.flatnonzero(scores > 0)
        if not len(matched):
            return [], 0
        collapse = self.ranking.collapse_duplicates
        total = len(np.unique(gen.answer_ids[matched])) if collapse else len(matched)
        want = offset + limit
        rerank = self.ranking.rerank_depth
        depth = max(rerank, want * 2 + 10)
        while True:
            ranked = _best(matched, scores, depth)  # by (-score, docnum): the same on every page
            head = ranked[:rerank].tolist()
            final = {d: float(scores[d]) * self._phrase_factor(gen, plan, d) for d in head}
            # The proximity factor only raises scores, so the re-ranked head stays above the rest.
            order = sorted(head, key=lambda d: (-final[d], d)) + ranked[rerank:].tolist()
            hits, seen = [], set()
            for d in order:
                if collapse:
                    key = int(gen.answer_ids[d])
                    if key in seen:
                        continue
                    seen.add(key)
                hits.append((d, final.get(d, float(scores[d])), float(coverage[d])))
                if len(hits) >= want:
                    break
            if len(hits) >= want or len(ranked) >= len(matched):
                return hits[offset:want], total
            depth *= 4

    def _phrase_factor(self, gen: Generation, plan: Plan, docnum: int) -> float:
        """Proximity: reward questions in which the query's words stand next to each other."""
        tokens = plan.tokens
        if not self.ranking.phrase_boost or len(tokens) < 2:
            return 1.0
        q = gen.question_terms.get(docnum, ())
        pairs = set(zip(q, q[1:], strict=False))
        adjacent = sum(1 for pair in zip(tokens, tokens[1:], strict=False) if pair in pairs)
        return 1.0 + self.ranking.phrase_boost * adjacent / (len(tokens) - 1)

    def search(self, q: str, limit: int = 10, offset: int = 0, article: str | None = None) -> dict:
        gen = self.generation()
        if article is not None and article not in gen.articles:
            raise NotFound(f"no article with slug {article!r}")
        plan = self.plan(gen, q)
        hits, total = self._ranked(gen, plan, limit, offset, article)
        searcher = gen.searcher()
        return {
            "query": q,
            "total": total,
            "did_you_mean": plan.did_you_mean,
            "results": [self._result(gen, searcher.stored_fields(d), score, plan.terms) for d, score, _ in hits],
        }

    def answer(self, q: str, alternatives: int = 3) -> dict:
        """The best section, if it covers enough of the question; ``confidence`` is that cover.

        Confidence is the share of the question's information (idf-weighted words and
        synonym groups) found in the top section; words found nowhere in the corpus count
        fully against it, so an off-topic question scores near 0 whatever it matched.
        """
        gen = self.generation()
        plan = self.plan(gen, q)
        hits, _ = self._ranked(gen, plan, 1 + alternatives)
        if not hits:
            return {"query": q, "answer": None, "confidence": 0.0, "alternatives": []}
        searcher = gen.searcher()
        confidence = hits[0][2]
        results = [self._result(gen, searcher.stored_fields(d), score, plan.terms) for d, score, _ in hits]
        best = results[0] if confidence >= self.config.answer_threshold else None
        return {
            "query": q,
            "answer": best,
            "confidence": round(confidence, 4),
            "alternatives": results[1:] if best else results,
        }

    def suggest(self, q: str, limit: int = 8) -> dict:
        gen = self.generation()
        typed = words(q)
        entries = gen.suggester.suggest(q, limit)
        return {
            "query": q,
            "suggestions": [
                {"id": e["id"], "text": e["text"], "url": self._url(e["url"]),
                 "highlight": mark_prefixes(e["text"], typed)}
                for e in entries
            ],
        }

    # -- articles

    def articles(self) -> dict:
        gen = self.generation()
        return {
            "articles": [
                {"slug": a["slug"], "title": a["title"], "url": self._url(a["url"]),
                 "description": a["description"], "sections": a["sections"], "source": a["source"]}
                for a in sorted(gen.articles.values(), key=lambda a: a["title"].lower())
            ]
        }

    def _sections(self, gen: Generation, slug: str) -> list[dict]:
        searcher = gen.searcher()
        docs = [searcher.stored_fields(n) for n in searcher.document_numbers(slug=slug)]
        docs.sort(key=lambda d: d["position"])
        return docs

    def article(self, slug: str) -> dict:
        gen = self.generation()
        art = gen.articles.get(slug)
        if art is None:
            raise NotFound(f"no article with slug {slug!r}")
        sections = [
            {"id": d["id"], "question": d["question"], "answer": d["answer"],
             "url": self._url(d["meta"]["url"]), "breadcrumbs": d["meta"]["breadcrumbs"]}
            for d in self._sections(gen, slug)
        ]
        links = [
            {"href": lk["href"], "text": lk["text"], "kind": lk["kind"], "slug": lk["slug"],
             "section": f"{slug}#{_anchor_at(sections, lk['section'])}"}
            for lk in art["links"]
        ]
        return {
            "slug": slug,
            "title": art["title"],
            "url": self._url(art["url"]),
            "description": art["description"],
            "published": art["published"],
            "modified": art["modified"],
            "outline": art["outline"],
            "sections": sections,
            "links": links,
            "related": [self._article_ref(gen, s) for s in art["related"] if s in gen.articles],
        }

    def faq(self, slug: str, anchor: str) -> dict:
        gen = self.generation()
        searcher = gen.searcher()
        docnum = searcher.document_number(id=f"{slug}#{anchor}")
        if docnum is None:
            if slug not in gen.articles:
                raise NotFound(f"no article with slug {slug!r}")
            raise NotFound(f"article {slug!r} has no section #{anchor}")
        return self._result(gen, searcher.stored_fields(docnum), 0.0, frozenset())

    def related(self, slug: str, limit: int = 10) -> dict:
        gen = self.generation()
        art = gen.articles.get(slug)
        if art is None:
            raise NotFound(f"no article with slug {slug!r}")
        out: list[dict] = []
        seen = {slug}
        for reason, slugs in (("links-to", art["related"]), ("linked-from", gen.backlinks.get(slug, []))):
            for s in slugs:
                if s in seen or s not in gen.articles:
                    continue
                seen.add(s)
                out.append({**self._article_ref(gen, s), "reason": reason, "score": 1.0})
        if len(out) < limit:
            for s, score in self._similar(gen, slug, limit + len(seen)):
                if s in seen:
                    continue
                seen.add(s)
                out.append({**self._article_ref(gen, s), "reason": "similar", "score": round(score, 4)})
        return {"slug": slug, "related": out[:limit]}

    def _similar(self, gen: Generation, slug: str, limit: int) -> list[tuple[str, float]]:
        """Whoosh's more-like-this: the article's key terms (answers and questions) searched
        for, each article scored by its best section; cached per generation."""
        key = (slug, limit)
        cached = gen.similar_cache.get(key)
        if cached is not None:
            return cached
        searcher = gen.searcher()
        docnums = list(searcher.document_numbers(slug=slug))
        keys = [("answer", t, w) for t, w in searcher.key_terms(docnums, "answer", numterms=20)] if docnums else []
        keys += [("question", t, w) for t, w in searcher.key_terms(docnums, "question", numterms=8)] if docnums else []
        ranked: list[tuple[str, float]] = []
        if keys:
            # Scored like a search (live-document statistics), each term weighted by its
            # key-term score: an update ranks these as a full build would.
            top = max(w for _, _, w in keys)
            total = np.zeros(gen.scorer.n_all)
            for f, t, w in keys:
                ids, weights = gen.scorer.postings(f, t)
                total[ids] += (w / top) * weights
            total[~gen.scorer.live] = 0.0
            total[gen.docs_by_slug.get(slug, np.empty(0, dtype=np.int64))] = 0.0
            scores: dict[str, float] = defaultdict(float)
            for d in _best(np.flatnonzero(total > 0), total, 200)[:200].tolist():
                other = gen.slug_of[d]
                scores[other] = max(scores[other], float(total[d]))
            if scores:
                best = max(scores.values())
                ranked = [(s, v / best) for s, v in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
        if len(gen.similar_cache) >= 4096:
            gen.similar_cache.clear()
        gen.similar_cache[key] = ranked
        return ranked

    def status(self) -> dict:
        gen = self.generation()
        return {
            "generation": gen.name,
            "created": gen.info.get("created"),
            "articles": len(gen.articles),
            "sections": gen.doc_count,
        }


def _anchor_at(sections: list[dict], position: int) -> str:
    if 0 <= position < len(sections):
        return sections[position]["id"].split("#", 1)[1]
    return ""


class Speller:
    """ "Did you mean": the most frequent indexed word within one edit, else two.

    Whoosh's corrector walks a Levenshtein automaton over the whole vocabulary in Python
    (150–300 ms a word on MedQuAD). Here a symmetric-delete table of the vocabulary built at
    load answers most typos in well under a millisecond: a word and a typo one or two edits
    apart (a substitution, insertion, deletion, transposition, or two of them that a single
    deletion on each side reconciles) share a deletion variant. Only what that misses — two
    independent substitutions in a long word — falls back to Whoosh's ListCorrector, and
    answers are cached since a typo tends to be typed again on the next keystroke.
    Short words are left alone (too many neighbours); two edits need seven letters or more.
    """

    def __init__(self, vocabulary: dict[str, int]):
        self.freq = {w: n for w, n in vocabulary.items() if len(w) >= 4 and w.isalpha()}
        self.deletes: dict[str, list[str]] = defaultdict(list)
        for word in self.freq:
            for variant in _deletions(word):
                self.deletes[variant].append(word)
        self._sorted: list[str] | None = None
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def correct(self, word: str) -> str | None:
        if len(word) < 5 or not word.isalpha() or word in self.freq:
            return None
        with self._lock:
            if word in self._cache:
                return self._cache[word]
        maxdist = 2 if len(word) >= 7 else 1
        candidates = set(self.deletes.get(word, ()))
        for variant in _deletions(word):
            candidates.update(self.deletes.get(variant, ()))
            if variant in self.freq:
                candidates.add(variant)
        best = None
        for cand in candidates:
            if cand[0] != word[0]:
                continue  # typos rarely touch the first letter; Whoosh's prefix=1 likewise
            dist = _edit_distance(word, cand, maxdist)
            if dist <= maxdist:
                key = (dist, -self.freq[cand], cand)
                if best is None or key < best:
                    best = key
        found = best[2] if best else None
        if found is None and maxdist == 2:
            if self._sorted is None:
                self._sorted = sorted(self.freq)
            hits = ListCorrector(self._sorted).suggest(word, limit=5, maxdist=2, prefix=2)
            found = max(hits, key=lambda w: (self.freq[w], w)) if hits else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[word] = found
        return found


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau–Levenshtein (optimal string alignment) distance, cut off above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _best(matched: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """At least the ``k`` best of ``matched``, ties at the cut included, ordered by
    (-score, docnum): deterministic, unlike a bare argpartition among equal scores."""
    if k < len(matched):
        values = scores[matched]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        matched = matched[values >= kth]
    return matched[np.lexsort((matched, -scores[matched]))]



__all__ = ["Engine", "Generation", "NoIndex", "NotFound", "Ranking"]
