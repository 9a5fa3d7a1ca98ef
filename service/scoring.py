"""Scoring: the ranking knobs (``Ranking``) and BM25F over Whoosh postings, with per-term weights precomputed and kept in memory.

Whoosh is pure Python: matching an OR of a dozen terms over four fields walks every
posting through a tree of matcher objects, ~60 ms per query on MedQuAD's 16k sections. Here
each (field, term) posting list is read from Whoosh once per generation and turned into two
numpy arrays — document numbers and that term's BM25 weight in each document — so a query
is a handful of vectorised adds. ``score_plain`` computes the same numbers the slow,
obvious way straight from Whoosh's matchers; a test holds the two paths equal.

The ranking function (documented in docs/quality.md):

    clause score  s_c(d) = max over the clause's alternatives (a word, or its synonyms) of
                           a_i · Σ_fields  w_f · idf_f(t) · tf·(k1+1) / (tf + k1·(1 − b + b·len_f(d)/avglen_f))
                           with a_i = 1 for the words as typed and ``synonym_weight`` for synonyms
    idf_f(t)             = log(1 + (N − df_f(t) + 0.5) / (df_f(t) + 0.5))   (``bm25_idf``)
    coverage      m(d)   = Σ_{c matched by d} W_c / Σ_c W_c,   W_c = idf of the clause
    score         S(d)   = Σ_c s_c(d) · m(d)^p

With p > 0 a section that covers most of the question's information beats one that
repeats a single word many times ("most terms should match", without the hard cut of an
AND). Measured on the tuning sets every p > 0 lost to p = 0 (plain OR, docs/quality.md), so
that is the default; the coverage m(d) is still what ``/v1/answer`` reports as confidence.
Multi-word alternatives ("dissociative identity disorder") must match all their words.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from indexer.schema import SEARCH_FIELDS

Clause = list[tuple[str, ...]]  # alternatives, as typed first; each a sequence of index terms


def whoosh_idf(n: int, df: int) -> float:
    """Whoosh's own idf (``Searcher.idf``): log(N / (df + 1)) + 1; ``Ranking(idf="whoosh")``, measured by ``make eval``."""
    return math.log(n / (df + 1)) + 1.0


def bm25_idf(n: int, df: int) -> float:
    """Robertson–Spärck Jones idf as in Lucene's BM25: log(1 + (N − df + 0.5) / (df + 0.5)).

    Near 0 for a word in almost every section, where Whoosh's log(N / (df + 1)) + 1 stays at
    1: with Whoosh's, the many common words of a long question outweighed its few telling
    ones (CounselChat tuning MRR@10 +0.03 to +0.06, see docs/quality.md).
    """
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


IDF_FUNCTIONS = {"bm25": bm25_idf, "whoosh": whoosh_idf}


@dataclass(frozen=True)
class Ranking:
    """Every ranking knob, in one frozen value that the engine and the evaluation both take.

    The defaults are what ships; ``make eval`` measures other values of this same type
    (``eval/quality.py``'s variants), so what is measured is exactly what runs.
    """

    fields: tuple[tuple[str, float], ...] = tuple(SEARCH_FIELDS.items())
    k1: float = 2.0
    b: float = 1.0
    coverage_power: float = 0.0  # score × coverage^p; 0 = plain OR: every p > 0 lost on the tuning sets
    synonym_weight: float = 0.6  # an editor synonym counts this much of the word as typed
    phrase_boost: float = 0.5  # × (1 + boost · share of the query's word pairs adjacent in the question)
    rerank_depth: int = 50
    collapse_duplicates: bool = True
    max_query_terms: int = 64  # a pasted essay keeps its rarest distinct words (``service.query``)
    idf: Literal["bm25", "whoosh"] = "bm25"

    def __post_init__(self) -> None:
        if self.idf not in IDF_FUNCTIONS:
            raise ValueError(f"unknown idf {self.idf!r}; one of {', '.join(IDF_FUNCTIONS)}")
        if self.max_query_terms < 1 or self.rerank_depth < 1:
            raise ValueError("max_query_terms and rerank_depth must be at least 1")

    def idf_value(self, n: int, df: int) -> float:
        return IDF_FUNCTIONS[self.idf](n, df)


