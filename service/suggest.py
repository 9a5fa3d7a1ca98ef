"""Suggesting: as-you-type completion of questions from structures built when a generation opens."""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import defaultdict

import numpy as np

from indexer.schema import STOP_WORDS, words


class Suggester:
    """As-you-type completion of questions from in-memory structures built at load.

    First the questions that begin with what was typed (a bisect into the sorted questions),
    then those that contain every typed word, the last one as a prefix (a word index). Within
    each tier shorter questions come first, then the site's own order. A keystroke costs a
    few look-ups, never a Whoosh query. Editors' alternate phrasings are entries of their
    own (with an ``alternate`` key) sharing their section's id; a section is suggested once,
    by whichever of its entries ranks first.
    """

    def __init__(self, entries: list[dict]):
        self.entries = entries  # {"id", "text", "url", "words"[, "alternate"]}, in the site's order
        # At most this many entries repeat a section already suggested: fetch that many more.
        self.repeats = sum(1 for e in entries if "alternate" in e)
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
        wanted = limit + self.repeats
        if len(ranks) > wanted:
            ranks = np.sort(ranks[np.argpartition(ranks, wanted)[:wanted]])
        else:
            ranks = np.sort(ranks)
        ids: set[str] = set()
        first = self._distinct((self.by_rank[r] for r in ranks.tolist()), limit, ids)
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
        rest = heapq.nsmallest(limit - len(first) + self.repeats, (i for i in candidates or () if i not in chosen),
                               key=self.rank.__getitem__)
        return [self.entries[i] for i in first + self._distinct(rest, limit - len(first), ids)]

    def _distinct(self, order, limit: int, ids: set[str]) -> list[int]:
        """The first ``limit`` entries of ``order`` whose section is not in ``ids`` (updated)."""
        out: list[int] = []
        for i in order:
            if len(out) >= limit:
                break
            section = self.entries[i]["id"]
            if section not in ids:
                ids.add(section)
                out.append(i)
        return out

