"""Scoring: the ranking knobs (``Ranking``) and BM25F over Whoosh postings, with per-term weights precomputed and kept in memory.

Whoosh is pure Python: matching an OR of a dozen terms over four fields walks every
posting through a tree of matcher objects, ~60 ms per query on MedQuAD's 16k sections. Here
each (field, term) posting list is two numpy arrays — document numbers and that term's BM25
weight in each document — sliced from the generation's memory-mapped derived arrays
(``indexer.derived``; read from Whoosh for a generation without them). A term's score summed
over the fields is cached per term (``term_scores``), so a query is one sparse vector per
clause and a single ``bincount`` over them: no loop over terms × fields per query. The
additions are the ones a dense array per term and clause would make, in the same order, so
the sums are equal to the bit (tested). ``score_plain`` computes the same numbers the slow,
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

from indexer.derived import Derived
from indexer.schema import SEARCH_FIELDS, SPARSE_FIELDS

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
    # Built-in equivalences (``service.lexicon``), each alternative weighted like a synonym;
    # 0 turns a kind off (the ablation rows of docs/quality.md).
    number_weight: float = 1.0  # five ↔ 5, fifth ↔ 5th: the same thing written two ways
    letters_weight: float = 1.0  # Ps ↔ P's: the same letter
    general_weight: float = 0.7  # kind ↔ sort ↔ type (service/equivalences.txt)
    family_weight: float = 0.7  # therapy → psychotherapy: a narrower member of the family
    # Whole messages: the words of their question sentences ("…?") count this much more.
    question_boost: float = 1.0
    question_min_words: int = 25  # only texts at least this long are treated as messages
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

    def __init__(self, reader, ranking: Ranking = DEFAULT_RANKING, cache_postings: int | None = None,
                 derived: Derived | None = None):
        self.reader = reader
        self.derived = derived
        self.ranking = ranking
        self.fields = tuple(ranking.fields)
        self.k1, self.b, self.p = ranking.k1, ranking.b, ranking.coverage_power
        self.synonym_weight = ranking.synonym_weight
        self.idf = ranking.idf_value
        self.n_all = reader.doc_count_all()
        self.n = max(reader.doc_count(), 1)
        # Statistics of live documents only: Whoosh's own (doc_frequency, field_length) still
        # count deleted documents until a merge, and an incremental update must rank exactly
        # like a full build of the same corpus.
        self.lengths: dict[str, np.ndarray] = {}
        self.avglen: dict[str, float] = {}
        if derived is not None and all(f in derived.fields for f, _ in self.fields):
            self.live = derived.live
            for name, _ in self.fields:
                self.lengths[name] = derived.lengths[name]
        else:
            self.derived = None
            self.live = np.ones(self.n_all, dtype=bool)
            if reader.has_deletions():
                for d in range(self.n_all):
                    if reader.is_deleted(d):
                        self.live[d] = False
            for name, _ in self.fields:
                self.lengths[name] = np.fromiter(
                    (reader.doc_field_length(d, name, 0) or 0 for d in range(self.n_all)),
                    dtype=np.float64, count=self.n_all)
        for name, _ in self.fields:
            live_lengths = self.lengths[name][self.live]
            having = int(np.count_nonzero(live_lengths)) if name in SPARSE_FIELDS else self.n
            self.avglen[name] = float(live_lengths.sum() / max(having, 1)) or 1.0
        # With derived arrays a posting list costs a slice and a few vector operations, so
        # the cache only spares the arithmetic of common terms and stays small (it is each
        # worker's private memory); without them every list is decoded in Python: keep more.
        if cache_postings is None:
            cache_postings = 500_000 if self.derived is not None else 4_000_000
        self._cache: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cached = 0
        self._cap = cache_postings
        # A term's score summed over the fields (``term_scores``): what a query adds up. The
        # two caches share the budget of ``cache_postings`` entries.
        self._terms: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._terms_cached = 0
        self._df: dict[str, int] = {}  # a query asks for a word's frequency up to four times
        self._lock = threading.RLock()  # the reader is not thread-safe: one user at a time

    # -- postings

    def _read(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Doc numbers and BM25 weights (idf included, field weight not) of one posting list."""
        if self.derived is not None:
            ids_a, tf = self.derived.postings(field, term)
            if not len(ids_a):
                return ids_a, np.empty(0, dtype=np.float64)
            return ids_a, self._weights(field, term, ids_a, tf)
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
        return ids_a, self._weights(field, term, ids_a, np.asarray(tfs, dtype=np.float64))

    def _weights(self, field: str, term: str, ids: np.ndarray, tf: np.ndarray) -> np.ndarray:
        idf = self.idf(self.n, self._field_df(field, term, len(ids)))
        norm = self.k1 * (1 - self.b + self.b * self.lengths[field][ids] / self.avglen[field])
        return idf * tf * (self.k1 + 1) / (tf + norm)

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
            while self._cached + self._terms_cached > self._cap and len(self._cache) > 1:
                _, (old, _) = self._cache.popitem(last=False)
                self._cached -= len(old)
            return hit

    def term_scores(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The documents where ``term``'s BM25F score is positive (ascending) and that score:
        Σ over the fields, in field order, of the field's weight × the term's BM25 weight
        there. Cached per term: a query's work is then one addition per clause."""
        with self._lock:
            hit = self._terms.get(term)
            if hit is not None:
                self._terms.move_to_end(term)
                return hit
            # Read outside the posting cache (it would hold the same lists again), except
            # from Whoosh, whose decoding is what that cache spares.
            read = self._read if self.derived is not None else self.postings
            lists = [(weight, *read(field, term)) for field, weight in self.fields]
            lists = [(weight, ids, w) for weight, ids, w in lists if len(ids)]
            if not lists:
                hit = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
            elif len(lists) == 1:
                hit = (lists[0][1], lists[0][0] * lists[0][2])
            elif sum(len(ids) for _, ids, _ in lists) * 8 < self.n_all:
                docs = _union([ids for _, ids, _ in lists], self.n_all)
                scores = np.zeros(len(docs))
                for weight, ids, w in lists:
                    scores[np.searchsorted(docs, ids)] += weight * w
                hit = (docs, scores)
            else:  # a common term: the same additions in an array over every document, unsorted
                dense = np.zeros(self.n_all)
                for weight, ids, w in lists:
                    dense[ids] += weight * w
                docs = np.flatnonzero(dense > 0)
                hit = (docs, dense[docs])
            if not bool((hit[1] > 0).all()):  # a field weighed 0: the document does not match
                keep = hit[1] > 0
                hit = (hit[0][keep], hit[1][keep])
            for array in hit:  # shared by every query that asks: never changed in place
                array.flags.writeable = False
            self._terms[term] = hit
            self._terms_cached += len(hit[0])
            while self._cached + self._terms_cached > self._cap and len(self._terms) > 1:
                _, (old, _) = self._terms.popitem(last=False)
                self._terms_cached -= len(old)
            return hit

    def warm_terms(self, share: float = 0.5, per_field: int = 200) -> int:
        """Compute and cache the scores of common terms (a few hundred microseconds each for
        a query to compute) until ``share`` of the cache's budget is used: each field's most
        frequent terms, the fields in ranking order (questions first: visitors ask what the
        questions ask). A fresh worker's first queries then find their common words ready.
        Returns the entries cached; nothing without derived arrays (see ``warm``)."""
        if self.derived is None:
            return 0
        loaded = 0
        for field, _ in self.fields:
            for term in self.derived.most_frequent_terms(field, per_field):
                if term in self._terms:
                    continue
                size = sum(self.derived.doc_frequency(f, term) for f, _ in self.fields)  # at least the union
                if loaded + size <= self._cap * share:
                    loaded += len(self.term_scores(term)[0])
        return loaded

    def warm(self, per_field: int = 300) -> int:
        """Read the longest posting lists ahead of the first queries that need them (a cold
        common term costs tens of milliseconds). Returns the postings loaded."""
        loaded = 0
        for field, _ in self.fields:
            with self._lock:
                if self.derived is not None:
                    terms = self.derived.most_frequent_terms(field, per_field)
                else:
                    terms = [t for _, t in self.reader.most_frequent_terms(field, per_field)]
            for term in terms:
                loaded += len(self.postings(field, term.decode("utf-8") if isinstance(term, bytes) else term)[0])
        return loaded

    def _field_df(self, field: str, term: str, df: int) -> int:
        """The document frequency a field's idf uses: its own, except in a sparse field, where
        a word of one phrasing would look rare ("therapist" in 1 of 46 phrasings) however
        common it is in the sections: there, the term's frequency over every field."""
        if field not in SPARSE_FIELDS:
            return df
        for other, _ in self.fields:  # doc_frequency(term), without recursing into this field
            if other not in SPARSE_FIELDS:
                df = max(df, self.derived.doc_frequency(other, term) if self.derived is not None
                         else len(self.postings(other, term)[0]))
        return df

    def doc_frequency(self, term: str) -> int:
        """Live documents containing ``term`` in the searched field where it is most common
        (from the derived arrays' offsets: no posting list is read to plan a query)."""
        if self.derived is not None:
            df = self._df.get(term)
            if df is None:
                df = max((self.derived.doc_frequency(f, term) for f, _ in self.fields), default=0)
                if len(self._df) >= 100_000:
                    self._df.clear()
                self._df[term] = df
            return df
        return max((len(self.postings(f, term)[0]) for f, _ in self.fields), default=0)

    def clause_weight(self, clause: Clause) -> float:
        """Information in a clause: the idf of its most specific alternative's rarest word."""
        best = 0.0
        for alt in clause:
            best = max(best, max(self.idf(self.n, self.doc_frequency(t)) for t in alt))
        return best

    # -- scoring

    def _factors(self, clauses: list[Clause], factors: list[list[float]] | None,
                 boosts: list[float] | None) -> list[list[float]]:
        """Each alternative's multiplier: given, else 1 for the words as typed and
        ``synonym_weight`` for the others; times its clause's boost."""
        if factors is None:
            factors = [[1.0] + [self.synonym_weight] * (len(c) - 1) for c in clauses]
        if boosts is not None:
            factors = [[f * b for f in fs] for fs, b in zip(factors, boosts, strict=True)]
        return factors

    def score_sparse(self, clauses: list[Clause], weights: list[float] | None = None,
                     extra_weight: float = 0.0, factors: list[list[float]] | None = None,
                     boosts: list[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(docs, scores, coverage) over the documents that match a clause (scores > 0): the
        work follows the query's posting lists, not the index size. ``docs`` ascends.
        ``factors`` weigh each clause's alternatives, ``boosts`` each clause."""
        weights = weights if weights is not None else [self.clause_weight(c) for c in clauses]
        multipliers = self._factors(clauses, factors, boosts)
        # Each clause's score per document it matches, sparse; then summed in clause order,
        # by one bincount: the same additions, in the same order, as adding a dense array
        # per clause (adding a clause a document misses adds 0.0), so the same sums.
        ids_parts, score_parts, cover_parts = [], [], []
        for clause, cw, mult in zip(clauses, weights, multipliers, strict=True):
            ids, best = self._clause_scores(clause, mult)
            if len(ids):
                ids_parts.append(ids)
                score_parts.append(best)
                cover_parts.append(np.full(len(ids), cw))
        if not ids_parts:
            empty = np.empty(0, dtype=np.float64)
            return np.empty(0, dtype=np.int64), empty, empty
        docs = _union(ids_parts, self.n_all)
        all_ids = np.concatenate(ids_parts) if len(ids_parts) > 1 else ids_parts[0]
        all_scores, all_cover = np.concatenate(score_parts), np.concatenate(cover_parts)
        if len(all_ids) * 8 >= self.n_all:
            # Postings of the order of the index: a sum per document number, then the matched
            # ones, is cheaper than locating each posting in ``docs`` (the same sums in the same order).
            scores = np.bincount(all_ids, weights=all_scores, minlength=self.n_all)[docs]
            covered = np.bincount(all_ids, weights=all_cover, minlength=self.n_all)[docs]
        else:
            at = np.searchsorted(docs, all_ids)
            scores = np.bincount(at, weights=all_scores, minlength=len(docs))
            covered = np.bincount(at, weights=all_cover, minlength=len(docs))
        total_weight = sum(weights) + extra_weight
        coverage = covered / total_weight if total_weight else covered
        final = scores * np.power(coverage, self.p) if self.p else scores
        return docs, final, coverage

    def _clause_scores(self, clause: Clause, mult: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """A clause's score where it is positive: per document, the best of its alternatives,
        each the sum of its words' scores (in word order) times its multiplier; an
        alternative of several words counts only where all of them occur."""
        alts = []
        for i, alt in enumerate(clause):
            ids, total = self.term_scores(alt[0])
            for term in alt[1:]:
                other_ids, other = self.term_scores(term)
                ids, here, there = np.intersect1d(ids, other_ids, assume_unique=True, return_indices=True)
                total = total[here] + other[there]
            if mult[i] != 1.0:
                total = total * mult[i]
            if len(ids):
                alts.append((ids, total))
        if len(alts) == 1:
            ids, best = alts[0]
        elif not alts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        else:
            ids = _union([a[0] for a in alts], self.n_all)
            best = np.zeros(len(ids))
            for alt_ids, total in alts:
                at = np.searchsorted(ids, alt_ids)
                best[at] = np.maximum(best[at], total)
        if not bool((best > 0).all()):  # a multiplier of 0
            keep = best > 0
            ids, best = ids[keep], best[keep]
        return ids, best

    def score(self, clauses: list[Clause], weights: list[float] | None = None,
              extra_weight: float = 0.0, factors: list[list[float]] | None = None,
              boosts: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and coverage of every document (``score_sparse`` spread over the index);
        ``extra_weight`` is information no document has."""
        docs, final, coverage = self.score_sparse(clauses, weights, extra_weight, factors, boosts)
        dense_scores, dense_coverage = np.zeros(self.n_all), np.zeros(self.n_all)
        dense_scores[docs], dense_coverage[docs] = final, coverage
        dense_scores[~self.live] = 0.0
        return dense_scores, dense_coverage

    def score_plain(self, clauses: list[Clause], weights: list[float] | None = None,
                    extra_weight: float = 0.0, factors: list[list[float]] | None = None,
                    boosts: list[float] | None = None) -> dict[int, tuple[float, float]]:
        """The same ranking computed directly from Whoosh matchers, with no caching:
        {docnum: (score, coverage)} for every matching document. The reference for tests."""
        with self._lock:
            return self._score_plain(clauses, weights, extra_weight, self._factors(clauses, factors, boosts))

    def _score_plain(self, clauses: list[Clause], weights: list[float] | None,
                     extra_weight: float, multipliers: list[list[float]]) -> dict[int, tuple[float, float]]:
        reader = self.reader
        weights = weights if weights is not None else [self.clause_weight(c) for c in clauses]
        clause_scores: list[dict[int, float]] = []
        for clause, mult in zip(clauses, multipliers, strict=True):
            best: dict[int, float] = {}
            for i, alt in enumerate(clause):
                factor = mult[i]
                alt_scores: dict[int, float] = {}
                matched_all: set[int] | None = None
                for term in alt:
                    seen: set[int] = set()
                    for field, fw in self.fields:
                        if (field, term) not in reader:
                            continue
                        live = reader.postings(field, term)
                        idf = self.idf(self.n, self._field_df(field, term, sum(1 for _ in live.all_ids())))
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


def _union(parts: list[np.ndarray], universe: int) -> np.ndarray:
    """The distinct values of ``parts`` (ids in ``range(universe)``), ascending."""
    if len(parts) == 1:
        return parts[0]
    touched = sum(len(p) for p in parts)
    if touched * 8 < universe:
        joined = np.sort(np.concatenate(parts))
        return joined[np.concatenate(([True], joined[1:] != joined[:-1]))] if len(joined) else joined
    mark = np.zeros(universe, dtype=bool)  # a mark per document is cheaper than sorting this many
    for ids in parts:
        mark[ids] = True
    return np.flatnonzero(mark)


def top_k(matched: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """At least the ``k`` best of ``matched``, ties at the cut included, ordered by
    (-score, docnum): deterministic, unlike a bare argpartition among equal scores."""
    if k < len(matched):
        values = scores[matched]
        kth = np.partition(values, len(values) - k)[len(values) - k]
        matched = matched[values >= kth]
    return matched[np.lexsort((matched, -scores[matched]))]

