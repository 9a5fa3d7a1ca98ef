"""The suggester's structures, computed at build time and written into the generation as
``.npy`` arrays that every worker memory-maps read-only.

Each worker used to build them at start-up from every section's question: a dict per entry,
a word index of frozensets, the questions sorted as Python strings — tens of megabytes of
private memory per worker at MedQuAD scale, growing with the corpus. Here an *entry* is a
section's question or one of its editors' alternate phrasings (``indexer.alternates``), in
the site's order; the build writes

- ``entry_doc``, ``entry_alt``: the entry's document number and which phrasing (−1: the question);
- ``rank`` and ``by_rank``: entries ordered by (number of words, site order);
- ``by_text`` and ``keys``: entries ordered by their folded words joined with spaces, and
  those texts cut to ``KEY_BYTES`` (a typed prefix is two binary searches);
- ``vocab``, ``offsets``, ``postings``: each distinct word's entries, ascending.

``suggest_arrays`` is pure (texts in, arrays out): the build writes its result, and a worker
opening a generation built before these files computes the same arrays in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.derived import PREFIX, Documents, byte_strings, replace_array
from indexer.schema import words

SUGGEST_PREFIX = f"{PREFIX}suggest."
KEY_BYTES = 128  # longer typed prefixes are narrowed on these bytes, then checked in full
FILES = ("entry_doc", "entry_alt", "rank", "by_rank", "by_text", "keys", "vocab", "offsets", "postings")


def _path(folder: Path, kind: str) -> Path:
    return Path(folder) / f"{SUGGEST_PREFIX}{kind}.npy"


def suggest_arrays(texts: list[str], entry_doc: list[int], entry_alt: list[int]) -> dict[str, np.ndarray]:
    """The suggester's arrays for entries in site order; ``texts[i]`` is entry i's folded
    words (``indexer.schema.words``) joined with single spaces."""
    n = len(texts)
    counts = np.asarray([len(t.split(" ")) if t else 0 for t in texts], dtype=np.int64)
    by_rank = np.lexsort((np.arange(n), counts)).astype(np.int32)  # (words, site order)
    rank = np.empty(n, dtype=np.int32)
    rank[by_rank] = np.arange(n, dtype=np.int32)
    encoded = [t.encode("utf-8") for t in texts]
    by_text = np.asarray(sorted(range(n), key=lambda i: (encoded[i], i)), dtype=np.int32)
    keys = byte_strings([encoded[i][:KEY_BYTES] for i in by_text.tolist()])
    postings: dict[bytes, list[int]] = {}
    for i, text in enumerate(texts):
        for w in dict.fromkeys(text.split(" ")) if text else ():
            postings.setdefault(w.encode("utf-8"), []).append(i)
    vocab = sorted(postings)
    offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(postings[w]) for w in vocab], dtype=np.int64)
    flat = np.fromiter((i for w in vocab for i in postings[w]), dtype=np.int32, count=int(offsets[-1]))
    return {"entry_doc": np.asarray(entry_doc, dtype=np.int32), "entry_alt": np.asarray(entry_alt, dtype=np.int32),
            "rank": rank, "by_rank": by_rank, "by_text": by_text, "keys": keys,
            "vocab": byte_strings(vocab), "offsets": offsets, "postings": flat}


def entries_of(documents: Documents, live: np.ndarray) -> tuple[list[str], list[int], list[int]]:
    """(texts, entry_doc, entry_alt) of a generation's live sections in the site's order
    (article slug, then position), each question followed by its alternate phrasings."""
    slugs, texts_of, alternates = (documents.column(c) for c in ("slug", "words", "alternates"))
    positions = documents.positions.tolist()
    order = sorted(np.flatnonzero(live).tolist(), key=lambda d: (slugs[d], positions[d]))
    texts: list[str] = []
    entry_doc: list[int] = []
    entry_alt: list[int] = []
    for d in order:
        texts.append(texts_of[d])
        entry_doc.append(d)
        entry_alt.append(-1)
        if alternates[d]:
            for k, phrasing in enumerate(alternates[d].split("\n")):
                texts.append(" ".join(words(phrasing)))
                entry_doc.append(d)
                entry_alt.append(k)
    return texts, entry_doc, entry_alt


def write_suggestions(folder: Path, documents: Documents, live: np.ndarray) -> None:
    """Write the generation's suggester arrays (replacing an update's hard-linked copies)."""
    for kind, array in suggest_arrays(*entries_of(documents, live)).items():
        replace_array(_path(folder, kind), array)


def open_suggestions(folder: Path, doc_count_all: int) -> dict[str, np.ndarray] | None:
    """The generation's suggester arrays, memory-mapped; None when it has none (built by an
    older version) or they are inconsistent (then the worker computes them itself)."""
    if not all(_path(folder, k).is_file() for k in FILES):
        return None
    try:
        arrays = {k: np.asarray(np.load(_path(folder, k), mmap_mode="r", allow_pickle=False)) for k in FILES}
    except (OSError, ValueError):
        return None
    return arrays if check_arrays(arrays, doc_count_all) is None else None


def check_arrays(arrays: dict[str, np.ndarray], doc_count_all: int) -> str | None:
    """Why the suggester arrays are unusable, or None when lengths and ranges agree."""
    n = len(arrays["entry_doc"])
    if any(len(arrays[k]) != n for k in ("entry_alt", "rank", "by_rank", "by_text", "keys")):
        return "the suggester arrays disagree in length"
    if n and (int(arrays["entry_doc"].min()) < 0 or int(arrays["entry_doc"].max()) >= doc_count_all):
        return "the suggester's entries point outside the index"
    for k in ("rank", "by_rank", "by_text"):
        if n and (int(arrays[k].min()) < 0 or int(arrays[k].max()) >= n):
            return f"the suggester's {k} points outside its entries"
    offsets, postings = arrays["offsets"], arrays["postings"]
    if len(offsets) != len(arrays["vocab"]) + 1 or int(offsets[-1]) != len(postings) \
            or (len(postings) and (int(postings.min()) < 0 or int(postings.max()) >= n)):
        return "the suggester's word index is inconsistent"
    return None


def check_suggestions(folder: Path, doc_count_all: int) -> str | None:
    """Why a new generation's suggester arrays are unusable, or None when they are sound."""
    return None if open_suggestions(folder, doc_count_all) is not None else \
        "the suggester arrays are missing or inconsistent"
