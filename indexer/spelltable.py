"""The corpus vocabulary and the speller's symmetric-delete table, computed at build time and
written into the generation as ``.npy`` arrays that every worker memory-maps read-only.

A worker that built the table itself spent over a second at start-up (every deletion variant
of every word) and kept it in private memory, once per worker. Here the build writes the
vocabulary (sorted words and how many articles use each) and the table: every deletion
variant of every usable word, sorted, with the word it came from. A worker looks a variant up
with two binary searches. The table depends only on the set of usable words, so an update
that adds no word keeps the served generation's (hard-linked) table and rewrites the counts.

An update does not count the words of every article again: ``update_vocabulary`` applies
the changes (each removed article's words -1, each written one's +1) to the served arrays,
inserting and dropping words and their deletion variants, so its cost follows the articles
changed and the arrays' size, not the number of articles. It writes exactly the arrays a full
count would (``write_vocabulary``); where it cannot be sure of that it declines, and the
caller counts in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from indexer.derived import VOCABULARY_PREFIX, byte_strings, replace_array

MAX_WORD = 24  # longer words are neither corrected nor offered (see service.spelling)
MAX_VOCABULARY = 300_000  # only this many of the most frequent words are kept
FILES = ("words", "counts", "usable", "variants", "owners", "table_words")


def _path(folder: Path, kind: str) -> Path:
    return Path(folder) / f"{VOCABULARY_PREFIX}{kind}.npy"


def usable_words(vocabulary: dict[str, int], max_word: int = MAX_WORD,
                 max_vocabulary: int = MAX_VOCABULARY) -> dict[str, int]:
    """The words the speller corrects to: alphabetic, 4 to ``max_word`` letters, the
    ``max_vocabulary`` most frequent."""
    usable = [(w, n) for w, n in vocabulary.items() if 4 <= len(w) <= max_word and w.isalpha()]
    if len(usable) > max_vocabulary:
        usable = sorted(usable, key=lambda wn: (-wn[1], wn[0]))[:max_vocabulary]
    return dict(usable)


def deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _strings(values: list[str]) -> np.ndarray:
    return byte_strings([v.encode("utf-8") for v in values])


def count_words(article_words: Iterable[list[str]]) -> dict[str, int]:
    """How many articles use each word, from each article's distinct words."""
    counts: dict[str, int] = {}
    for ws in article_words:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    return counts


def write_vocabulary(folder: Path, counts: dict[str, int]) -> None:
    """Write the vocabulary and, unless the folder already holds the table of the same usable
    words (an update's copy of the served generation), the symmetric-delete table."""
    folder = Path(folder)
    vocab = sorted(counts)
    replace_array(_path(folder, "words"), _strings(vocab))
    replace_array(_path(folder, "counts"), np.asarray([counts[w] for w in vocab], dtype=np.int64))
    usable = sorted(usable_words(counts))
    index_of = {w: i for i, w in enumerate(vocab)}
    usable_ids = np.asarray([index_of[w] for w in usable], dtype=np.int64)
    if all(_path(folder, k).is_file() for k in ("variants", "owners")) and _same_usable(folder, usable):
        replace_array(_path(folder, "usable"), usable_ids)
        return
    pairs = sorted((v.encode("utf-8"), i) for i, w in enumerate(usable) for v in deletions(w))
    width = max((len(v) for v, _ in pairs), default=1)
    replace_array(_path(folder, "variants"), np.array([v for v, _ in pairs], dtype=f"S{width}"))
    replace_array(_path(folder, "owners"), np.asarray([i for _, i in pairs], dtype=np.int32))
    replace_array(_path(folder, "usable"), usable_ids)
    replace_array(_path(folder, "table_words"), _strings(usable))


def _usable_word(word: str, max_word: int = MAX_WORD) -> bool:
    return 4 <= len(word) <= max_word and word.isalpha()


def _exact_width(array: np.ndarray) -> np.ndarray:
    """``array`` (bytes) in the narrowest width that holds it, as ``_strings`` makes it."""
    width = int(np.char.str_len(array).max()) if len(array) else 1
    return array.astype(f"S{max(width, 1)}")


