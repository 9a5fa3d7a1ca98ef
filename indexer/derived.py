"""Derived arrays: what ranking needs from a generation, computed once at build time and
written beside Whoosh's files as ``.npy`` arrays that every worker memory-maps read-only.

Whoosh's postings are decoded in pure Python; a worker that derived its own arrays from
them paid seconds at start-up and kept a private copy (memory = workers × corpus). Here
each Whoosh segment gets, per searched field, a compressed-sparse-row posting table —
its sorted terms, an offset per term into the document-number and term-frequency arrays —
and its documents' field lengths. Segments are write-once, so an ``update`` derives only
the segments it wrote and hard-links the others' arrays like Whoosh's own files: the cost
of an update follows the pages changed, not the corpus. Deletions are the one thing that
changes in an old segment; the generation's ``live`` mask (one byte a document) and the
manifest listing the segments in reader order are rewritten by every build.

Term frequencies and lengths are stored rather than BM25 weights because the weights
depend on ``Ranking`` knobs (k1, b, idf) that the evaluation varies; the scorer turns them
into weights in a few vectorised operations. A generation without a manifest (built by an
older version) still opens: ``open_derived`` returns None and the service reads Whoosh.
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from indexer.schema import _WORD, SEARCH_FIELDS, _analyse_word, analyze, words

MANIFEST = "derived.json"
LIVE = "derived.live.npy"
FORMAT = 1
PREFIX = "derived."
KINDS = ("terms", "offsets", "ids", "tf", "len")
# Per segment, what a worker used to read from every stored document when it opened a
# generation, and what a result shows (``shown_json``), which Whoosh's stored fields give
# only by unpickling a compressed record per result: string columns (one UTF-8 blob, an
# offset row per column) and positions.
DOC_COLUMNS = ("id", "slug", "question", "qterms", "words", "url", "answer_hash", "alternates", "shown")
SHOWN = ("id", "question", "answer", "slug", "url", "breadcrumbs", "related")
# The columns a worker needs to open a generation from its table (schema 5 wrote these): an
# older generation, served while replicas are upgraded first, keeps its table; its results
# come from Whoosh's stored fields until a build writes ``shown``.
OPEN_COLUMNS = DOC_COLUMNS[:8]
DOC_KINDS = ("blob", "offsets", "position")
VOCABULARY_PREFIX = f"{PREFIX}vocabulary."  # indexer.spelltable's generation-wide arrays
# Per segment, where the words of each answer's first SNIPPET_SCAN characters are (the part
# ``service.highlight`` searches for a result's passage): a snippet then needs no analysis.
SNIPPET_SCAN = 6000
SNIPPET_KINDS = ("starts", "ends", "terms", "offsets", "vocab")


def _name(segment: str, field: str, kind: str) -> str:
    return f"{PREFIX}{segment}.{field}.{kind}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def replace_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` by a rename. The old file may be an update's hard link to
    the served generation's: it is unlinked first, never written through."""
    path.unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _save(tmp, array)
    os.replace(tmp, path)


def byte_strings(values: list[bytes]) -> np.ndarray:
    """``values`` as a fixed-width bytes array, as wide as the longest (at least 1)."""
    return np.array(values, dtype=f"S{max((len(v) for v in values), default=1)}")


def _matcher_arrays(matcher) -> tuple[np.ndarray, np.ndarray]:
    """All (document numbers, weights) of a raw segment matcher, a block at a time where the
    codec allows it (a posting at a time through the public API is 5× slower)."""
    ids: list = []
    tfs: list = []
    blockwise = all(hasattr(matcher, a) for a in ("_read_ids", "_read_weights", "_next_block", "_ids"))
    while matcher.is_active():
        if blockwise:
            if matcher._ids is None:
                matcher._read_ids()
            if matcher._weights is None:
                matcher._read_weights()
            ids.extend(matcher._ids[matcher._i:])
            tfs.extend(matcher._weights[matcher._i:])
            matcher._next_block()
        else:
            ids.append(matcher.id())
            tfs.append(matcher.weight())
            matcher.next()
    return np.asarray(ids, dtype=np.int32), np.asarray(tfs, dtype=np.float32)


