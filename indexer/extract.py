"""Main-content extraction for the site's HTML articles (page metadata: ``indexer.metadata``).

Why this module exists: the indexer must index what an article *says*, not the site chrome
around it (menus, cookie banners, share buttons, sidebars, footers). Indexing chrome makes
every page match "contact", "privacy" or "newsletter" queries and dilutes the real text.

How the content element is found (first plausible wins; ``Extraction.method`` says which):

1. ``selector``  - a CSS selector set by the editor (``FAQ_CONTENT_SELECTOR``).
2. ``article``   - the ``<article>`` holding the article's text.
3. ``main``      - ``<main>``; 4. ``role-main`` - ``[role=main]``.
5. ``cms-class`` - common CMS containers (``.entry-content``, ``#content``, ...).
6. ``density``   - a Readability-like scoring of paragraph parents by text length, commas,
   link density and class/id hints, joined with related siblings.
7. ``body``      - the whole ``<body>`` when nothing else is found.

A semantic container (2-5) is taken only when it plausibly holds the article: it must contain
(or hold most of) the text that density scoring finds, must not be mostly links, and must not
be a page-wide wrapper with much more text than that. Inside the chosen
element chrome is dropped (nav, footer, aside, forms, hidden elements, share/cookie/related/
comments widgets recognised by class or id, ...). Heading ids, inner ``<a id/name>`` anchors
and link ``href`` values are kept so that sections can be linked to. The article's ``<h1>``
stays inside the content, as does a ``<header>`` that wraps a heading.

Everything here is a pure function of the HTML (no I/O) and never raises.
"""

from __future__ import annotations

import re
import warnings as _warnings
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from bs4 import (
    BeautifulSoup,
    Comment,
    MarkupResemblesLocatorWarning,
    NavigableString,
    Tag,
    UnicodeDammit,
    XMLParsedAsHTMLWarning,
)
from bs4.element import CData, Declaration, Doctype, PageElement, ProcessingInstruction

from indexer.metadata import METADATA_KEYS, attr_str, choose_title, first_time, norm, read_metadata

__all__ = ["Extraction", "extract", "extract_text"]

# Odd input (an XML feed, a string that looks like a URL) is handled like any page; bs4's
# advice to use another parser is noise here.
_warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
_warnings.filterwarnings("ignore", category=MarkupResemblesLocatorWarning)


@dataclass
class Extraction:
    """Result of :func:`extract`: the main content element plus page metadata."""

    content: Tag
    title: str
    description: str
    canonical: str | None
    published: str | None
    modified: str | None
    lang: str | None
    method: str
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- vocabulary

_JUNK_TAGS = frozenset(
    "script style noscript template iframe svg object embed applet canvas link meta "
    "button input select textarea option datalist dialog".split()
)
_CHROME_TAGS = frozenset("nav footer aside form menu".split())
_BLOCK_TAGS = frozenset(
    "address article aside blockquote dd details dialog div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table ul".split()
)
# Readability: a <div> without these descendants reads as a paragraph.
_DIV_TO_P = frozenset("blockquote dl div img ol p pre table ul section article".split())
_PHRASING = frozenset(
    "a abbr b bdi bdo big br cite code data del dfn em font i img ins kbd label mark q ruby "
    "s samp small span strike strong sub sup time tt u var wbr".split()
)
_SCORE_TAGS = frozenset(("p", "pre", "td"))
_DIV_LIKE = frozenset("div section article main blockquote body font center".split())
_RE_AD_WORDS = re.compile(
    r"(?i)ad(vertising|vertisement)?|pub(licité)?|werb(ung)?|广告|Реклама|Anuncio"
)

_RE_UNLIKELY = re.compile(
    r"-ad-|ai2html|banner|breadcrumbs|combx|comment|community|cover-wrap|disqus|extra|footer|"
    r"gdpr|header|legends|menu|related|remark|replies|rss|shoutbox|sidebar|skyscraper|social|"
    r"sponsor|supplemental|ad-break|agegate|pagination|pager|popup|yom-remote",
    re.I,
)
_RE_MAYBE = re.compile(r"and|article|body|column|content|main|mathjax|shadow", re.I)
_RE_POSITIVE = re.compile(
    r"article|body|content|entry|hentry|h-entry|main|page|pagination|post|text|blog|story", re.I
)
_RE_NEGATIVE = re.compile(
    r"-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|footer|gdpr|"
    r"masthead|media|meta|outbrain|promo|related|scroll|share|shoutbox|sidebar|skyscraper|"
    r"sponsor|shopping|tags|widget",
    re.I,
)
_UNLIKELY_ROLES = frozenset(
    "menu menubar complementary navigation alert alertdialog dialog banner contentinfo".split()
)
# Inside the chosen content a role="alert" box is kept: it may be a crisis-line notice.
_CHROME_ROLES = _UNLIKELY_ROLES - {"alert"}
_RE_COMMAS = re.compile("[,\u060c\ufe50\ufe10\ufe11\u2e41\u2e34\u2e32\uff0c]")
_RE_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)