def _insert_sorted(array: np.ndarray, values: list[bytes]) -> np.ndarray:
    """Sorted ``array`` with sorted ``values`` (none already in it) inserted in order."""
    if not values:
        return array
    new = np.array(values)
    wide = array.astype(f"S{max(array.dtype.itemsize, new.dtype.itemsize)}")
    return np.insert(wide, np.searchsorted(array, new), new)


def update_vocabulary(folder: Path, delta: dict[str, int]) -> bool:
    """Apply ``delta`` (articles using each word, gained or lost) to the vocabulary arrays
    that ``folder`` holds from the served generation; False, writing nothing, when it cannot
    (no arrays, the ``MAX_VOCABULARY`` cut in play, counts that do not add up): the caller
    then counts in full with ``write_vocabulary``."""
    folder = Path(folder)
    try:
        arrays = {k: np.load(_path(folder, k), allow_pickle=False) for k in FILES}
    except (OSError, ValueError):
        return False
    words, counts, table_words = arrays["words"], arrays["counts"], arrays["table_words"]
    if len(words) != len(counts) or len(table_words) >= MAX_VOCABULARY:
        return False  # the cut may keep other words: only a full count knows which
    keys = sorted(w for w, d in delta.items() if d)
    if not keys:
        return True
    encoded = np.array([w.encode("utf-8") for w in keys])
    change = np.asarray([delta[w] for w in keys], dtype=np.int64)
    pos = np.searchsorted(words, encoded)
    found = pos < len(words)
    found[found] = words[pos[found]] == encoded[found]
    new_counts = counts.copy()
    new_counts[pos[found]] += change[found]
    if (new_counts < 0).any() or (change[~found] <= 0).any():
        return False
    gone = pos[found][new_counts[pos[found]] == 0]
    added = [keys[i] for i in np.flatnonzero(~found).tolist()]
    if not len(gone) and not added:
        replace_array(_path(folder, "counts"), new_counts)
        return True
    keep = np.ones(len(words), dtype=bool)
    keep[gone] = False
    kept_words = words[keep]
    add = [w.encode("utf-8") for w in added]
    new_words = _exact_width(_insert_sorted(kept_words, add))
    places = np.searchsorted(kept_words, np.array(add)) if add else np.empty(0, dtype=np.int64)
    new_counts = np.insert(new_counts[keep], places, change[~found])

    removed_usable = [bytes(w) for w in words[gone].tolist() if _usable_word(bytes(w).decode("utf-8"))]
    added_usable = [w for w in added if _usable_word(w)]
    if removed_usable or added_usable:
        if len(table_words) - len(removed_usable) + len(added_usable) > MAX_VOCABULARY:
            return False
        variants, owners = arrays["variants"], arrays["owners"]
        kept = ~np.isin(table_words, np.array(removed_usable)) if removed_usable else np.ones(len(table_words), bool)
        new_usable = _exact_width(_insert_sorted(table_words[kept], [w.encode("utf-8") for w in added_usable]))
        # Owners are positions in the usable words: renumber the kept ones (order is kept, so
        # the table stays sorted by variant then owner) and insert the new words' variants.
        renumber = np.full(len(table_words), -1, dtype=np.int64)
        renumber[kept] = np.searchsorted(new_usable, table_words[kept])
        mask = kept[owners] if len(owners) else np.zeros(0, dtype=bool)
        kept_variants, kept_owners = variants[mask], renumber[owners[mask]]
        pairs = sorted((v.encode("utf-8"), int(np.searchsorted(new_usable, w.encode("utf-8"))))
                       for w in added_usable for v in deletions(w))
        at = [int(np.searchsorted(kept_variants, v, "left")) for v, _ in pairs]
        at = [lo + int(np.searchsorted(kept_owners[lo:np.searchsorted(kept_variants, v, "right")], o))
              for lo, (v, o) in zip(at, pairs, strict=True)]
        new_variants = _exact_width(np.insert(
            kept_variants.astype(f"S{max(kept_variants.dtype.itemsize, max((len(v) for v, _ in pairs), default=1))}"),
            at, [v for v, _ in pairs]))
        new_owners = np.insert(kept_owners, at, [o for _, o in pairs]).astype(np.int32)
        replace_array(_path(folder, "variants"), new_variants)
        replace_array(_path(folder, "owners"), new_owners)
        replace_array(_path(folder, "table_words"), new_usable)
        table_words = new_usable
    replace_array(_path(folder, "words"), new_words)
    replace_array(_path(folder, "counts"), new_counts.astype(np.int64))
    replace_array(_path(folder, "usable"), np.searchsorted(new_words, table_words).astype(np.int64))
    return True


