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

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from indexer.corpus import Issue

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
    section: str  # "slug#anchor", anchor decoded
    text: str
    line: int


@dataclass
class Alternates:
    """The parsed file: phrasings in file order and the problems found reading it."""

    phrasings: list[Phrasing] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def by_section(self) -> dict[str, list[str]]:
        """Phrasings per section id, duplicates (case- and space-folded) dropped."""
        out: dict[str, list[str]] = {}
        seen: set[tuple[str, str]] = set()
        for p in self.phrasings:
            key = (p.section, " ".join(p.text.lower().split()))
            if key not in seen:
                seen.add(key)
                out.setdefault(p.section, []).append(p.text)
        return out

    def slugs(self) -> dict[str, dict[str, list[str]]]:
        """``by_section`` grouped by article slug: what an update compares to find the
        articles whose documents change."""
        out: dict[str, dict[str, list[str]]] = {}
        for section, texts in self.by_section().items():
            out.setdefault(section.split("#", 1)[0], {})[section] = texts
        return out


def parse_alternates(text: str) -> Alternates:
    """Phrasings and syntax problems of the file's text (no check that sections exist)."""
    result = Alternates()
    counts: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
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
        section = f"{m.group('slug')}#{unquote(m.group('anchor'))}"
        counts[section] = counts.get(section, 0) + 1
        if counts[section] > MAX_PER_SECTION:
            result.issues.append(Issue(SOURCE, f"line {number}: more than {MAX_PER_SECTION} phrasings for {section}; "
                                       "this one is ignored", "error", "alternates-syntax"))
            continue
        result.phrasings.append(Phrasing(section, phrasing, number))
    return result


def load_alternates(path: Path) -> Alternates:
    """The file at ``path`` parsed; a missing file is an empty one, an unreadable or
    oversized one an issue (never a crash: the articles still get indexed)."""
    if not path.is_file():
        return Alternates()
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return Alternates(issues=[Issue(SOURCE, f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte cap; "
                                            "no phrasing was read", "error", "too-large")])
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return Alternates(issues=[Issue(SOURCE, f"cannot read the file: {exc.strerror}", "error", "unreadable")])
    except UnicodeDecodeError:
        return Alternates(issues=[Issue(SOURCE, "the file is not UTF-8 text; no phrasing was read", "error",
                                        "encoding")])
    return parse_alternates(text)


def unknown_sections(alternates: Alternates, known: Iterable[str]) -> list[Issue]:
    """An error per phrasing whose section id names no section of the corpus."""
    known = set(known)
    return [Issue(SOURCE, f"line {p.line}: no section {p.section} in the corpus; the phrasing {p.text!r} "
                  "is not indexed", "error", "unknown-section")
            for p in alternates.phrasings if p.section not in known]