# Widgets recognised by class/id. A class or id is split on non-alphanumerics into parts
# ("jp-relatedposts" -> "jp", "relatedposts"); it names a widget when a part starts with one
# of the prefixes or equals one of the exact words below. Three strengths:
#   strong  - always chrome ("comments-area", "newsletter-box", "sidebar", "breadcrumbs");
#   topical - may also name a real topic ("social-anxiety", "informed-consent", "cookie-policy"),
#             so chrome only when the element is mostly links or has no real paragraphs
#             (a cookie banner, a row of share buttons, a list of related links);
#   meta    - bylines, dates and tag lists: chrome when short.
# "widget" and "ad" count only as the first part, so that content wrappers such as
# "elementor-widget-container" or "load-ad" survive.
_WIDGET_WORDS: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    (
        "strong",
        (
            "newsletter", "subscri", "comment", "disqus", "breadcrumb", "sidebar", "advert",
            "popup", "pagination", "outbrain", "taboola", "sponsor",
        ),
        frozenset("respond promo promos modal pager skip skiplink".split()),
    ),
    (
        "topical",
        (
            "share", "sharing", "social", "related", "sns", "tweet", "twitter", "facebook",
            "cookie", "gdpr",
        ),
        frozenset(("consent",)),
    ),
    (
        "meta",
        ("byline", "dateline", "timestamp", "pubdate"),
        frozenset("author authors date dates posted meta tags credit credits copyright".split()),
    ),
)
_NOT_WIDGET_PARTS = frozenset(("commentary",))
_WIDGET_HEAD_WORDS = frozenset("widget widgets ad ads".split())
# A class starting with one of these describes a state of the element ("has-sidebar").
_STATE_PREFIXES = frozenset("has no with without is show hide enable enabled disable allow".split())
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())

# Common CMS content containers, most specific first: (attribute, value). Class, itemprop and
# data-elementor-type values match one token of the attribute, ids the whole id
# (case-insensitive).
_CMS_CONTAINERS = (
    ("itemprop", "articlebody"),
    ("data-elementor-type", "wp-post"),
    ("data-elementor-type", "wp-page"),
    ("data-elementor-type", "single-post"),
    ("data-elementor-type", "single-page"),
    ("class", "entry-content"),
    ("class", "post-content"),
    ("class", "article-body"),
    ("class", "article-content"),
    ("class", "articlebody"),
    ("class", "post-body"),
    ("class", "story-body"),
    ("class", "page-content"),
    ("class", "td-post-content"),
    ("class", "single-content"),
    ("class", "blog-post"),
    ("class", "hentry"),
    ("id", "article"),
    ("id", "content"),
    ("id", "main-content"),
    ("id", "main"),
    ("class", "post"),
    ("class", "content"),
)



# --------------------------------------------------------------------------- helpers




# Page builders put their framework classes on every block ("elementor-widget-text-editor",
# "wp-block-group"); they say nothing about whether a block is content, and words such as
# "widget" in them would make Readability's class hints penalise the article itself.
_BUILDER_PREFIXES = ("elementor", "wp-block", "et_pb", "et-pb", "fl-", "vc_", "wpb_", "sqs-")


def _hint_classes(tag: Tag) -> str:
    classes = tag.attrs.get("class") if tag.attrs else None
    if not classes:
        return ""
    if isinstance(classes, str):
        classes = classes.split()
    return " ".join(c for c in classes if not str(c).lower().startswith(_BUILDER_PREFIXES))


def _match_string(tag: Tag) -> str:
    return _hint_classes(tag) + " " + attr_str(tag, "id")


def _class_weight(tag: Tag) -> int:
    """Readability's class/id hint: +25 for content-like names, -25 for chrome-like."""
    weight = 0
    for value in (_hint_classes(tag), attr_str(tag, "id")):
        if value:
            if _RE_NEGATIVE.search(value):
                weight -= 25
            if _RE_POSITIVE.search(value):
                weight += 25
    return weight


def _text(tag: Tag) -> str:
    return norm(tag.get_text(" "))


def _is_hidden(tag: Tag) -> bool:
    attrs = tag.attrs
    if not attrs:
        return False
    hidden = attrs.get("hidden")
    if hidden is not None:
        # hidden="until-found" is collapsed but searchable text (accordions, FAQ answers).
        return str(hidden).strip().lower() != "until-found"
    if str(attrs.get("aria-hidden", "")).strip().lower() == "true":
        return "fallback-image" not in attr_str(tag, "class")
    style = attrs.get("style")
    return bool(style) and bool(_RE_HIDDEN_STYLE.search(str(style)))


def _parts(value: str) -> list[str]:
    return [p for p in re.split(r"[^a-z0-9]+", value.lower()) if p]