def derive_segment(folder: Path, segment_reader, segment: str, fields: Iterable[str] = SEARCH_FIELDS) -> None:
    """Write one segment's posting tables and field lengths (deleted documents included:
    the segment's arrays never change, the generation's live mask says who is deleted)."""
    n = segment_reader.doc_count_all()
    perdoc = segment_reader._perdoc
    for field in fields:
        fmt = segment_reader.schema[field].format
        terms = list(segment_reader.lexicon(field))  # bytes, sorted
        offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        ids_parts, tf_parts = [], []
        for i, term in enumerate(terms):
            ids, tfs = _matcher_arrays(segment_reader._terms.matcher(field, term, fmt))
            ids_parts.append(ids)
            tf_parts.append(tfs)
            offsets[i + 1] = offsets[i] + len(ids)
        width = max((len(t) for t in terms), default=1)
        _save(folder / _name(segment, field, "terms"), np.array(terms, dtype=f"S{width}"))
        _save(folder / _name(segment, field, "offsets"), offsets)
        _save(folder / _name(segment, field, "ids"),
              np.concatenate(ids_parts) if ids_parts else np.empty(0, dtype=np.int32))
        _save(folder / _name(segment, field, "tf"),
              np.concatenate(tf_parts) if tf_parts else np.empty(0, dtype=np.float32))
        lengths = np.fromiter((perdoc.doc_field_length(d, field, 0) or 0 for d in range(n)),
                              dtype=np.float64, count=n)
        _save(folder / _name(segment, field, "len"), lengths)


def _doc_name(segment: str, kind: str) -> str:
    return f"{PREFIX}{segment}.docs.{kind}.npy"


def doc_row(stored: dict) -> tuple[str, ...]:
    """One document's row of the document table, in ``DOC_COLUMNS`` order: its id, slug,
    question, analysed question terms and question words (space-joined), URL, answer hash,
    editors' alternate phrasings (one a line) and ``shown_json``."""
    question = stored["question"]
    return (stored["id"], stored["slug"], question, " ".join(analyze(question)), " ".join(words(question)),
            stored["meta"]["url"], stored["meta"]["answer_hash"], stored.get("alternates", ""),
            shown_json(stored))


def shown_json(stored: dict) -> str:
    """The ``shown`` column: what a result shows of a section, the values of ``SHOWN`` (related
    articles by slug) as one JSON array, decoded in one call per result."""
    meta = stored["meta"]
    return json.dumps([stored["id"], stored["question"], stored["answer"], stored["slug"], meta["url"],
                       meta["breadcrumbs"], [r["slug"] for r in meta["related"]]],
                      ensure_ascii=False, separators=(",", ":"))


def derive_documents(folder: Path, segment_reader, segment: str) -> None:
    """Write one segment's document table (deleted documents included, like the postings)."""
    n = segment_reader.doc_count_all()
    perdoc = segment_reader._perdoc
    columns: list[list[bytes]] = [[] for _ in DOC_COLUMNS]
    positions = np.zeros(n, dtype=np.int64)
    for d in range(n):
        stored = perdoc.stored_fields(d)
        positions[d] = stored["position"]
        for column, value in zip(columns, doc_row(stored), strict=True):
            column.append(value.encode("utf-8"))
    offsets = np.zeros((len(DOC_COLUMNS), n + 1), dtype=np.int64)
    start = 0
    for c, column in enumerate(columns):
        offsets[c, 0] = start
        offsets[c, 1:] = start + np.cumsum([len(v) for v in column], dtype=np.int64)
        start = int(offsets[c, -1])
    _save(folder / _doc_name(segment, "blob"),
          np.frombuffer(b"".join(b"".join(column) for column in columns), dtype=np.uint8))
    _save(folder / _doc_name(segment, "offsets"), offsets)
    _save(folder / _doc_name(segment, "position"), positions)


_SNIPPET_BATCH = 256  # documents whose words derive_snippets turns into arrays at once


def _snippet_name(segment: str, kind: str) -> str:
    return f"{PREFIX}{segment}.snippets.{kind}.npy"


