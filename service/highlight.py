"""Highlighting: the passage of an answer shown as a result's snippet, and marked prefixes
in suggestions. Output is HTML in which every character is escaped except ``<mark>``."""

from __future__ import annotations

import html
import re
from bisect import bisect_left, bisect_right
from functools import lru_cache
from itertools import compress, repeat

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

SNIPPET_SCAN = 6000

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
    matches = term_matches(scanned, terms)[:200] if terms else []
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