def _widget_word(tag: Tag) -> tuple[str, str] | None:
    """(strength, word) of the widget word that a class or the id of ``tag`` carries."""
    names = list(tag.attrs.get("class") or []) if tag.attrs else []
    ident = attr_str(tag, "id")
    if ident:
        names.append(ident)
    for name in names:
        parts = _parts(str(name))
        if not parts or parts[0] in _STATE_PREFIXES:
            continue
        if parts[0] in _WIDGET_HEAD_WORDS:
            return "strong", parts[0]
        for part in parts:
            if part in _NOT_WIDGET_PARTS:
                continue
            for strength, prefixes, exact in _WIDGET_WORDS:
                if part in exact or part.startswith(prefixes):
                    return strength, part
    return None


def _iter_tags(root: Tag) -> list[Tag]:
    """Tags under ``root`` in document order (a snapshot, safe to mutate while iterating)."""
    return [t for t in root.descendants if isinstance(t, Tag)]


def _in_table_or_code(tag: Tag) -> bool:
    return any(parent.name in ("table", "code", "pre") for parent in tag.parents)


# --------------------------------------------------------------------------- parsing


def _decode(data: bytes, warnings: list[str]) -> str:
    try:
        dammit = UnicodeDammit(data, is_html=True)
        if dammit.unicode_markup is not None:
            if dammit.contains_replacement_characters:
                warnings.append(
                    f"some bytes are not valid {dammit.original_encoding}; replaced them"
                )
            return dammit.unicode_markup
    except Exception as exc:  # pragma: no cover - defensive
        warnings.append(f"encoding detection failed: {exc!r}")
    warnings.append("could not detect the encoding; decoded as UTF-8 with replacements")
    return data.decode("utf-8", "replace")


def _parse(html: str | bytes, warnings: list[str]) -> BeautifulSoup:
    if isinstance(html, (bytes, bytearray, memoryview)):
        text = _decode(bytes(html), warnings)
    elif isinstance(html, str):
        text = html
    else:
        warnings.append(f"unsupported input type {type(html).__name__}; treated as empty")
        text = ""
    # lxml rejects NUL and most C0 controls in text; they carry no content anyway.
    text = re.sub(r"[\x00-\x08\x0b\x0e-\x1f\x7f]", "", text)
    return BeautifulSoup(text, "lxml")


def _empty_content() -> Tag:
    soup = BeautifulSoup("", "lxml")
    div = soup.new_tag("div")
    soup.append(div)
    return div


def _own_tree(nodes: list[Tag], wrap: bool) -> Tag:
    """Move ``nodes`` into a fresh BeautifulSoup tree and return the content element."""
    soup = BeautifulSoup("", "lxml")
    if not wrap and len(nodes) == 1:
        node = nodes[0].extract()
        soup.append(node)
        return node
    div = soup.new_tag("div")
    soup.append(div)
    for node in nodes:
        div.append(node.extract())
    return div



# --------------------------------------------------------------------------- pre-cleaning


def _remove_all(nodes: list[PageElement]) -> None:
    """Detach ``nodes`` from their trees; linear even for thousands of siblings (bs4's own
    ``extract()`` looks each element up in its parent's list)."""
    by_parent: dict[int, tuple[Tag, set[int]]] = {}
    for node in nodes:
        parent = node.parent
        if parent is not None:
            by_parent.setdefault(id(parent), (parent, set()))[1].add(id(node))
    for parent, ids in by_parent.values():
        contents = parent.contents
        for index in range(len(contents) - 1, -1, -1):
            if id(contents[index]) in ids:
                contents[index].extract(_self_index=index)


def _preclean(soup: BeautifulSoup) -> None:
    """Remove what is never content: scripts, styles, comments, hidden elements, ..."""
    victims: list[PageElement] = []
    stack: list[PageElement] = [soup]
    while stack:
        node = stack.pop()
        if isinstance(node, Tag):
            name = node.name
            if node is not soup and (
                name in _JUNK_TAGS
                or (name not in ("html", "body") and _is_hidden(node))
            ):
                victims.append(node)
                continue
            stack.extend(node.contents)
        elif isinstance(node, (Comment, CData, ProcessingInstruction, Declaration)) and not (
            isinstance(node, Doctype)
        ):
            victims.append(node)
    _remove_all(victims)


# --------------------------------------------------------------------------- statistics


