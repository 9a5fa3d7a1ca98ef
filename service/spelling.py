"""Spelling: "did you mean" for query words found nowhere in the index."""

from __future__ import annotations

import threading
from collections import defaultdict

from whoosh.spelling import ListCorrector

from indexer.spelltable import MAX_VOCABULARY, MAX_WORD, Vocabulary, deletions, usable_words


class Speller:
    """ "Did you mean": the most frequent indexed word within one edit, else two.

    Whoosh's corrector walks a Levenshtein automaton over the whole vocabulary in Python
    (150–300 ms a word on MedQuAD). Here a symmetric-delete table of the vocabulary, built
    with the generation (``indexer.spelltable``) and memory-mapped, answers most typos in well
    under a millisecond: a word and a typo one or two edits apart (a substitution, insertion, deletion, transposition, or two of them that a single
    deletion on each side reconciles) share a deletion variant. Only what that misses — two
    independent substitutions in a long word — falls back to Whoosh's ListCorrector, and
    answers are cached since a typo tends to be typed again on the next keystroke.
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
        self._cache: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def correct(self, word: str) -> str | None:
        if not 5 <= len(word) <= self.MAX_WORD or not word.isalpha() or word in self.freq:
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


_deletions = deletions


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