def derive_snippets(folder: Path, segment_reader, segment: str) -> None:
    """Write one segment's snippet spans: every non-stop word of each document's first
    ``SNIPPET_SCAN`` answer characters (``indexer.schema.term_spans``: start, end, and the term's number in
    the segment's sorted term list), an offset per document (deleted documents included)."""
    n = segment_reader.doc_count_all()
    perdoc = segment_reader._perdoc
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    offsets = np.zeros(n + 1, dtype=np.int64)
    number_of: dict[str, int] = {}  # each distinct word's term, numbered as first seen; -1: none
    terms: list[str] = []
    for first in range(0, n, _SNIPPET_BATCH):  # array work per batch of documents, not per document
        words: list[str] = []
        bounds: list[int] = []  # start, end of each word: plain ints (match objects kept alive
        counts = []  # by the thousand would cost the garbage collector more than the regex)
        for d in range(first, min(n, first + _SNIPPET_BATCH)):
            found = list(_WORD.finditer((perdoc.stored_fields(d).get("answer") or "")[:SNIPPET_SCAN]))
            words += map(re.Match.group, found)
            bounds += chain.from_iterable(map(re.Match.span, found))
            counts.append(len(found))
        for word in set(words).difference(number_of):  # term_spans, each distinct word analysed once
            term, stopped = _analyse_word(word, True)
            if stopped or not term:
                number_of[word] = -1
            else:
                number_of[word] = len(terms)
                terms.append(term)  # a term of several spellings is listed once per spelling
        numbers = np.fromiter(map(number_of.__getitem__, words), dtype=np.int64, count=len(words))
        spans = np.fromiter(bounds, dtype=np.int64, count=len(bounds)).reshape(len(words), 2)
        kept = numbers >= 0
        owner = np.repeat(np.arange(len(counts)), counts)
        per_document = np.bincount(owner[kept], minlength=len(counts))
        offsets[first + 1:first + 1 + len(counts)] = offsets[first] + np.cumsum(per_document)
        parts.append((spans[kept, 0], spans[kept, 1], numbers[kept]))
    vocab = sorted(set(terms))  # code-point order: the order of their UTF-8 bytes too
    renumber = np.asarray([bisect_left(vocab, t) for t in terms], dtype=np.int64)
    encoded = [t.encode("utf-8") for t in vocab]
    joined = [np.concatenate([p[k] for p in parts]) if parts else np.empty(0, dtype=np.int64) for k in range(3)]
    _save(folder / _snippet_name(segment, "starts"), joined[0].astype(np.uint16))
    _save(folder / _snippet_name(segment, "ends"), joined[1].astype(np.uint16))
    _save(folder / _snippet_name(segment, "terms"),
          renumber[joined[2]].astype(np.uint16 if len(vocab) <= 1 << 16 else np.int32))
    _save(folder / _snippet_name(segment, "offsets"), offsets)
    _save(folder / _snippet_name(segment, "vocab"),
          np.array(encoded, dtype=f"S{max((len(t) for t in encoded), default=1)}"))


def _segment_id(segment_reader) -> str:
    return segment_reader.segment().segment_id()


def write_derived(folder: Path, ix, fields: Iterable[str] = SEARCH_FIELDS) -> dict:
    """Derive the segments of ``ix`` (a Whoosh index in ``folder``) that have no arrays yet,
    drop the arrays of segments merged away, and write the live mask and the manifest.
    Returns the manifest."""
    fields = tuple(fields)
    folder = Path(folder)
    segments = []
    with ix.reader() as reader:
        live = np.ones(reader.doc_count_all(), dtype=bool)
        for seg_reader, base in reader.leaf_readers():
            seg = _segment_id(seg_reader)
            n = seg_reader.doc_count_all()
            if not all((folder / _name(seg, f, k)).is_file() for f in fields for k in KINDS):
                derive_segment(folder, seg_reader, seg, fields)
            if not all((folder / _doc_name(seg, k)).is_file() for k in DOC_KINDS):
                derive_documents(folder, seg_reader, seg)
            if not all((folder / _snippet_name(seg, k)).is_file() for k in SNIPPET_KINDS):
                derive_snippets(folder, seg_reader, seg)
            deleted = sorted(seg_reader._perdoc.deleted_docs()) if seg_reader.has_deletions() else []
            if deleted:
                live[base + np.asarray(deleted, dtype=np.int64)] = False
            segments.append({"id": seg, "base": base, "docs": n, "deleted": len(deleted)})
    keep = {_name(s["id"], f, k) for s in segments for f in fields for k in KINDS}
    keep |= {_doc_name(s["id"], k) for s in segments for k in DOC_KINDS}
    keep |= {_snippet_name(s["id"], k) for s in segments for k in SNIPPET_KINDS}
    for path in folder.glob(f"{PREFIX}*.npy"):
        if path.name not in keep and path.name != LIVE and not path.name.startswith(VOCABULARY_PREFIX):
            path.unlink()
    (folder / LIVE).unlink(missing_ok=True)  # a hard link to the served generation's
    _save(folder / LIVE, live)
    manifest = {"format": FORMAT, "fields": list(fields), "doc_count_all": int(len(live)),
                "doc_count": int(live.sum()), "segments": segments, "documents": list(DOC_COLUMNS),
                "snippets": SNIPPET_SCAN}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return manifest