class _Stats:
    """Per-tag text length, link text length and comma count, computed in one pass."""

    def __init__(self, root: Tag, skip: Container[int] = ()) -> None:
        self.text: dict[int, int] = {}
        self.link: dict[int, float] = {}
        self.commas: dict[int, int] = {}
        # iterative post-order traversal
        stack: list[tuple[Tag, bool]] = [(root, False)]
        while stack:
            tag, done = stack.pop()
            key = id(tag)
            if done:
                total = link = commas = 0
                for child in tag.contents:
                    if isinstance(child, Tag):
                        ck = id(child)
                        if ck in skip:
                            continue
                        total += self.text.get(ck, 0)
                        link += self.link.get(ck, 0)
                        commas += self.commas.get(ck, 0)
                    elif type(child) is NavigableString:
                        s = str(child)
                        n = len(norm(s))
                        total += n + (1 if n and s[-1:].isspace() else 0)
                        commas += len(_RE_COMMAS.findall(s))
                if tag.name == "a":
                    href = attr_str(tag, "href").strip()
                    link = total * (0.3 if href.startswith("#") else 1.0)
                self.text[key] = total
                self.link[key] = link
                self.commas[key] = commas
            else:
                stack.append((tag, True))
                for child in tag.contents:
                    if isinstance(child, Tag) and id(child) not in skip:
                        stack.append((child, False))

    def length(self, tag: Tag) -> int:
        return self.text.get(id(tag), 0)

    def density(self, tag: Tag) -> float:
        total = self.text.get(id(tag), 0)
        return min(1.0, self.link.get(id(tag), 0) / total) if total else 0.0


# --------------------------------------------------------------------------- density


def _unlikely(soup: BeautifulSoup) -> dict[int, Tag]:
    """Subtrees (by id) that Readability would strip as unlikely candidates."""
    skip: dict[int, Tag] = {}
    for tag in _iter_tags(soup):
        if tag.name in ("html", "body", "a", "article", "main", "table", "tr", "td", "th", "tbody"):
            continue
        match = _match_string(tag)
        role = attr_str(tag, "role").strip().lower()
        if (
            (match.strip() and _RE_UNLIKELY.search(match) and not _RE_MAYBE.search(match))
            or role in _UNLIKELY_ROLES
            or tag.name in ("nav", "footer", "aside")
        ) and not _in_table_or_code(tag):
            skip[id(tag)] = tag
    return skip


def _has_block_descendant(tag: Tag, blocks: frozenset[str]) -> bool:
    return tag.find(lambda t: t.name in blocks) is not None


