"""Split an article's main content into question-answer sections, one per heading.

Pure: a content element in, sections out. A page's headings read like questions, so each
h2–h6 becomes a section whose answer is the text up to the next heading of any level. The
anchor is the one the browser scrolls to (the heading's own ``id``, or that of an anchor
element directly inside it), so that deep links land where the reader expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bs4 import BeautifulSoup
from bs4.element import Comment, Declaration, Doctype, NavigableString, ProcessingInstruction, Tag

from indexer.anchors import find_anchor, heading_text

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
INTRO_ANCHOR = "top"  # browsers scroll to the top for "#top" when no element has that id

# Elements after which the text starts a new paragraph, a new line, or a new table cell.
_PARAGRAPH = {
    "p", "div", "section", "article", "main", "blockquote", "pre", "table", "ul", "ol", "dl",
    "figure", "figcaption", "address", "details", "summary", "hr", "header", "footer", "aside",
    "fieldset", "center",
}
_LINE = {"br", "tr", "dt", "dd", "caption", "thead", "tbody", "tfoot"}
_CELL = {"td", "th"}
_SKIP = {"script", "style", "template", "noscript", "head", "title", "meta", "link"}
_SKIP_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
_WHITESPACE = re.compile(r"\s+")

_BREAK = "\x00P"  # paragraph break marker
_NEWLINE = "\x00L"
_BULLET = "\x00B"
_CELLSEP = "\x00C"


@dataclass
class Link:
    """A link as it stands in the page: ``href`` unresolved, ``text`` its visible text."""

    href: str
    text: str


@dataclass
class Heading:
    """One heading of the article's outline (kept even when it has no text of its own)."""

    level: int
    text: str
    anchor: str


@dataclass
class Section:
    question: str
    answer: str
    anchor: str
    level: int
    breadcrumbs: list[str]
    position: int = 0
    links: list[Link] = field(default_factory=list)
    anchor_generated: bool = False


@dataclass
class SplitResult:
    title: str
    sections: list[Section]
    outline: list[Heading]
    links: list[Link]
    warnings: list[str]