def _same_usable(folder: Path, usable: list[str]) -> bool:
    """Whether the table in ``folder`` was built from exactly these usable words."""
    try:
        previous = np.load(_path(folder, "table_words"), allow_pickle=False)
    except (OSError, ValueError):
        return False
    return len(previous) == len(usable) and previous.tolist() == [w.encode("utf-8") for w in usable]


class Vocabulary:
    """A generation's vocabulary and speller table, memory-mapped read-only."""

    def __init__(self, folder: Path):
        load = lambda kind: np.asarray(np.load(_path(folder, kind), mmap_mode="r", allow_pickle=False))  # noqa: E731
        self.words = load("words")
        self.counts = load("counts")
        self.usable_ids = load("usable")
        self.variants = load("variants")
        self.owners = load("owners")
        table_words = load("table_words")
        if len(self.words) != len(self.counts) or len(self.variants) != len(self.owners) \
                or len(table_words) != len(self.usable_ids):
            raise ValueError("the vocabulary arrays disagree in length")
        if len(self.usable_ids) and (int(self.usable_ids.max()) >= len(self.words)):
            raise ValueError("the vocabulary's usable words point outside it")
        if len(self.owners) and (int(self.owners.max()) >= len(self.usable_ids) or int(self.owners.min()) < 0):
            raise ValueError("the speller table points outside its words")
        self.usable = [bytes(w).decode("utf-8") for w in table_words]
        if [bytes(self.words[i]) for i in self.usable_ids.tolist()] != [w.encode("utf-8") for w in self.usable]:
            raise ValueError("the speller table was built from other words than the vocabulary's")

    def usable_counts(self) -> dict[str, int]:
        """The speller's words and their article counts."""
        return dict(zip(self.usable, self.counts[self.usable_ids].tolist(), strict=True))

    def get(self, variant: str, default=()):
        """The usable words having ``variant`` as a deletion variant (a dict's ``get``)."""
        key = variant.encode("utf-8")
        lo = int(np.searchsorted(self.variants, key, "left"))
        hi = int(np.searchsorted(self.variants, key, "right"))
        if lo == hi:
            return default
        return [self.usable[i] for i in self.owners[lo:hi].tolist()]

    def starting_with(self, prefixes: Iterable[str]) -> list[str]:
        """The vocabulary's words that start with any of ``prefixes``."""
        out: list[str] = []
        for prefix in prefixes:
            key = prefix.encode("utf-8")
            lo = int(np.searchsorted(self.words, key, "left"))
            hi = int(np.searchsorted(self.words, key + b"\xff", "left"))  # UTF-8 never holds 0xff
            out += [bytes(w).decode("utf-8") for w in self.words[lo:hi]]
        return out


def open_vocabulary(folder: Path) -> Vocabulary | None:
    """The generation's vocabulary, or None when it has none (built by an older version)
    or its arrays are inconsistent (then the worker derives the speller itself)."""
    if not all(_path(folder, k).is_file() for k in FILES):
        return None
    try:
        return Vocabulary(Path(folder))
    except (OSError, ValueError):
        return None


def check_vocabulary(folder: Path) -> str | None:
    """Why a new generation's vocabulary arrays are unusable, or None when they are sound."""
    return None if open_vocabulary(folder) is not None else "the vocabulary arrays are missing or inconsistent"