class _Scorer:
    """Readability-style content scores for the ancestors of paragraphs."""

    def __init__(self, body: Tag, skip: dict[int, Tag]) -> None:
        self.stats = _Stats(body, skip)
        self.skip = skip
        self.scores: dict[int, float] = {}
        self.nodes: dict[int, Tag] = {}
        self._score_units(body)
        for key, node in self.nodes.items():
            self.scores[key] *= 1.0 - self.stats.density(node)

    def _init(self, tag: Tag) -> None:
        key = id(tag)
        if key in self.scores:
            return
        name = tag.name
        score = 0.0
        if name == "div":
            score = 5
        elif name in ("pre", "td", "blockquote"):
            score = 3
        elif name in ("address", "ol", "ul", "dl", "dd", "dt", "li", "form"):
            score = -3
        elif name in ("h1", "h2", "h3", "h4", "h5", "h6", "th"):
            score = -5
        self.scores[key] = score + _class_weight(tag)
        self.nodes[key] = tag

    def _add(self, parent: Tag | None, length: int, commas: int) -> None:
        if length < 25 or parent is None:
            return
        score = 1 + commas + min(length // 100, 3)
        level = 0
        node: Any = parent
        while isinstance(node, Tag) and level < 5:
            if not isinstance(node.parent, Tag) or node.parent.name == "[document]":
                break  # <html> and the document are never candidates
            self._init(node)
            divider = 1 if level == 0 else 2 if level == 1 else level * 3
            self.scores[id(node)] += score / divider
            node = node.parent
            level += 1

    def _runs(self, tag: Tag) -> list[tuple[int, int]]:
        """(length, commas) of the inline text runs directly inside a block ``tag``."""
        runs: list[tuple[int, int]] = []
        length = commas = 0
        brs = 0
        for child in tag.contents:
            if isinstance(child, Tag):
                if id(child) in self.skip:
                    continue
                if child.name == "br":
                    brs += 1
                    if brs >= 2 and length:
                        runs.append((length, commas))
                        length = commas = 0
                    continue
                if child.name in _PHRASING and not _has_block_descendant(child, _BLOCK_TAGS):
                    length += self.stats.length(child)
                    commas += self.stats.commas.get(id(child), 0)
                    brs = 0 if self.stats.length(child) else brs
                    continue
                if length:
                    runs.append((length, commas))
                length = commas = brs = 0
            elif type(child) is NavigableString:
                s = str(child)
                n = len(norm(s))
                if n:
                    length += n + 1
                    commas += len(_RE_COMMAS.findall(s))
                    brs = 0
        if length:
            runs.append((length, commas))
        return runs

    def _score_units(self, body: Tag) -> None:
        stack: list[Tag] = [body]
        while stack:
            tag = stack.pop()
            name = tag.name
            if name in _SCORE_TAGS:
                if name == "td" or name == "pre":
                    self._add(tag.parent, self.stats.length(tag), self.stats.commas[id(tag)])
                else:
                    for length, commas in self._runs(tag):
                        self._add(tag.parent, length, commas)
                if name != "td":
                    continue
            elif name in _DIV_LIKE:
                if not _has_block_descendant(tag, _DIV_TO_P):
                    for length, commas in self._runs(tag):
                        self._add(tag.parent, length, commas)
                    continue
                for length, commas in self._runs(tag):
                    self._add(tag, length, commas)
            for child in reversed(tag.contents):
                if isinstance(child, Tag) and id(child) not in self.skip:
                    stack.append(child)

    def score(self, tag: Tag) -> float:
        return self.scores.get(id(tag), 0.0)

    def top(self, n: int = 5) -> list[Tag]:
        ranked = sorted(self.nodes.values(), key=lambda t: self.scores[id(t)], reverse=True)
        return ranked[:n]


def _ancestors(tag: Tag) -> list[Tag]:
    return [p for p in tag.parents if isinstance(p, Tag) and p.name != "[document]"]


def _density_pick(
    soup: BeautifulSoup, body: Tag, strip_unlikely: bool
) -> tuple[Tag | None, list[Tag], _Scorer]:
    """Readability's top candidate and the siblings that belong with it."""
    skip: dict[int, Tag] = _unlikely(soup) if strip_unlikely else {}
    scorer = _Scorer(body, skip)
    top_list = scorer.top(5)
    if not top_list or top_list[0] is body or top_list[0].name in ("html", "body"):
        return None, [], scorer
    top = top_list[0]
    top_score = scorer.score(top)
    # Several strong candidates under one ancestor: take that ancestor.
    alternatives = [
        set(id(a) for a in _ancestors(t))
        for t in top_list[1:]
        if top_score > 0 and scorer.score(t) / top_score >= 0.75
    ]
    if len(alternatives) >= 3:
        parent = top.parent
        while isinstance(parent, Tag) and parent.name not in ("body", "html"):
            if sum(id(parent) in alt for alt in alternatives) >= 3:
                top = parent
                break
            parent = parent.parent
    # Climb while the parent scores better (more content lurking in siblings).
    parent = top.parent
    last = scorer.score(top)
    threshold = last / 3
    while isinstance(parent, Tag) and parent.name not in ("body", "html"):
        if id(parent) not in scorer.scores:
            parent = parent.parent
            continue
        pscore = scorer.score(parent)
        if pscore < threshold:
            break
        if pscore > last:
            top = parent
            break
        last = pscore
        parent = parent.parent
    # An only child: use its parent so that sibling joining can see adjacent content.
    parent = top.parent
    while (
        isinstance(parent, Tag)
        and parent.name not in ("body", "html")
        and len([c for c in parent.contents if isinstance(c, Tag) and id(c) not in skip]) == 1
    ):
        top = parent
        parent = top.parent
    if top.name in ("body", "html"):
        return None, [], scorer
    # Sibling joining.
    top_score = scorer.score(top)
    # Readability joins siblings scoring 10 or a fifth of the top; small pages score low
    # overall, so there the floor is half the top score.
    threshold = max(min(10.0, top_score * 0.5), top_score * 0.2)
    top_class = attr_str(top, "class")
    chosen: list[Tag] = []
    parent = top.parent
    siblings = [c for c in parent.contents if isinstance(c, Tag)] if parent else [top]
    for sib in siblings:
        if sib is top:
            chosen.append(sib)
            continue
        if id(sib) in skip:
            continue
        bonus = top_score * 0.2 if top_class and attr_str(sib, "class") == top_class else 0
        if id(sib) in scorer.scores and scorer.score(sib) + bonus >= threshold:
            chosen.append(sib)
        elif sib.name == "p":
            text = _text(sib)
            density = _link_density(sib)
            long_prose = len(text) > 80 and density < 0.25
            short_sentence = 0 < len(text) < 80 and density == 0 and re.search(r"\.( |$)", text)
            if long_prose or short_sentence:
                chosen.append(sib)
    return top, chosen, scorer


def _link_density(tag: Tag) -> float:
    total = len(_text(tag))
    if not total:
        return 0.0
    link = 0.0
    for a in tag.find_all("a"):
        coef = 0.3 if attr_str(a, "href").strip().startswith("#") else 1.0
        link += len(_text(a)) * coef
    return min(1.0, link / total)


# --------------------------------------------------------------------------- cleaning


def _is_data_table(table: Tag) -> bool:
    if attr_str(table, "role").lower() == "presentation":
        return False
    if attr_str(table, "datatable") == "0":
        return False
    if table.get("summary"):
        return True
    caption = table.find("caption")
    if caption is not None and caption.contents:
        return True
    if table.find(["col", "colgroup", "tfoot", "thead", "th"]) is not None:
        return True
    if table.find("table") is not None:
        return False
    rows = table.find_all("tr")
    cols = max((len(r.find_all(["td", "th"], recursive=False)) for r in rows), default=0)
    return len(rows) >= 10 or cols > 4 or len(rows) * cols > 10


def _looks_like_prose(tag: Tag) -> bool:
    """Reads like article text: two real paragraphs, or a heading and one paragraph."""
    paragraphs = 0
    for p in tag.find_all(["p", "li", "dd", "blockquote"]):
        if len(_text(p)) >= 80 and _link_density(p) < 0.5:
            paragraphs += 1
            if paragraphs >= 2:
                return True
    return paragraphs == 1 and tag.find(list(_HEADINGS)) is not None


def _is_prose_block(tag: Tag) -> bool:
    """Real paragraphs with few links: kept whatever its class or id says (ids are often
    heading slugs such as "related-conditions" or "sharing-your-feelings")."""
    return tag.name not in _CHROME_TAGS and _link_density(tag) < 0.2 and _looks_like_prose(tag)


def _chrome_kind(tag: Tag, stats: _Stats, unlikely: bool, meta: bool) -> str | None:
    """Why ``tag`` is chrome rather than article content (a kind of chrome), or None."""
    name = tag.name
    if name in _JUNK_TAGS:
        return "junk"
    if _is_hidden(tag):
        return "hidden"
    if name in _HEADINGS:
        return None
    if name in _CHROME_TAGS:
        return "tag"
    if name == "header":
        # A header that carries a heading stays (the article's h1 with its deck, or a
        # section's title); other headers are site or card chrome.
        return None if tag.find(list(_HEADINGS)) is not None else "tag"
    if attr_str(tag, "role").strip().lower() in _CHROME_ROLES:
        return "role"
    widget = _widget_word(tag)
    if widget is not None:
        strength = widget[0]
        if strength == "strong":
            return strength
        if strength == "meta" and meta and stats.length(tag) < 300:
            return strength
        if strength == "topical" and (stats.density(tag) > 0.25 or not _looks_like_prose(tag)):
            return strength
    if unlikely:
        match = _match_string(tag)
        if (
            match.strip()
            and _RE_UNLIKELY.search(match)
            and not _RE_MAYBE.search(match)
            and name not in ("a", "table", "tr", "td", "th", "tbody")
            and not _in_table_or_code(tag)
        ):
            return "unlikely"
    return None


def _chrome_victims(
    content: Tag, stats: _Stats, unlikely: bool, meta: bool = True
) -> list[Tag]:
    """The outermost elements inside ``content`` that are chrome (``content`` itself never).

    Guards: an element that holds the page's ``<h1>`` or 80% of the content's text is kept
    (it is the article, whatever its class says); so is one with half of the text unless it
    is a chrome tag or a strong widget. Inside headings only junk and hidden elements go, so
    ``<h2><a id="x"></a>...</h2>`` anchors survive."""
    total = max(1, stats.length(content))
    victims: list[Tag] = []
    stack: list[tuple[Tag, bool]] = [
        (c, False) for c in reversed(content.contents) if isinstance(c, Tag)
    ]
    while stack:
        tag, in_heading = stack.pop()
        kind = _chrome_kind(tag, stats, unlikely and not in_heading, meta and not in_heading)
        if kind is not None and in_heading and kind not in ("junk", "hidden"):
            kind = None
        if kind is not None:
            keep = False
            if kind not in ("junk", "hidden"):
                share = stats.length(tag) / total
                keep = (
                    share >= 0.8
                    or (share >= 0.5 and kind not in ("tag", "strong"))
                    or tag.find("h1") is not None
                )
            if not keep:
                victims.append(tag)
                continue
        child_in_heading = in_heading or tag.name in _HEADINGS
        stack.extend(
            (c, child_in_heading) for c in reversed(tag.contents) if isinstance(c, Tag)
        )
    return victims


def _remove_chrome(content: Tag, unlikely: bool, meta: bool) -> None:
    """Drop site chrome and widgets inside ``content``."""
    _remove_all(_chrome_victims(content, _Stats(content), unlikely, meta))


def _clean_conditionally(content: Tag, warnings: list[str]) -> None:
    """Readability's shadiness checks on forms, tables, lists and divs of the content.

    Undone when they would remove most of the text: a page of teasers or link lists is
    still better indexed than lost."""
    before = len(_text(content))
    removed = _clean_shady(content)
    if before >= 200 and len(_text(content)) < 0.15 * before:
        warnings.append("shadiness checks would remove most of the content; kept it uncleaned")
        for node, parent, index in reversed(removed):
            parent.insert(index, node)


def _clean_shady(content: Tag) -> list[tuple[Tag, Tag, int]]:
    """Detach shady elements; returns (element, parent, index) in removal order."""
    removed: list[tuple[Tag, Tag, int]] = []
    gone: set[int] = set()
    data_tables = {id(t) for t in content.find_all("table") if _is_data_table(t)}
    for name in ("form", "fieldset", "table", "ul", "div"):
        for node in reversed(content.find_all(name)):
            if any(id(p) in gone for p in node.parents) or id(node) in gone:
                continue
            if name == "table" and id(node) in data_tables:
                continue
            if any(
                isinstance(p, Tag) and (p.name == "code" or id(p) in data_tables)
                for p in node.parents
            ):
                continue
            if any(id(t) in data_tables for t in node.find_all("table")):
                continue
            if node.find("h1") is not None:
                continue
            if _shady(node, name):
                parent = node.parent
                if parent is None:
                    continue
                removed.append((node, parent, parent.index(node)))
                gone.add(id(node))
                node.extract()
    return removed


def _shady(node: Tag, name: str) -> bool:
    weight = _class_weight(node)
    if weight < 0 and not _is_prose_block(node):
        return True  # a chrome-like class name alone does not remove real paragraphs
    text = _text(node)
    if text.count(",") >= 10:
        return False
    is_list = name in ("ul", "ol")
    if not is_list:
        list_len = sum(len(_text(li)) for li in node.find_all(["ul", "ol"]))
        is_list = bool(text) and list_len / len(text) > 0.9
    p = len(node.find_all("p"))
    img = len(node.find_all("img"))
    li = len(node.find_all("li")) - 100
    headings = sum(len(_text(h)) for h in node.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]))
    heading_density = headings / len(text) if text else 0.0
    in_figure = any(isinstance(p_, Tag) and p_.name == "figure" for p_ in node.parents)
    density = _link_density(node)
    length = len(text)
    if _RE_AD_WORDS.fullmatch(text):
        return True
    if not in_figure and img > 1 and p / img < 0.5:
        return True
    if not is_list and li > p:
        return True
    if not is_list and not in_figure and heading_density < 0.9 and length < 25 and (
        img == 0 or img > 2
    ) and density > 0:
        return True
    if not is_list and weight < 25 and density > 0.2:
        return True
    if weight >= 25 and density > 0.5:
        return True
    return img == 0 and length == 0