DEFAULT_RANKING = Ranking()


class Scorer:
    """Vectorised BM25F over one generation's reader. Thread-safe; posting arrays cached."""

    def __init__(self, reader, ranking: Ranking = DEFAULT_RANKING, cache_postings: int = 4_000_000):
        self.reader = reader
        self.ranking = ranking
        self.fields = tuple(ranking.fields)
        self.k1, self.b, self.p = ranking.k1, ranking.b, ranking.coverage_power
        self.synonym_weight = ranking.synonym_weight
        self.idf = ranking.idf_value
        self.n_all = reader.doc_count_all()
        self.n = max(reader.doc_count(), 1)
        self.live = np.ones(self.n_all, dtype=bool)
        if reader.has_deletions():
            for d in range(self.n_all):
                if reader.is_deleted(d):
                    self.live[d] = False
        # Statistics of live documents only: Whoosh's own (doc_frequency, field_length) still
        # count deleted documents until a merge, and an incremental update must rank exactly
        # like a full build of the same corpus.
        self.lengths: dict[str, np.ndarray] = {}
        self.avglen: dict[str, float] = {}
        for name, _ in self.fields:
            self.lengths[name] = np.fromiter(
                (reader.doc_field_length(d, name, 0) or 0 for d in range(self.n_all)), dtype=np.float64, count=self.n_all
            )
            self.avglen[name] = float(self.lengths[name][self.live].sum() / self.n) or 1.0
        self._cache: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0
        self._cap = cache_postings
        self._lock = threading.RLock()  # the reader is not thread-safe: one user at a time

    # -- postings

    def _read(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Doc numbers and BM25 weights (idf included, field weight not) of one posting list."""
        reader = self.reader
        try:
            matcher = reader.postings(field, term)
        except Exception:  # TermNotFound: the term is not in this field
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        ids, tfs = [], []
        while matcher.is_active():
            ids.append(matcher.id())
            tfs.append(matcher.weight())
            matcher.next()
        ids_a = np.asarray(ids, dtype=np.int64)  # live documents only (deletions filtered)
        tf = np.asarray(tfs, dtype=np.float64)
        idf = self.idf(self.n, len(ids_a))
        norm = self.k1 * (1 - self.b + self.b * self.lengths[field][ids_a] / self.avglen[field])
        return ids_a, idf * tf * (self.k1 + 1) / (tf + norm)

    def postings(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        key = (field, term)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            hit = self._read(field, term)  # under the lock: Whoosh readers are not thread-safe
            self._cache[key] = hit
            self._cached += len(hit[0])
            while self._cached > self._cap and len(self._cache) > 1:
                _, (old, _) = self._cache.popitem(last=False)
                self._cached -= len(old)
            return hit

    def warm(self, per_field: int = 300) -> int:
        """Read the longest posting lists ahead of the first queries that need them (a cold
        common term costs tens of milliseconds). Returns the postings loaded."""
        loaded = 0
        for field, _ in self.fields:
            with self._lock:
                terms = [t for _, t in self.reader.most_frequent_terms(field, per_field)]
            for term in terms:
                loaded += len(self.postings(field, term.decode("utf-8") if isinstance(term, bytes) else term)[0])
        return loaded

    def doc_frequency(self, term: str) -> int:
        """Live documents containing ``term`` in the searched field where it is most common."""
        return max((len(self.postings(f, term)[0]) for f, _ in self.fields), default=0)

    def clause_weight(self, clause: Clause) -> float:
        """Information in a clause: the idf of its most specific alternative's rarest word."""
        best = 0.0
        for alt in clause:
            best = max(best, max(self.idf(self.n, self.doc_frequency(t)) for t in alt))
        return best

    # -- scoring

    def _alternative(self, alt: tuple[str, ...]) -> np.ndarray:
        total = np.zeros(self.n_all)
        present = None
        for term in alt:
            term_score = np.zeros(self.n_all)
            for field, weight in self.fields:
                ids, w = self.postings(field, term)
                if len(ids):
                    term_score[ids] += weight * w
            total += term_score
            hit = term_score > 0
            present = hit if present is None else present & hit
        if present is not None and len(alt) > 1:
            total[~present] = 0.0  # a multi-word synonym counts only when all its words occur
        return total

    def score(self, clauses: list[Clause], weights: list[float] | None = None,
              extra_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Scores and coverage of every document; ``extra_weight`` is information no document has."""
        weights = weights if weights is not None else [self.clause_weight(c) for c in clauses]
        scores = np.zeros(self.n_all)
        covered = np.zeros(self.n_all)
        for clause, cw in zip(clauses, weights, strict=True):
            best = np.zeros(self.n_all)
            for i, alt in enumerate(clause):
                alt_score = self._alternative(alt)
                if i:
                    alt_score *= self.synonym_weight
                np.maximum(best, alt_score, out=best)
            scores += best
            covered += cw * (best > 0)
        total = sum(weights) + extra_weight
        coverage = covered / total if total else covered
        final = scores * np.power(coverage, self.p) if self.p else scores
        final[~self.live] = 0.0
        return final, coverage

    def score_plain(self, clauses: list[Clause], weights: list[float] | None = None,
                    extra_weight: float = 0.0) -> dict[int, tuple[float, float]]:
        """The same ranking computed directly from Whoosh matchers, with no caching:
        {docnum: (score, coverage)} for every matching document. The reference for tests."""
        with self._lock:
            return self._score_plain(clauses, weights, extra_weight)

    def _score_plain(self, clauses: list[Clause], weights: list[float] | None,
                     extra_weight: float) -> dict[int, tuple[float, float]]:
        reader = self.reader
        weights = weights if weights is not None else [self.clause_weight(c) for c in clauses]
        clause_scores: list[dict[int, float]] = []
        for clause in clauses:
            best: dict[int, float] = {}
            for i, alt in enumerate(clause):
                factor = self.synonym_weight if i else 1.0
                alt_scores: dict[int, float] = {}
                matched_all: set[int] | None = None
                for term in alt:
                    seen: set[int] = set()
                    for field, fw in self.fields:
                        if (field, term) not in reader:
                            continue
                        live = reader.postings(field, term)
                        idf = self.idf(self.n, sum(1 for _ in live.all_ids()))
                        m = reader.postings(field, term)
                        while m.is_active():
                            d, tf = m.id(), m.weight()
                            fl = reader.doc_field_length(d, field, 0)
                            norm = self.k1 * (1 - self.b + self.b * fl / self.avglen[field])
                            alt_scores[d] = alt_scores.get(d, 0.0) + fw * idf * tf * (self.k1 + 1) / (tf + norm)
                            seen.add(d)
                            m.next()
                    matched_all = seen if matched_all is None else matched_all & seen
                for d, s in alt_scores.items():
                    if len(alt) > 1 and d not in (matched_all or set()):
                        continue
                    if s * factor > best.get(d, 0.0):
                        best[d] = s * factor
            clause_scores.append(best)
        total = sum(weights) + extra_weight
        out: dict[int, tuple[float, float]] = {}
        docs = set().union(*clause_scores) if clause_scores else set()
        for d in docs:
            if reader.is_deleted(d):
                continue
            s = sum(cs.get(d, 0.0) for cs in clause_scores)
            cov = sum(w for cs, w in zip(clause_scores, weights, strict=True) if cs.get(d, 0.0) > 0)
            cov = cov / total if total else cov
            out[d] = (s * (cov ** self.p if self.p else 1.0), cov)
        return out


def top_k(matched: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """At least the ``k`` best of ``matched``, ties at the cut included, ordered by
    (-score, docnum): deterministic, unlike a bare argpartition among equal scores."""
    if k < len(matched):
        values = scores[matched]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        matched = matched[values >= kth]
    return matched[np.lexsort((matched, -scores[matched]))]

