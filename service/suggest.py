"""Suggesting: as-you-type completion of questions over the generation's suggester arrays
(``indexer.suggesttable``: built once, memory-mapped by every worker)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from indexer.schema import STOP_WORDS, words
from indexer.suggesttable import suggest_arrays

PREFIX_CACHE_IDS = 1_000_000  # entry ids kept for repeated prefixes (4 MB per worker at most)
PREFIX_CACHE_KEYS = 4096  # and prefixes: one that matches nothing still costs a key


class Suggester:
    """As-you-type completion of questions.

    First the entries whose words begin with what was typed (two binary searches into the
    entries sorted by text), then those that contain every typed word, the last one as a
    prefix (a word index). Within each tier shorter entries come first, then the site's own
    order. An entry is a section's question or one of its editors' alternate phrasings; a
    section is suggested once, by whichever of its entries ranks first. A keystroke costs a
    few look-ups in shared arrays, never a Whoosh query.
    """

    def __init__(self, arrays: dict[str, np.ndarray], show: Callable[[int], dict], text: Callable[[int], str]):
        self.entry_doc = arrays["entry_doc"]
        self.entry_alt = arrays["entry_alt"]
        self.rank = arrays["rank"]
        self.by_rank = arrays["by_rank"]
        self.by_text = arrays["by_text"]
        self.keys = arrays["keys"]
        self.vocab = arrays["vocab"]
        self.offsets = arrays["offsets"]
        self.postings = arrays["postings"]
        self.rank_by_text = np.asarray(self.rank)[np.asarray(self.by_text)]
        self.show = show  # entry → {"id", "text", "url", "position"[, "alternate"]}
        self.text = text  # entry → its words joined with spaces
        # A section has at most this many entries (its question and phrasings): the best
        # ``limit × per_section`` entries always hold ``limit`` distinct sections.
        alt = np.asarray(self.entry_alt)
        self.per_section = int(alt.max()) + 2 if len(alt) else 1
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()

    @classmethod
    def from_entries(cls, entries: list[dict]) -> Suggester:
        """The same suggester computed in memory from entry dicts in site order
        ({"id", "text", "url", "position", "words"[, "alternate"]}): for a generation built
        before the suggester arrays."""
        sections: dict[str, int] = {}
        docs = [sections.setdefault(e["id"], len(sections)) for e in entries]
        seen: dict[str, int] = {}
        alts = []  # each section's phrasings numbered 0, 1, … as the build numbers them
        for e in entries:
            if "alternate" in e:
                seen[e["id"]] = seen.get(e["id"], -1) + 1
                alts.append(seen[e["id"]])
            else:
                alts.append(-1)
        texts = [" ".join(e["words"]) for e in entries]
        shown = [{k: v for k, v in e.items() if k != "words"} for e in entries]
        return cls(suggest_arrays(texts, docs, alts), shown.__getitem__, texts.__getitem__)

    @property
    def entries(self) -> list[dict]:
        """Every entry as a dict with its ``words``, in site order (for tests and evaluation)."""
        return [{**self.show(i), "words": self.text(i).split(" ") if self.text(i) else []}
                for i in range(len(self.entry_doc))]

    # -- look-ups

    def _starting_with(self, head: str) -> np.ndarray:
        """Ranks of the entries whose text starts with ``head``."""
        key = head.encode("utf-8")
        width = self.keys.dtype.itemsize
        if len(key) < width:
            lo = int(np.searchsorted(self.keys, key, "left"))
            hi = int(np.searchsorted(self.keys, key + b"\xff", "left"))  # UTF-8 never holds 0xff
            return self.rank_by_text[lo:hi]
        lo = int(np.searchsorted(self.keys, key[:width], "left"))  # keys are cut: check in full
        hi = int(np.searchsorted(self.keys, key[:width], "right"))
        found = [i for i in self.by_text[lo:hi].tolist() if self.text(i).startswith(head)]
        return self.rank[np.asarray(found, dtype=np.int64)]

    def _word(self, word: str) -> np.ndarray | None:
        """Entries holding ``word`` (ascending), or None when no entry has it."""
        key = word.encode("utf-8")
        i = int(np.searchsorted(self.vocab, key))
        if i < len(self.vocab) and self.vocab[i] == key:
            return self.postings[int(self.offsets[i]):int(self.offsets[i + 1])]
        return None

    def _with_prefix(self, prefix: str) -> np.ndarray:
        """Entries with a word starting with ``prefix`` (ascending; cached: typing repeats prefixes)."""
        with self._lock:
            found = self._cache.get(prefix)
            if found is not None:
                self._cache.move_to_end(prefix)
                return found
        key = prefix.encode("utf-8")
        if len(key) >= self.vocab.dtype.itemsize:  # no longer word exists: only itself can match
            exact = self._word(prefix)
            found = np.asarray(exact if exact is not None else (), dtype=np.int32)
        else:
            lo = int(np.searchsorted(self.vocab, key, "left"))
            hi = int(np.searchsorted(self.vocab, key + b"\xff", "left"))
            found = np.unique(self.postings[int(self.offsets[lo]):int(self.offsets[hi])])
        with self._lock:
            if prefix not in self._cache:
                self._cache[prefix] = found
                self._cached += len(found)
                while (self._cached > PREFIX_CACHE_IDS or len(self._cache) > PREFIX_CACHE_KEYS) and self._cache:
                    self._cached -= len(self._cache.popitem(last=False)[1])
        return found

    def _distinct(self, order: np.ndarray, limit: int, sections: set[int]) -> list[int]:
        """The first ``limit`` entries of ``order`` whose section is not in ``sections`` (updated)."""
        out: list[int] = []
        for i in order.tolist():
            if len(out) >= limit:
                break
            doc = int(self.entry_doc[i])
            if doc not in sections:
                sections.add(doc)
                out.append(i)
        return out

    @staticmethod
    def _best(ranks: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` smallest ranks, ascending."""
        if len(ranks) > k:
            ranks = ranks[np.argpartition(ranks, k)[:k]]
        return np.sort(ranks)

    def suggest(self, q: str, limit: int) -> list[dict]:
        typed = words(q)
        if not typed:
            return []
        last_is_prefix = not q[-1:].isspace()
        head = " ".join(typed) + ("" if last_is_prefix else " ")
        sections: set[int] = set()
        first = self._distinct(self.by_rank[self._best(self._starting_with(head), limit * self.per_section)],
                               limit, sections)
        if len(first) >= limit:
            return [self.show(i) for i in first]
        complete, last = (typed[:-1], typed[-1]) if last_is_prefix else (typed, None)
        needed = [w for w in complete if w not in STOP_WORDS] or complete
        exact = {w: self._word(w) for w in needed}
        candidates: np.ndarray | None = None
        for w in sorted(needed, key=lambda w: 0 if exact[w] is None else len(exact[w])):
            found = exact[w] if exact[w] is not None else self._with_prefix(w)
            candidates = found if candidates is None else np.intersect1d(candidates, found, assume_unique=True)
            if not len(candidates):
                return [self.show(i) for i in first]
        if last is not None:
            prefixed = self._with_prefix(last)
            candidates = prefixed if candidates is None else np.intersect1d(candidates, prefixed, assume_unique=True)
        candidates = np.asarray(candidates if candidates is not None else (), dtype=np.int64)
        if first:
            candidates = candidates[~np.isin(candidates, first)]
        # Sections already listed may hold candidates too: their entries are skipped.
        ranks = self._best(self.rank[candidates], limit * self.per_section)
        rest = self._distinct(self.by_rank[ranks], limit - len(first), sections)
        return [self.show(i) for i in first + rest]