def _tidy(content: Tag) -> None:
    """Remove empty wrappers left behind by cleaning (ids and media are kept)."""
    stats = _Stats(content)
    victims: list[PageElement] = []
    stack = [c for c in content.contents if isinstance(c, Tag)]
    while stack:
        tag = stack.pop()
        if stats.length(tag):
            stack.extend(c for c in tag.contents if isinstance(c, Tag))
        elif (
            tag.name in ("div", "section", "span", "p", "header", "figure", "li", "ul", "ol")
            and not tag.attrs.get("id")
            and tag.find(["img", "picture", "video", "audio", "a"]) is None
            and tag.find(id=True) is None
        ):
            victims.append(tag)
        else:
            stack.extend(c for c in tag.contents if isinstance(c, Tag))
    _remove_all(victims)


# --------------------------------------------------------------------------- selection


def _semantic_candidates(body: Tag, stats: _Stats) -> Iterator[tuple[str, Tag]]:
    """Semantic containers in order of preference: (method, element)."""
    articles: list[Tag] = []
    mains: list[tuple[str, Tag]] = []
    index: dict[tuple[str, str], list[Tag]] = {}
    for tag in body.find_all(True):
        if tag.name == "article":
            articles.append(tag)
        elif tag.name == "main":
            mains.append(("main", tag))
        if not tag.attrs:
            continue
        if attr_str(tag, "role").strip().lower() == "main" and tag.name != "main":
            mains.append(("role-main", tag))
        for attr in ("class", "itemprop", "data-elementor-type"):
            for token in attr_str(tag, attr).lower().split():
                index.setdefault((attr, token), []).append(tag)
        ident = attr_str(tag, "id").strip().lower()
        if ident:
            index.setdefault(("id", ident), []).append(tag)
    if articles:
        # Several <article>s: the one with most text (density decides whether a card
        # list's container is the content instead).
        yield "article", max(articles, key=stats.length)
    mains.sort(key=lambda m: m[0] != "main")
    yield from mains
    for key in _CMS_CONTAINERS:
        tags = index.get(key)
        if tags:
            yield "cms-class", max(tags, key=stats.length)