#: Schemes a recorded link may have; anything else (javascript:, vbscript:, data:, file:...)
#: is not a link: its text stays in the answer, the href is dropped.
SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def safe_href(href: str) -> str | None:
    """``href`` as a browser reads it (WHATWG URL parsing: C0 controls and spaces trimmed at
    both ends, tabs and newlines removed anywhere), or None unless it is http(s), mailto,
    tel or a relative reference. Reading it as the browser does is the point: a filter on
    the raw string misses ``java&#x09;script:`` and ``&#x01;javascript:``."""
    cleaned = href.strip(_C0_OR_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
    match = _SCHEME.match(cleaned)
    if match and match.group(1).lower() not in SAFE_SCHEMES:
        return None
    return cleaned


def slugify(text: str) -> str:
    """A URL fragment from heading text, the way CMS table-of-contents plugins make them."""
    text = text.lower().replace("\u2019", "").replace("'", "")
    text = re.sub(r"[^\w\s-]", "", text, flags=re.UNICODE)
    text = re.sub(r"[\s_-]+", "-", text).strip("-")
    return text or "section"


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def heading_anchor(tag: Tag) -> str | None:
    """The fragment a browser scrolls to for this heading, as the page has it (the rules and
    their order: ``indexer.anchors``), or None when the page offers none."""
    found = find_anchor(tag)
    return found[0] if found else None


#: Headings of page furniture: share, related, newsletter, comment and gallery widgets.
#: Such a heading is dropped with its text unless that text is article prose, which then
#: stays with the section above (a "Share this story" bar must not swallow the article).
FURNITURE = re.compile(
    r"^(share( this( (story|article|post|page))?| on \w+)?|sharing( is caring)?|spread the word|"
    r"related( (articles?|posts?|stories|content|reading|links|topics|searches|videos))?|(you )?(may|might) (also )?like|"
    r"more (from|like this|stories|articles)( .*)?|recommended( (for you|reading|articles|stories))?|"
    r"read (more|next)|popular( (posts|articles|stories))?|most (popular|read|viewed)|trending( now)?|"
    r"(sign up for |subscribe to |get )?(our |the )?newsletters?|subscribe|stay (informed|in touch|updated)|"
    r"follow us( on \w+)?|comments?( \(\d+\))?|\d+ (comments?|responses?|replies)|leave a (comment|reply)|"
    r"(post a|add a|join the) (comment|discussion|conversation)|responses?|discussion|"
    r"(photo |image )?gallery|photos?|tags?|categories|about the author|share this:?)$",
    re.I,
)
_PROSE_WORDS = 40  # a furniture heading's text counts as article prose from this many words
_MAX_PROSE_LINK_SHARE = 0.5


def is_furniture(text: str) -> bool:
    """Does the heading name a page widget rather than a part of the article?"""
    return bool(FURNITURE.match(text.strip(" :.!?")))


def _is_prose(answer: str, links: list[Link]) -> bool:
    words = len(re.findall(r"\w+", answer))
    linked = sum(len(re.findall(r"\w+", lk.text)) for lk in links)
    return words >= _PROSE_WORDS and linked <= _MAX_PROSE_LINK_SHARE * words


def render_text(pieces: list[str]) -> str:
    """Join text pieces and structure markers into plain text with paragraphs and bullets."""
    out: list[str] = []
    for piece in pieces:
        if piece == _BREAK:
            out.append("\n\n")
        elif piece == _NEWLINE:
            out.append("\n")
        elif piece == _BULLET:
            out.append("\n- ")
        elif piece == _CELLSEP:
            out.append(" | ")
        else:
            out.append(piece)
    text = "".join(out)
    lines = [_collapse(line) for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    text = re.sub(r"(^|\n)\| ", r"\1", text)
    text = re.sub(r" \|(?=\n|$)", "", text)
    text = re.sub(r"(^|\n)- (?=\n|$)", r"\1", text)
    return text.strip()


class _Builder:
    """Accumulates the walk's output into sections.

    A heading that is not a section of its own (an empty one, or page furniture whose text is
    prose) *continues* the open section: its text joins that section's answer."""

    def __init__(self, title: str):
        self.title = title
        self.sections: list[Section] = []
        self.outline: list[Heading] = []
        self.all_links: list[Link] = []
        self.open: list[Heading] = []  # ancestors of the current heading, by level
        self.question = title
        self.anchor = INTRO_ANCHOR
        self.level = 1
        self.crumbs: list[str] = [title]
        self.pieces: list[str] = []
        self.links: list[Link] = []
        self.generated = False
        self.emitted: Section | None = None  # the section served for the open heading, if any
        self.furniture = ""  # the furniture heading the text since the last heading is under
        self.dropped_furniture: list[str] = []

    def flush(self) -> None:
        answer = render_text(self.pieces)
        furniture, self.furniture = self.furniture, False
        if furniture and not _is_prose(answer, self.links):
            self.dropped_furniture.append(furniture)
            self.all_links[len(self.all_links) - len(self.links):] = []
            self.pieces, self.links = [], []
            return
        if not re.search(r"\w", answer):
            pass  # an answer without a word ("-", "…") is never served
        elif self.emitted is not None:
            self.emitted.answer += "\n\n" + answer
            self.emitted.links.extend(self.links)
        else:
            self.emitted = Section(
                question=self.question or (self.crumbs[-1] if self.crumbs else self.title),
                answer=answer,
                anchor=self.anchor,
                level=self.level,
                breadcrumbs=list(self.crumbs),
                links=self.links,
                anchor_generated=self.generated,
            )
            self.sections.append(self.emitted)
        self.pieces, self.links = [], []

    def start(self, level: int, text: str, anchor: str, generated: bool) -> None:
        self.flush()
        while self.open and self.open[-1].level >= level:
            self.open.pop()
        heading = Heading(level, text, anchor)
        self.outline.append(heading)
        self.crumbs = [self.title] + [h.text for h in self.open if h.text]
        self.open.append(heading)
        self.question, self.anchor, self.level, self.generated = text, anchor, level, generated
        self.emitted = None

    def continue_section(self, furniture: str = "") -> None:
        """A heading that is not a section: its text goes to the open section (or, for
        furniture that is not prose, nowhere)."""
        self.flush()
        self.furniture = furniture


def _heading_text(tag: Tag) -> str:
    return heading_text(tag)


def _title_heading(content: Tag) -> Tag | None:
    """The article's h1: the first one the walk reaches (not inside another heading or a
    skipped element, whose text the walk never visits on its own)."""
    for h1 in content.find_all("h1"):
        parent = h1.parent
        while parent is not None and parent is not content:
            if parent.name in HEADINGS or parent.name in _SKIP:
                break
            parent = parent.parent
        else:
            return h1
    return None


def split(content: Tag | None, title: str = "") -> SplitResult:
    """Sections of ``content`` (the article's main element); ``title`` names the intro."""
    warnings: list[str] = []
    if content is None:
        content = BeautifulSoup("", "lxml")
    h1 = _title_heading(content)
    h1_text = _heading_text(h1) if isinstance(h1, Tag) else ""
    title = _collapse(title) or h1_text or "Untitled"
    builder = _Builder(title)
    # The intro keeps "#top" unless the h1 itself carries an id: a wrapper's id would move
    # the deep links of every existing intro section.
    found = find_anchor(h1, rules=("own-id", "inner-id")) if isinstance(h1, Tag) else None
    intro_anchor = found[0] if found else None
    if intro_anchor:
        builder.anchor = intro_anchor

    used: set[str] = set()  # every fragment the page can scroll to
    for tag in content.find_all(True):
        for attr in ("id", "name") if tag.name == "a" else ("id",):
            value = tag.get(attr)
            if isinstance(value, str) and value.strip():
                used.add(value.strip())
    missing: list[str] = []  # headings whose page offers no target
    duplicate_ids: list[str] = []
    seen_anchors: set[str] = {builder.anchor}

    def unique(base: str) -> str:
        # Never an id that the page really has: deep links to it must land there.
        candidate, n = base, 2
        while candidate in seen_anchors or candidate in used:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    # Iterative walk in document order: (node, leaving) pairs on an explicit stack, so that
    # deeply nested markup cannot exhaust Python's recursion limit.
    stack: list[tuple[object, bool]] = [(child, False) for child in reversed(list(content.children))]
    link_stack: list[tuple[str | None, int]] = []  # (safe href, first piece) of open <a>
    pre_depth = 0  # inside <pre>, line breaks in the source are real
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            if isinstance(node, _SKIP_STRINGS):
                continue
            text = str(node)  # a line break in the source renders as a space, except in <pre>
            builder.pieces.append(text if pre_depth else _WHITESPACE.sub(" ", text))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if leaving:
            if name == "a" and node.get("href"):
                href, start = link_stack.pop()
                if href is not None:
                    text = _collapse("".join(p for p in builder.pieces[start:] if not p.startswith("\x00")))
                    link = Link(href, text)
                    builder.links.append(link)
                    builder.all_links.append(link)
            if name == "pre":
                pre_depth -= 1
            if name in _PARAGRAPH:
                builder.pieces.append(_BREAK)
            elif name in _LINE:
                builder.pieces.append(_NEWLINE)
            elif name in _CELL:
                builder.pieces.append(_CELLSEP)
            continue
        if name in _SKIP:
            continue
        if name in HEADINGS:
            if node is h1:
                continue  # the article title, not a section
            level = max(HEADINGS[name], 2)
            text = _heading_text(node)
            anchor = heading_anchor(node)
            if (not text and anchor is None) or is_furniture(text):
                # Neither words nor a target of its own: its text stays with the section above.
                builder.continue_section(furniture=text)
                continue
            generated = anchor is None
            if anchor is None:
                missing.append(text)
                anchor = unique(slugify(text))
            elif anchor in seen_anchors:
                duplicate_ids.append(anchor)
                anchor = unique(anchor)
            seen_anchors.add(anchor)
            builder.start(level, text, anchor, generated)
            for a in node.find_all("a", href=True):
                href = safe_href(str(a["href"]))
                if href is not None:
                    link = Link(href, _collapse(a.get_text(" ")))
                    builder.links.append(link)
                    builder.all_links.append(link)
            continue
        if name in _PARAGRAPH:
            builder.pieces.append(_BREAK)
        elif name == "li":
            builder.pieces.append(_BULLET)
        elif name == "br":
            builder.pieces.append(_NEWLINE)
            continue
        if name == "pre":
            pre_depth += 1
        if name == "a" and node.get("href"):
            link_stack.append((safe_href(str(node["href"])), len(builder.pieces)))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(list(node.contents)))
    builder.flush()

    for position, section in enumerate(builder.sections):
        section.position = position
    served = {s.anchor for s in builder.sections}
    outline = builder.outline
    for i, heading in enumerate(outline):
        is_parent = i + 1 < len(outline) and outline[i + 1].level > heading.level
        if heading.anchor in served or is_parent:
            continue
        name = heading.text or f"#{heading.anchor}"
        warnings.append(f"heading {name!r} has no text of its own and no sub-headings; skipped")
    if missing:
        shown = ", ".join(repr(t) for t in missing[:5]) + (", …" if len(missing) > 5 else "")
        warnings.append(
            f"{len(missing)} heading(s) have no id; anchors were generated from their text "
            f"(add ids in the CMS so that deep links stay stable): {shown}"
        )
    dropped = [t for t in builder.dropped_furniture if t]
    if dropped:
        warnings.append(f"page furniture headings skipped with their text: {', '.join(map(repr, dropped))}")
    if duplicate_ids:
        warnings.append(f"duplicate heading ids made unique: {', '.join(sorted(set(duplicate_ids)))}")
    if not builder.outline:
        warnings.append("the page has no headings; it is served as a single section")
    return SplitResult(title, builder.sections, builder.outline, builder.all_links, warnings)

