"""Alternate phrasings: editors' ``corpus/alternates.txt``, visitors' own words attached to an answer.

The loop it closes: ``faq-index report`` lists what visitors searched and did not find, in
this file's format; an editor checks each line, pastes it here, and the next ``update``
indexes the phrasing with its section (the schema's ``alternates`` field, searched and
suggested, never shown as the answer). One phrasing a line::

    # comments and blank lines are ignored
    goals-of-psychotherapy#what-is-psychotherapy: what does a shrink do

The section id is the one the API returns (``slug#anchor``; an anchor may be written
percent-encoded, as in a URL). Parsing is pure; whether each id exists is checked against
the sections a build or ``faq-index validate`` found (``unknown_sections``).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from indexer.corpus import Issue, outside_corpus

ALTERNATES = "alternates.txt"
SOURCE = ALTERNATES  # how its issues name it

#: Bounds that keep one file from bloating the index: a phrasing is a question, not an article.
MAX_PHRASING_CHARS = 200
MAX_PER_SECTION = 50
MAX_FILE_BYTES = 1_000_000

# The id ends at the first ":" followed by a space (anchors may hold ":"), else at the first ":".
_LINE = re.compile(r"^(?P<slug>[^\s#:]+)#(?P<anchor>\S+?)\s*:(?:\s+|$)(?P<text>.*)$")
_LINE_TIGHT = re.compile(r"^(?P<slug>[^\s#:]+)#(?P<anchor>[^\s:]+)\s*:(?P<text>.*)$")


@dataclass(frozen=True)
class Phrasing:
    section: str  # "slug#anchor" as written
    text: str
    line: int

    @property
    def sections(self) -> tuple[str, ...]:
        """The ids it may name: as written and, when that differs, percent-decoded (an anchor
        copied from a URL); an id holding a literal "%41" is still found as written."""
        slug, anchor = self.section.split("#", 1)
        decoded = f"{slug}#{unquote(anchor)}"
        return (self.section,) if decoded == self.section else (self.section, decoded)


@dataclass
class Alternates:
    """The parsed file: phrasings in file order and the problems found reading it."""

    phrasings: list[Phrasing] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    data: bytes | None = None  # the file's bytes as read: what the generation keeps

    def by_section(self) -> dict[str, list[str]]:
        """Phrasings per section id (as written, and percent-decoded when that differs),
        duplicates (case- and space-folded) dropped."""
        out: dict[str, list[str]] = {}
        seen: set[tuple[str, str]] = set()
        for p in self.phrasings:
            for section in p.sections:
                key = (section, " ".join(p.text.lower().split()))
                if key not in seen:
                    seen.add(key)
                    out.setdefault(section, []).append(p.text)
        return out

    def slugs(self) -> dict[str, dict[str, list[str]]]:
        """``by_section`` grouped by article slug: what an update compares to find the
        articles whose documents change."""
        out: dict[str, dict[str, list[str]]] = {}
        for section, texts in self.by_section().items():
            out.setdefault(section.split("#", 1)[0], {})[section] = texts
        return out


def _clean(text: str) -> str:
    """Control and format characters (NUL, escapes, line separators) become spaces."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)


def parse_alternates(text: str) -> Alternates:
    """Phrasings and syntax problems of the file's text (no check that sections exist).
    Lines end at "\n" only: a Unicode line separator inside a phrasing is a space."""
    result = Alternates()
    counts: dict[str, int] = {}
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = _clean(raw).strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line) or _LINE_TIGHT.match(line)
        if m is None:
            result.issues.append(Issue(SOURCE, f"line {number}: expected `slug#anchor: phrasing`, got {line[:80]!r}",
                                       "error", "alternates-syntax"))
            continue
        phrasing = " ".join(m.group("text").split())
        if not phrasing:
            result.issues.append(Issue(SOURCE, f"line {number}: no phrasing after the section id", "error",
                                       "alternates-syntax"))
            continue
        if len(phrasing) > MAX_PHRASING_CHARS:
            result.issues.append(Issue(SOURCE, f"line {number}: the phrasing has {len(phrasing)} characters, over "
                                       f"the {MAX_PHRASING_CHARS} allowed", "error", "alternates-syntax"))
            continue
        section = f"{m.group('slug')}#{m.group('anchor')}"
        counts[section] = counts.get(section, 0) + 1
        if counts[section] > MAX_PER_SECTION:
            result.issues.append(Issue(SOURCE, f"line {number}: more than {MAX_PER_SECTION} phrasings for {section}; "
                                       "this one is ignored", "error", "alternates-syntax"))
            continue
        result.phrasings.append(Phrasing(section, phrasing, number))
    return result


def read_side_file(corpus_dir: Path, name: str, max_bytes: int) -> tuple[bytes | None, list[Issue]]:
    """The bytes of an editors' file beside the articles (``alternates.txt``, ``synonyms.txt``),
    read once — what is parsed is what the generation keeps — under the corpus's rules: a
    link out of the corpus is refused, and the size is capped while reading (a file in /proc
    reports 0 bytes). None when there is no such file."""
    path = Path(corpus_dir) / name
    if not os.path.lexists(path):
        return None, []
    outside = outside_corpus(path, Path(corpus_dir).resolve())
    if outside is not None:
        return None, [Issue(name, f"links outside the corpus folder (to {outside}); not read", "error",
                            "outside-corpus")]
    real = path.resolve()
    if not real.is_file():
        return None, [Issue(name, "is not a regular file; not read", "error", "not-a-file")]
    try:
        with open(real, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return None, [Issue(name, f"cannot read the file: {exc.strerror}", "error", "unreadable")]
    if len(data) > max_bytes:
        return None, [Issue(name, f"file is over the {max_bytes:,}-byte cap; not read", "error", "too-large")]
    return data, []


def load_alternates(corpus_dir: Path) -> Alternates:
    """The corpus's ``alternates.txt`` parsed, its bytes in ``data``; a missing file is an
    empty one, an unreadable, oversized or outside one an issue (the articles still get
    indexed)."""
    data, issues = read_side_file(corpus_dir, ALTERNATES, MAX_FILE_BYTES)
    if data is None:
        return Alternates(issues=issues)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Alternates(issues=[Issue(SOURCE, "the file is not UTF-8 text; no phrasing was read", "error",
                                        "encoding")])
    parsed = parse_alternates(text)
    parsed.data = data
    return parsed


def unknown_sections(alternates: Alternates, known: Iterable[str]) -> list[Issue]:
    """An error per phrasing whose section id names no section of the corpus."""
    known = set(known)
    return [Issue(SOURCE, f"line {p.line}: no section {p.section} in the corpus; the phrasing {p.text!r} "
                  "is not indexed", "error", "unknown-section")
            for p in alternates.phrasings if not known.intersection(p.sections)]