def _plausible(
    cand: Tag, stats: _Stats, top: Tag | None, ref_len: int, page_len: int
) -> bool:
    """Does the semantic container ``cand`` hold the article that density scoring found?"""
    length = stats.length(cand)
    if length < 200 and length < 0.5 * page_len:
        return False
    if stats.density(cand) > 0.5:
        return False
    clean = length - sum(stats.length(v) for v in _chrome_victims(cand, stats, False))
    if top is None:
        return clean >= 0.3 * page_len
    if ref_len >= 500 and clean > 1.5 * ref_len + 500:
        return False  # a page-wide wrapper: much more text than the article density found
    if top is cand or cand in top.parents:
        return True  # it wraps the density pick
    if top in cand.parents:
        return clean >= 0.7 * ref_len  # inside the density pick: it must hold most of it
    return False


def _select(
    soup: BeautifulSoup, selector: str | None, warnings: list[str]
) -> tuple[list[Tag], str, list[Tag]]:
    """(nodes, method, unlikely): the element(s) that hold the content, and for density the
    unlikely subtrees that scoring ignored (to be dropped from the content too)."""
    body = soup.find("body")
    if selector:
        try:
            node = soup.select_one(selector)
        except Exception as exc:
            warnings.append(
                f"content selector {selector!r} is invalid "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                "fell back to detection"
            )
        else:
            if node is not None:
                return [node], "selector", []
            warnings.append(
                f"content selector {selector!r} matched nothing; fell back to detection"
            )
    if not isinstance(body, Tag):
        warnings.append("the page has no body")
        return [], "body", []
    stats = _Stats(body)
    page_len = stats.length(body)
    top, chosen, scorer = _density_pick(soup, body, strip_unlikely=True)
    ref_len = sum(scorer.stats.length(t) for t in chosen)
    if top is not None and ref_len < 500:
        top2, chosen2, scorer2 = _density_pick(soup, body, strip_unlikely=False)
        len2 = sum(scorer2.stats.length(t) for t in chosen2)
        if top2 is not None and len2 > ref_len:
            top, chosen, ref_len, scorer = top2, chosen2, len2, scorer2
    for method, cand in _semantic_candidates(body, stats):
        if _plausible(cand, stats, top, ref_len, page_len):
            return [cand], method, []
    if top is not None:
        return chosen, "density", list(scorer.skip.values())
    warnings.append("no main content found; used the whole body")
    return [body], "body", []