@dataclass
class _FieldTable:
    terms: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    tf: np.ndarray


@dataclass
class _Segment:
    base: int
    docs: int
    deleted: int
    tables: dict[str, _FieldTable]


class Documents:
    """The document table of a generation (its manifest's ``columns`` of every document,
    deleted ones included), read by document number from the memory-mapped segment tables."""

    def __init__(self, parts: list[tuple[int, np.ndarray, np.ndarray]], positions: np.ndarray,
                 columns: tuple[str, ...] = DOC_COLUMNS):
        self.parts = parts  # (base, blob, offsets) per segment, in reader order
        self.bases = np.asarray([base for base, _, _ in parts], dtype=np.int64)
        self.positions = positions
        self.column_index = {c: i for i, c in enumerate(columns)}

    def value(self, column: str, docnum: int) -> str:
        """One document's value of ``column``."""
        k = 0 if len(self.parts) == 1 else int(np.searchsorted(self.bases, docnum, "right")) - 1
        base, blob, offsets = self.parts[k]
        row = offsets[self.column_index[column]]
        d = docnum - base
        return blob[int(row[d]):int(row[d + 1])].tobytes().decode("utf-8")

    def raw(self, column: str, docnums: list[int]) -> list[bytes]:
        """The UTF-8 bytes of ``column`` of each of ``docnums``, undecoded."""
        c = self.column_index[column]
        docs = np.asarray(docnums, dtype=np.int64)
        if len(self.parts) == 1:  # a full build: one segment, bounds in two fancy indexings
            _, blob, offsets = self.parts[0]
            row = offsets[c]
            return [blob[a:b].tobytes() for a, b in zip(row[docs].tolist(), row[docs + 1].tolist(), strict=True)]
        part_of = np.searchsorted(self.bases, docs, "right") - 1
        out: list[bytes] = []
        for k, d in zip(part_of.tolist(), docs.tolist(), strict=True):
            base, blob, offsets = self.parts[k]
            out.append(blob[int(offsets[c, d - base]):int(offsets[c, d - base + 1])].tobytes())
        return out

    def column(self, column: str) -> list[str]:
        """Every document's value of ``column``, by document number."""
        c = self.column_index[column]
        out: list[str] = []
        for _, blob, offsets in self.parts:
            row = offsets[c].tolist()
            data = blob[row[0]:row[-1]].tobytes()
            start = row[0]
            out += [data[a - start:b - start].decode("utf-8") for a, b in zip(row, row[1:], strict=False)]
        return out


