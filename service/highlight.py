"""Highlighting: the passage of an answer shown as a result's snippet, and marked prefixes
in suggestions. Output is HTML in which every character is escaped except ``<mark>``."""

from __future__ import annotations

import html
import re
from bisect import bisect_left, bisect_right
from functools import lru_cache

from indexer.schema import matching_spans, words

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

SNIPPET_SCAN = 6000


def _window(text: str, start: int, end: int, chars: int) -> tuple[int, int]:
    """About ``chars`` characters around the match at start:end, cut at spaces."""
    ws = max(0, start - chars // 4)
    if ws > 0:
        space = text.find(" ", ws, start)
        ws = space + 1 if space != -1 else start
    we = min(len(text), ws + chars)
    if we < len(text):
        space = text.rfind(" ", end, we)
        we = space if space != -1 else max(we, end)
    return ws, we


def make_snippet(answer: str, terms: frozenset[str], chars: int = 240) -> str:
    """The answer's passage of about ``chars`` characters that holds the most distinct query
    terms (then the most matches, then the earliest), HTML-escaped, with the matched words —
    and only those — in <mark>.

    Whoosh's highlighter gives the same kind of passage but builds a Token object per word
    of the answer: it was 90% of a search's time on MedQuAD. This analyses each distinct word
    of the answer once, with the index's own cached word analysis.
    """
    # Long answers (MedQuAD's run to 27,000 characters) are searched for a passage only in
    # their first SNIPPET_SCAN characters, which bounds the cost of a result.
    scanned = answer[:SNIPPET_SCAN]
    matches = matching_spans(scanned, terms)[:200] if terms else []
    if not matches:
        cut = answer[:chars]
        if len(answer) > chars:
            cut = cut.rsplit(" ", 1)[0] + " …"
        return html.escape(cut)
    # Matches are in text order and do not overlap, so those inside a window are a slice.
    starts = [m[0] for m in matches]
    ends = [m[1] for m in matches]
    best = None
    for start, end, _ in matches:
        ws, we = _window(answer, start, end, chars)
        lo, hi = bisect_left(starts, ws), bisect_right(ends, we)
        inside = matches[lo:hi]
        key = (len({t for _, _, t in inside}), len(inside), -start)
        if best is None or key > best[0]:
            best = (key, ws, we, inside)
    _, window_start, window_end, inside = best
    out = ["… " if window_start > 0 else ""]
    pos = window_start
    for start, end, _ in inside:
        out.append(html.escape(answer[pos:start]))
        out.append(f"<mark>{html.escape(answer[start:end])}</mark>")
        pos = end
    out.append(html.escape(answer[pos:window_end]))
    out.append(" …" if window_end < len(answer) else "")
    return "".join(out)

