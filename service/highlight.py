"""Highlighting: the passage of an answer shown as a result's snippet, and marked prefixes
in suggestions. Output is HTML in which every character is escaped except ``<mark>``.

A snippet needs where the query's terms occur in the answer: a generation records, at build
time, where every word of each answer is and its term (``indexer.derived``), so the request
path analyses no answer (that was most of a search's time, and all the more on a fresh
worker whose word caches are cold); ``make_snippet`` finds them by analysing the answer, for
a generation without those spans and as the reference the tests compare with."""

from __future__ import annotations

import html
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import lru_cache
from itertools import compress, repeat

import numpy as np

from indexer import derived
from indexer.schema import _TOKEN_PATTERN, _analyse_word, words

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

SNIPPET_SCAN = derived.SNIPPET_SCAN  # the build records the spans of this much of each answer
MAX_MATCHES = 200  # of the scanned answer's matches, the first this many are weighed
FEW_MATCHES = 100  # up to this many, weighing each window in Python beats array set-up

_WORD = re.compile(_TOKEN_PATTERN)
# The apostrophes that join words into one token: the character class of the index's pattern.
_JOINERS = _TOKEN_PATTERN.split("(?:[", 1)[1].split("]", 1)[0]
# Where a token of _WORD starts and ends: not inside a word, nor across a joining apostrophe.
_TOKEN_START = rf"(?<!\w)(?<!\w[{_JOINERS}])"
_TOKEN_END = rf"(?!\w)(?![{_JOINERS}]\w)"
_TERM_OF: dict[str, str | None] = {}  # surface word → index term (None for a stop word)
_TERM_CACHE_MAX = 200_000


def _term_of(word: str) -> str | None:
    term = _TERM_OF.get(word, "")
    if term == "":
        text, stopped = _analyse_word(word, True)
        term = None if stopped or not text else text
        if len(_TERM_OF) < _TERM_CACHE_MAX:
            _TERM_OF[word] = term
    return term


# A token starting at a given position: matched there, its end says whether the word found
# at that position is the whole token (the pattern is greedy, so it ends only where a token does).
_TOKEN_AT = re.compile(f"{_TOKEN_START}(?:{_TOKEN_PATTERN})")


def term_matches(text: str, terms: frozenset[str]) -> list[tuple[int, int, str]]:
    """``[span for span in indexer.schema.term_spans(text) if span[2] in terms]`` (tested),
    in C where it counts: the distinct words are found by one ``findall`` and looked up in
    a dict, and only the wanted words are located, by ``str.find``, each hit kept where a
    token starts and ends there (a Python loop over every word of the answer was half of a
    search's time; a regular expression of the wanted words, compiled per answer, a third)."""
    distinct = list(set(_WORD.findall(text)))
    found = list(map(_TERM_OF.get, distinct, repeat("")))
    if "" in found:  # words not seen before
        found = [t if t != "" else _term_of(w) for w, t in zip(distinct, found, strict=True)]
    if terms.isdisjoint(found):
        return []
    out = []
    match_at = _TOKEN_AT.match
    for word, term in zip(compress(distinct, map(terms.__contains__, found)),
                          compress(found, map(terms.__contains__, found)), strict=True):
        n = len(word)
        i = text.find(word)
        while i != -1:
            m = match_at(text, i)
            if m is not None and m.end() == i + n:
                out.append((i, i + n, term))
            i = text.find(word, i + n if m is not None and m.end() == i + n else i + 1)
    out.sort()
    return out


def make_snippet(answer: str, terms: frozenset[str], chars: int = 240) -> str:
    """The answer's passage of about ``chars`` characters that holds the most distinct query
    terms (then the most matches, then the earliest), HTML-escaped, with the matched words —
    and only those — in <mark>.

    Whoosh's highlighter gives the same kind of passage but builds a Token object per word
    of the answer: it was 90% of a search's time on MedQuAD. This analyses each distinct word
    of the answer once, with the index's own cached word analysis; ``snippet_from_matches``
    takes the spans a generation recorded at build time instead (``indexer.derived``).
    """
    # Long answers (MedQuAD's run to 27,000 characters) are searched for a passage only in
    # their first SNIPPET_SCAN characters, which bounds the cost of a result.
    matches = term_matches(answer[:SNIPPET_SCAN], terms)[:MAX_MATCHES] if terms else []
    return snippet_from_matches(answer, [m[0] for m in matches], [m[1] for m in matches],
                                [m[2] for m in matches], chars)