_MAX_DEPTH = 256  # real pages nest 15-40 levels; far deeper trees are hostile or broken


def _max_depth(root: Tag) -> int:
    deepest = 0
    stack: list[tuple[Tag, int]] = [(root, 0)]
    while stack:
        tag, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in tag.contents if isinstance(c, Tag))
    return deepest


# --------------------------------------------------------------------------- public API


def extract(html: str | bytes, selector: str | None = None) -> Extraction:
    """Find the main content of ``html`` (str, or bytes in any declared encoding) and read
    the page's metadata.

    ``selector`` is the editor's CSS selector for the content; when it is invalid or matches
    nothing, detection takes over and a warning says so. Never raises: on hopeless input the
    content is an empty ``<div>`` and ``warnings`` explains why."""
    warnings: list[str] = []
    try:
        soup = _parse(html, warnings)
    except Exception as exc:
        warnings.append(f"could not parse the page: {exc!r}")
        return Extraction(_empty_content(), "", "", None, None, None, None, "body", warnings)
    try:
        meta = read_metadata(soup)
    except Exception as exc:
        warnings.append(f"could not read metadata: {exc!r}")
        meta = dict.fromkeys(METADATA_KEYS[:4], "")
        meta.update(dict.fromkeys(METADATA_KEYS[4:]))
    method = "body"
    try:
        _preclean(soup)
        depth = _max_depth(soup)
        if depth > _MAX_DEPTH:
            # Pathological nesting: the heuristics below are not linear in such trees.
            warnings.append(f"markup nested {depth} levels deep; used the whole body uncleaned")
            body = soup.find("body")
            content = _own_tree([body], wrap=False) if body is not None else _empty_content()
            return _result(content, meta, "body", warnings, soup)
        nodes, method, unlikely = _select(soup, selector, warnings)
        if not meta["published"]:
            meta["published"] = first_time(nodes[0]) if nodes else None
        content = _own_tree(nodes, wrap=len(nodes) > 1) if nodes else _empty_content()
        _remove_all([t for t in unlikely if content in t.parents and t.find("h1") is None])
        _remove_chrome(content, unlikely=method in ("density", "body"), meta=False)
        if method != "selector":
            _clean_conditionally(content, warnings)
        _remove_chrome(content, unlikely=False, meta=True)  # bylines, dates, tag lists
        _tidy(content)
    except Exception as exc:
        warnings.append(f"content extraction failed: {exc!r}")
        content = _empty_content()
    return _result(content, meta, method, warnings, soup)


def _result(
    content: Tag, meta: dict[str, Any], method: str, warnings: list[str], soup: BeautifulSoup
) -> Extraction:
    try:
        title = choose_title(meta, content, soup)
    except Exception as exc:
        warnings.append(f"could not choose a title: {exc!r}")
        title = ""
    if not content.get_text(strip=True):
        warnings.append("the extracted content is empty")
    return Extraction(
        content=content,
        title=title,
        description=meta["description"],
        canonical=meta["canonical"],
        published=meta["published"],
        modified=meta["modified"],
        lang=meta["lang"],
        method=method,
        warnings=warnings,
    )


def extract_text(html: str) -> str:
    """Plain text of the main content (the ``module:function`` interface of extract_f1.py)."""
    return extract(html).content.get_text(" ", strip=True)