class Snippets:
    """Where the words of each document's answer are (``derive_snippets``), by document
    number: the spans of a query's terms in an answer, found without analysing it."""

    def __init__(self, parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
        self.parts = parts  # (base, starts, ends, terms, offsets, vocab) per segment, in reader order
        self.bases = np.asarray([part[0] for part in parts], dtype=np.int64)

    def wanted(self, terms: Iterable[str]) -> list[np.ndarray]:
        """Per segment, a mask over its term numbers, set for ``terms``."""
        keys = sorted({t.encode("utf-8", "surrogatepass") for t in terms})
        out = []
        for *_, vocab in self.parts:
            mask = np.zeros(len(vocab), dtype=bool)
            if keys and len(vocab):
                wanted = np.array(keys, dtype=f"S{max(len(k) for k in keys)}")
                at = np.searchsorted(vocab, wanted)
                inside = at < len(vocab)
                at, wanted = at[inside], wanted[inside]
                mask[at[vocab[at] == wanted]] = True
            out.append(mask)
        return out

    def matches(self, docnums: list[int], wanted: list[np.ndarray],
                limit: int) -> list[tuple[list[int], list[int], list[int]]]:
        """For each document, start, end and term number of the first ``limit`` words of its
        scanned answer whose term is ``wanted`` (masks from ``wanted``), in text order."""
        out: list = [None] * len(docnums)
        docs = np.asarray(docnums, dtype=np.int64)
        part_of = np.zeros(len(docs), dtype=np.int64) if len(self.parts) == 1 else \
            np.searchsorted(self.bases, docs, "right") - 1
        for k in sorted(set(part_of.tolist())):
            which = np.flatnonzero(part_of == k)
            base, starts, ends, terms, offsets, _ = self.parts[k]
            lo, hi = offsets[docs[which] - base], offsets[docs[which] - base + 1]
            lengths = hi - lo
            # The documents' words one after the other: each one's position in the arrays.
            owner = np.repeat(np.arange(len(which)), lengths)
            at = np.arange(int(lengths.sum())) + np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
            hit = np.flatnonzero(wanted[k][terms[at]])
            hit_owner = owner[hit]
            keep = np.arange(len(hit)) - np.searchsorted(hit_owner, hit_owner) < limit  # a document's first
            hit, hit_owner = at[hit[keep]], hit_owner[keep]
            bounds = np.searchsorted(hit_owner, np.arange(len(which) + 1)).tolist()
            s, e, t = starts[hit].tolist(), ends[hit].tolist(), terms[hit].tolist()
            for j, w in enumerate(which.tolist()):
                a, b = bounds[j], bounds[j + 1]
                out[w] = (s[a:b], e[a:b], t[a:b])
        return out

    def problem(self) -> str | None:
        """Why the spans are unusable (numbers outside the term list, spans outside the
        scanned text, offsets out of order), or None."""
        for _, starts, ends, terms, offsets, vocab in self.parts:
            if len(terms) and (int(terms.max()) >= len(vocab) or int(terms.min()) < 0):
                return "the derived snippet spans name terms outside their list"
            if len(starts) and (bool((ends <= starts).any()) or int(ends.max()) > SNIPPET_SCAN):
                return "the derived snippet spans lie outside the scanned answers"
            if len(offsets) and (int(offsets[0]) != 0 or bool((np.diff(offsets) < 0).any())):
                return "the derived snippet offsets are out of order"
        return None


def _open_snippets(folder: Path, manifest: dict, load) -> Snippets | None:
    """The generation's snippet spans, or None (written before them, or not matching the
    manifest): then the service analyses each answer it shows, with the same result."""
    if manifest.get("snippets") != SNIPPET_SCAN:
        return None
    parts = []
    try:
        for s in manifest["segments"]:
            starts, ends, terms, offsets, vocab = (load(_snippet_name(s["id"], k)) for k in SNIPPET_KINDS)
            if offsets.shape != (s["docs"] + 1,) or not len(starts) == len(ends) == len(terms) == int(offsets[-1]):
                return None
            parts.append((s["base"], starts, ends, terms, offsets, vocab))
    except (OSError, ValueError):
        return None
    return Snippets(parts)


class Derived:
    """A generation's derived arrays, memory-mapped read-only (shared by every worker
    through the page cache). Document numbers are the Whoosh reader's."""

    def __init__(self, folder: Path, manifest: dict):
        # Plain ndarray views of the maps: np.memmap's subclass hooks cost more than a lookup.
        load = lambda name: np.asarray(np.load(folder / name, mmap_mode="r", allow_pickle=False))  # noqa: E731
        self.fields: tuple[str, ...] = tuple(manifest["fields"])
        self.live: np.ndarray = load(LIVE)
        self.n_all = int(manifest["doc_count_all"])
        self.n = int(manifest["doc_count"])
        self.segments: list[_Segment] = []
        lengths: dict[str, list[np.ndarray]] = {f: [] for f in self.fields}
        for s in manifest["segments"]:
            tables = {}
            for f in self.fields:
                tables[f] = _FieldTable(*(load(_name(s["id"], f, k)) for k in KINDS[:4]))
                lengths[f].append(load(_name(s["id"], f, "len")))
            self.segments.append(_Segment(s["base"], s["docs"], s["deleted"], tables))
        self.documents: Documents | None = None  # None for arrays written before the table
        columns = manifest.get("documents")
        if isinstance(columns, list) and set(OPEN_COLUMNS) <= set(columns):
            parts, positions = [], []
            for s in manifest["segments"]:
                blob, offsets = load(_doc_name(s["id"], "blob")), load(_doc_name(s["id"], "offsets"))
                positions.append(load(_doc_name(s["id"], "position")))
                if offsets.shape != (len(columns), s["docs"] + 1) or len(positions[-1]) != s["docs"] \
                        or (s["docs"] and int(offsets[-1, -1]) > len(blob)):
                    raise ValueError("the document table does not match the manifest")
                parts.append((s["base"], blob, offsets))
            self.documents = Documents(parts, positions[0] if len(positions) == 1 else np.concatenate(positions),
                                       tuple(columns))
        self.snippets = _open_snippets(folder, manifest, load)
        # One segment (a full build): the mapped array itself; several: one small copy.
        self.lengths = {f: (parts[0] if len(parts) == 1 else np.concatenate(parts)) if parts
                        else np.empty(0, dtype=np.float64) for f, parts in lengths.items()}
        if len(self.live) != self.n_all or any(len(v) != self.n_all for v in self.lengths.values()):
            raise ValueError("derived arrays do not match the manifest's document count")

    def _spans(self, field: str, term: str):
        key = term.encode("utf-8")
        for seg in self.segments:
            table = seg.tables[field]
            i = int(np.searchsorted(table.terms, key))
            if i < len(table.terms) and table.terms[i] == key:
                yield seg, table, int(table.offsets[i]), int(table.offsets[i + 1])

    def postings(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Live document numbers (ascending) and term frequencies of one posting list."""
        ids_parts, tf_parts = [], []
        for seg, table, lo, hi in self._spans(field, term):
            ids = table.ids[lo:hi].astype(np.int64) + seg.base
            tf = table.tf[lo:hi].astype(np.float64)
            if seg.deleted:
                keep = self.live[ids]
                ids, tf = ids[keep], tf[keep]
            ids_parts.append(ids)
            tf_parts.append(tf)
        if not ids_parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        if len(ids_parts) == 1:
            return ids_parts[0], tf_parts[0]
        return np.concatenate(ids_parts), np.concatenate(tf_parts)

    def doc_frequency(self, field: str, term: str) -> int:
        """Live documents with ``term`` in ``field``, without reading the postings of
        segments that have no deletions."""
        df = 0
        for seg, table, lo, hi in self._spans(field, term):
            if seg.deleted:
                df += int(np.count_nonzero(self.live[table.ids[lo:hi].astype(np.int64) + seg.base]))
            else:
                df += hi - lo
        return df

    def most_frequent_terms(self, field: str, count: int) -> list[str]:
        """The ``count`` terms of ``field`` with the longest posting lists (all segments)."""
        sizes: dict[bytes, int] = {}
        for seg in self.segments:
            table = seg.tables[field]
            lens = np.diff(table.offsets)
            for i in np.argsort(-lens, kind="stable")[:count]:
                key = bytes(table.terms[i])
                sizes[key] = sizes.get(key, 0) + int(lens[i])
        return [t.decode("utf-8") for t, _ in sorted(sizes.items(), key=lambda kv: -kv[1])[:count]]


def open_derived(folder: Path, ix=None) -> Derived | None:
    """The generation's derived arrays, or None when it has none (built by an older
    version) or they do not describe ``ix``'s segments (then the caller reads Whoosh)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("format") != FORMAT:
        return None
    if ix is not None:
        with ix.reader() as reader:
            listed = [(_segment_id(r), base) for r, base in reader.leaf_readers()]
        if listed != [(s["id"], s["base"]) for s in manifest["segments"]]:
            return None
    try:
        return Derived(folder, manifest)
    except (OSError, ValueError, KeyError):
        return None


def check_derived(folder: Path, ix) -> str | None:
    """Why the derived arrays of a new generation are unusable, or None when they are sound:
    every array present, lengths and offsets consistent, the live count matching Whoosh's."""
    derived = open_derived(folder, ix)
    if derived is None:
        return "the derived arrays are missing or do not list the index's segments"
    with ix.reader() as reader:
        if derived.n != reader.doc_count() or derived.n_all != reader.doc_count_all():
            return "the derived arrays count other documents than the index"
    for seg in derived.segments:
        for field, table in seg.tables.items():
            if len(table.offsets) != len(table.terms) + 1 or int(table.offsets[-1]) != len(table.ids) \
                    or len(table.ids) != len(table.tf):
                return f"the derived posting table of {field} is inconsistent"
            if len(table.ids) and (int(table.ids.max()) >= seg.docs or int(table.ids.min()) < 0):
                return f"the derived posting table of {field} names documents outside its segment"
    if derived.documents is None or "shown" not in derived.documents.column_index:
        return "the derived document table is missing"
    live = np.flatnonzero(derived.live[:1024])
    if len(live):  # a result's row decodes to what results show (else every search would fail)
        try:
            row = json.loads(derived.documents.raw("shown", [int(live[0])])[0])
        except ValueError:
            row = None
        if not isinstance(row, list) or len(row) != len(SHOWN):
            return "the derived document table's result rows do not decode"
    if derived.snippets is None:
        return "the derived snippet spans are missing"
    if (problem := derived.snippets.problem()) is not None:
        return problem
    from indexer.spelltable import check_vocabulary  # it imports this module

    return check_vocabulary(folder)
