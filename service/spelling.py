"""Spelling: "did you mean" for query words found nowhere in the index."""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import defaultdict
from heapq import heappush, heapreplace

import numpy as np
from whoosh.automata.fsa import find_all_matches
from whoosh.automata.lev import levenshtein_automaton
from whoosh.spelling import ListCorrector

from indexer.spelltable import MAX_VOCABULARY, MAX_WORD, Vocabulary, deletions, usable_words


class Speller:
    """ "Did you mean": the most frequent indexed word within one edit, else two.

    Whoosh's corrector walks a Levenshtein automaton over the whole vocabulary in Python
    (150–300 ms a word on MedQuAD). Here a symmetric-delete table of the vocabulary, built
    with the generation (``indexer.spelltable``) and memory-mapped, answers most typos in well
    under a millisecond: a word and a typo one or two edits apart (a substitution, insertion, deletion, transposition, or two of them that a single
    deletion on each side reconciles) share a deletion variant. Only what that misses — two
    independent substitutions in a long word — falls back to what Whoosh's ListCorrector
    suggests (``_two_edits``: the same list, mostly without walking its automaton, which cost
    5–20 ms a word on a fresh worker's first queries), and answers are cached since a typo
    tends to be typed again on the next keystroke.
    Short words are left alone (too many neighbours); two edits need seven letters or more.

    The work is bounded whatever the corpus holds: only words of at most ``MAX_WORD`` letters
    are corrected or offered (a word of n letters costs n deletion variants of n letters, so
    one 60,000-letter word once cost 3.5 GB), and only the ``MAX_VOCABULARY`` most frequent
    words are kept.
    """

    MAX_WORD = MAX_WORD
    MAX_VOCABULARY = MAX_VOCABULARY

    def __init__(self, vocabulary: dict[str, int], table: Vocabulary | None = None):
        """``table``: the generation's build-time table (``indexer.spelltable``), memory-mapped
        and shared by the workers; without one (an older generation) it is built here."""
        if table is not None:
            self.freq = table.usable_counts()
            self.deletes = table
        else:
            self.freq = usable_words(vocabulary, self.MAX_WORD, self.MAX_VOCABULARY)
            self.deletes = defaultdict(list)
            for word in self.freq:
                for variant in _deletions(word):
                    self.deletes[variant].append(word)
        self._sorted: list[str] | None = None
        self._sorted_bytes: np.ndarray | None = None  # the same words as one array, for letter counts
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def correct(self, word: str) -> str | None:
        if not 5 <= len(word) <= self.MAX_WORD or not word.isalpha() or word in self.freq:
            return None
        with self._lock:
            if word in self._cache:
                return self._cache[word]
        maxdist = 2 if len(word) >= 7 else 1
        variants = _deletions(word)
        candidates = self._sharing_a_variant(word, variants)
        candidates.update(v for v in variants if v in self.freq)
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
                self._sort_words()
            hits = self._two_edits(word)
            found = max(hits, key=lambda w: (self.freq[w], w)) if hits else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[word] = found
        return found


    def _sort_words(self) -> None:
        """The words in order, as a list and as one array of their UTF-8 bytes. The build's
        table already holds them sorted (its ``usable`` words): used as they are, which
        spares sorting and encoding them on the first correction that needs them."""
        table = self.deletes
        if isinstance(table, Vocabulary):
            as_bytes = table.words[table.usable_ids]
            if len(as_bytes) < 2 or bool((as_bytes[:-1] < as_bytes[1:]).all()):  # bytes order is str order
                self._sorted_bytes = as_bytes
                self._sorted = table.usable
                return
        ordered = sorted(self.freq)
        self._sorted_bytes = np.array([w.encode("utf-8") for w in ordered])
        self._sorted = ordered  # last: another thread takes a set ``_sorted`` as both being ready

    def _sharing_a_variant(self, word: str, variants: set[str]) -> set[str]:
        """The words whose deletion variants include ``word`` or one of ``variants``: two
        binary searches of the table for all of them at once (one pair per variant was most
        of a correction's time)."""
        table = self.deletes
        if not isinstance(table, Vocabulary):
            found = set(table.get(word, ()))
            for variant in variants:
                found.update(table.get(variant, ()))
            return found
        keys = [word.encode("utf-8"), *(v.encode("utf-8") for v in variants)]
        keys_array = np.array(keys, dtype=f"S{max(len(k) for k in keys)}")
        lo = np.searchsorted(table.variants, keys_array, "left").tolist()
        hi = np.searchsorted(table.variants, keys_array, "right").tolist()
        found: set[str] = set()
        for a, b in zip(lo, hi, strict=True):
            if a < b:
                found.update(table.usable[i] for i in table.owners[a:b].tolist())
        return found

    def _two_edits(self, word: str) -> list[str]:
        """``ListCorrector(sorted words).suggest(word, limit=5, maxdist=2, prefix=2)``, the same
        list, without walking Whoosh's Levenshtein automaton (twice, identically; 5–20 ms a
        word) where its result is known: the five greatest words that share ``word``'s first
        two letters and are within two edits of it after them.

        Whoosh's lookup (``ListCorrector.Skipper``) starts each binary search at the number
        of lookups made so far, so it can skip words whose rank in the list is below that
        count. A walk looks up each word of the two letters' range at most twice, plus once
        past it: ranges that start further into the list than that are searched exactly.
        The others (two letters early in the alphabet) and words outside ASCII take the walk.
        """
        words = self._sorted
        lo = bisect_left(words, word[:2])
        hi = bisect_right(words, word[:2], lo, key=lambda w: w[:2])
        if lo == hi:
            return []
        if not word.isascii():
            return self._walk_automaton(word)
        rest = word[2:]
        near = [words[lo + i] for i in self._few_letters_apart(word, lo, hi)]
        found = [w for w in near if _levenshtein(rest, w[2:], 2) <= 2]
        if not found:
            return []
        if lo <= 2 * (hi - lo + 1):
            return self._walk_automaton(word)
        return sorted(found)[-5:]

    def _walk_automaton(self, word: str) -> list[str]:
        """Whoosh's own search, walked once: ``ListCorrector.suggest`` walks the same
        automaton twice and the second walk finds nothing new."""
        heap: list[tuple[int, str]] = []
        seen: set[str] = set()
        dfa = levenshtein_automaton(word, 2, 2).to_dfa()
        for suggestion in find_all_matches(dfa, ListCorrector.Skipper(self._sorted)):
            if suggestion not in seen:  # Corrector.suggest keeps the ``limit`` greatest items
                seen.add(suggestion)
                item = (-2, suggestion)
                if len(heap) < 5:
                    heappush(heap, item)
                elif item > heap[0]:
                    heapreplace(heap, item)
        return [sug for _, sug in sorted(heap, key=lambda x: (0 - x[0], x[1]))]

    def _few_letters_apart(self, word: str, lo: int, hi: int) -> list[int]:
        """Positions in [lo, hi) of the sorted words that may be within two edits of the
        ASCII ``word``: the letters one has and the other lacks number at most two (this bag
        distance never exceeds the edit distance). Words with characters outside ASCII are
        kept (not judged)."""
        rows = self._sorted_bytes[lo:hi]
        matrix = rows.view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
        counts = np.bincount((np.arange(len(rows))[:, None] * _BUCKETS + _BUCKET[matrix]).ravel(),
                             minlength=len(rows) * _BUCKETS).reshape(len(rows), _BUCKETS)
        own = np.bincount(_BUCKET[np.frombuffer(word.encode("ascii"), dtype=np.uint8)], minlength=_BUCKETS)
        diff = (counts - own)[:, :_PADDING]
        bag = np.maximum(np.clip(diff, 0, None).sum(axis=1), np.clip(-diff, 0, None).sum(axis=1))
        return np.flatnonzero((bag <= 2) | (counts[:, _NON_ASCII] > 0)).tolist()


# Letter counts by bucket: each ASCII character its own, every byte of a character outside
# ASCII one bucket (such a word is not judged), the padding of short words one (ignored).
_PADDING, _NON_ASCII, _BUCKETS = 128, 129, 130
_BUCKET = np.concatenate(([_PADDING], np.arange(1, 128), np.full(128, _NON_ASCII))).astype(np.int64)

_deletions = deletions


def _levenshtein(a: str, b: str, limit: int) -> int:
    """Levenshtein distance (insertions, deletions, substitutions: what Whoosh's automaton
    allows, no transpositions), cut off above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


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