def snippet_from_matches(answer: str, starts: Sequence[int], ends: Sequence[int], keys: Sequence,
                         chars: int = 240) -> str:
    """``make_snippet`` from the matched words' spans (in text order, the first
    ``MAX_MATCHES`` of the scanned answer) and a key per span telling their terms apart."""
    if not len(starts):
        cut = answer[:chars]
        if len(answer) > chars:
            cut = cut.rsplit(" ", 1)[0] + " …"
        return html.escape(cut)
    if len(starts) > FEW_MATCHES:
        window_start, window_end, lo, hi = _best_window_arrays(answer, starts, ends, keys, chars)
        starts, ends = starts[lo:hi], ends[lo:hi]
        starts, ends = (starts.tolist(), ends.tolist()) if isinstance(starts, np.ndarray) else (starts, ends)
    else:
        starts, ends, keys = (v.tolist() if isinstance(v, np.ndarray) else list(v) for v in (starts, ends, keys))
        window_start, window_end, lo, hi = _best_window(answer, starts, ends, keys, chars)
        starts, ends = starts[lo:hi], ends[lo:hi]
    # The window with a control character around each match, escaped in one call, then the
    # controls made <mark> tags: the same text as escaping piece by piece, unless the answer
    # holds those controls itself.
    pieces = []
    pos = window_start
    for start, end in zip(starts, ends, strict=True):
        pieces += (answer[pos:start], "\x00", answer[start:end], "\x01")
        pos = end
    pieces.append(answer[pos:window_end])
    raw = "".join(pieces)
    if raw.count("\x00") == len(starts) and "\x01" not in answer[window_start:window_end]:
        marked = html.escape(raw).replace("\x00", "<mark>").replace("\x01", "</mark>")
    else:
        marked = "".join(html.escape(p) if i % 4 != 2 else f"<mark>{html.escape(p)}</mark>"
                         for i, p in enumerate(pieces) if i % 2 == 0)
    return ("… " if window_start > 0 else "") + marked + (" …" if window_end < len(answer) else "")


def _best_window(answer: str, starts: list[int], ends: list[int], keys: list,
                 chars: int) -> tuple[int, int, int, int]:
    """(window start, window end, first match inside, last + 1) of the best window, the one
    holding the most distinct terms, then the most matches, then the earliest. A match's
    window is about ``chars`` characters cut at spaces: it starts after the first space in
    [start − chars // 4, start) (else at the match, or at 0) and ends at the last space in
    [end, window start + chars) (else there, or at the match's end)."""
    n, quarter = len(answer), chars // 4
    find, rfind = answer.find, answer.rfind
    best = (0, 0, 0)
    found = (0, 0, 0, 0)
    for start, end in zip(starts, ends, strict=True):
        ws = start - quarter
        if ws > 0:
            space = find(" ", ws, start)
            ws = space + 1 if space != -1 else start
        else:
            ws = 0
        we = ws + chars
        if we < n:
            space = rfind(" ", end, we)
            we = space if space != -1 else max(we, end)
        else:
            we = n
        # Matches are in text order and do not overlap, so those inside a window are a slice.
        lo, hi = bisect_left(starts, ws), bisect_right(ends, we)
        if hi - lo < best[0]:
            continue  # fewer matches than the best's distinct terms: it cannot win
        key = (len(set(keys[lo:hi])) if hi - lo > 1 else 1, hi - lo, -start)
        if key > best:
            best, found = key, (ws, we, lo, hi)
    return found


def _best_window_arrays(answer: str, starts: Sequence[int], ends: Sequence[int], keys: Sequence,
                        chars: int) -> tuple[int, int, int, int]:
    """``_best_window`` in a few array operations, for answers with many matches."""
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    n = len(answer)
    # The spaces the windows can be cut at: windows start before the last match (within
    # SNIPPET_SCAN) and are at most ``chars`` long.
    head = answer[:int(s[-1]) + chars + 1].encode("utf-32-le", "surrogatepass")  # a code point each
    spaces = np.flatnonzero(np.frombuffer(head, dtype=np.uint32) == 32)
    # As _best_window: the first space in [start - chars // 4, start), else the match itself, or 0.
    ws = np.maximum(s - chars // 4, 0)
    at = np.searchsorted(spaces, ws)
    space = spaces[np.minimum(at, len(spaces) - 1)] if len(spaces) else np.full(len(s), n)
    found = (at < len(spaces)) & (space < s)
    ws = np.where(ws > 0, np.where(found, space + 1, s), 0)
    # ... and it ends at the last space in [end, ws + chars), else at ws + chars or the match's end.
    we = np.minimum(ws + chars, n)
    at = np.searchsorted(spaces, we) - 1
    space = spaces[np.maximum(at, 0)] if len(spaces) else np.full(len(s), -1)
    found = (at >= 0) & (space >= e)
    we = np.where(we < n, np.where(found, space, np.maximum(we, e)), we)
    lo = np.searchsorted(s, ws, "left")
    hi = np.searchsorted(e, we, "right")
    # Distinct terms per window [lo, hi): per term, whether its running count grows there.
    _, term = np.unique(np.asarray(keys), return_inverse=True)
    running = np.zeros((int(term.max()) + 1, len(s) + 1), dtype=np.int32)
    running[term, np.arange(1, len(s) + 1)] = 1
    np.cumsum(running, axis=1, out=running)
    distinct = np.count_nonzero(running[:, hi] > running[:, lo], axis=0)
    rank = (distinct << 40) + ((hi - lo) << 20) + ((1 << 20) - 1 - s)  # starts < 2**20
    i = int(np.argmax(rank))
    return int(ws[i]), int(we[i]), int(lo[i]), int(hi[i])
