"""What a heading offers a deep link, and what it says: its real anchor and its clean text.

Why: a search result that lands on the top of the page instead of the answer has failed.
Real pages put a heading's target in many places (Sphinx on the wrapping ``<div
class="section" id>``, wikis on a ``<span id>`` inside the heading, old CMSs on an ``<a
name>`` just before it, static-site generators on a ``headerlink`` ``href="#x"``), and they
decorate headings with permalink and edit links (``¶``, ``#``, ``[edit]``) that must not
become part of the question. Pure functions of a parsed heading; no I/O.
"""

from __future__ import annotations

import re

from bs4.element import Comment, NavigableString, Tag

#: The order in which a heading's anchor is looked for (``Anchor.rule`` names the one used).
RULES = ("own-id", "inner-id", "permalink", "wrapper-id", "preceding-id")

#: Wrappers whose id a heading takes when it opens them (Sphinx, Dropbox, Docusaurus...).
_WRAPPERS = frozenset(("section", "div", "article"))
#: Fragments that never name a heading: "back to top" and table-of-contents links.
_NOT_HEADING_TARGETS = frozenset(("", "top", "toc", "contents", "table-of-contents"))
#: Class-name parts of permalink and edit decorations inside headings.
_DEBRIS_CLASS = re.compile(
    r"(^|[-_\s])(headerlink|anchorjs|anchor-?link|heading-?anchor|hash-?link|permalink|"
    r"mw-editsection|editsection|edit-?link|header-?anchor|direct-?link|anchor)($|[-_\s])",
    re.I,
)
_DEBRIS_WORDS = re.compile(r"^\s*(\[\s*edit\s*\]|edit|permalink|link to this (heading|section)|"
                           r"copy link|link)\s*$", re.I)
_TEXT_DEBRIS = (
    re.compile(r"\[\s*edit(\s+source)?\s*\]", re.I),  # wiki edit links left as text
    re.compile(r"[¶\U0001F517\uFE0F]"),  # pilcrows and link emoji anywhere
    re.compile(r"(^|\s)[#§]+\s*$"),  # a trailing "#" or "§" on its own
    re.compile(r"^\s*[#§]+(\s|$)"),  # a leading one (Markdown renderers)
    re.compile(r"\s*\bpermalink\b\s*$", re.I),
)
_SPACE = re.compile(r"\s+")
_AD_SLOT = re.compile(r"(^|[^a-z])(ad|ads|adsense|advert\w*)([^a-z]|$)", re.I)


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):
        value = " ".join(value)
    return value.strip() if isinstance(value, str) else ""


def _has_text(node: object) -> bool:
    if isinstance(node, NavigableString):
        return not isinstance(node, Comment) and bool(str(node).strip())
    return isinstance(node, Tag) and (bool(node.get_text(strip=True)) or node.find("img") is not None
                                      or node.name == "img")


def _target_in(tag: Tag) -> str | None:
    """An ``id`` (any element) or ``name`` (an ``<a>``) on ``tag`` or inside it."""
    for node in (tag, *tag.find_all(True)):
        value = _attr(node, "id") or (_attr(node, "name") if node.name == "a" else "")
        if value:
            return value
    return None


def is_debris(tag: Tag) -> bool:
    """A permalink or edit decoration inside a heading: by class, or a link whose text is only
    a symbol (``¶``, ``#``, ``🔗``) or a word such as "[edit]" or "Permalink"."""
    if _DEBRIS_CLASS.search(_attr(tag, "class")):
        return True
    if tag.name == "a":
        text = tag.get_text(strip=True)
        if not re.search(r"\w", text) and tag.find("img") is None:
            return bool(text) or bool(_attr(tag, "href"))
        return bool(_DEBRIS_WORDS.match(text))
    return False


def heading_text(tag: Tag) -> str:
    """The heading's words without permalink and edit debris."""
    pieces: list[str] = []
    stack: list[object] = [tag]
    while stack:
        node = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, Comment):
                pieces.append(str(node))
            continue
        if not isinstance(node, Tag) or node.name in ("script", "style", "template"):
            continue
        if node is not tag and is_debris(node):
            continue
        pieces.append(" ")
        stack.extend(reversed(node.contents))
    text = _SPACE.sub(" ", "".join(pieces)).strip()
    for pattern in _TEXT_DEBRIS:
        text = pattern.sub(" ", text)
    return _SPACE.sub(" ", text).strip(" \u00a0|:-–—")


def _permalink_target(tag: Tag) -> str | None:
    links = [a for a in tag.find_all("a", href=True) if _attr(a, "href").startswith("#")]
    links.sort(key=lambda a: not is_debris(a))  # a real permalink first, then any same-page link
    for a in links:
        target = _attr(a, "href")[1:].strip()
        if target.lower() not in _NOT_HEADING_TARGETS:
            return target
    return None


def _wrapper_target(tag: Tag) -> str | None:
    """The id of the nearest section/div/article that the heading opens (nothing with text
    before it inside the wrapper)."""
    node = tag
    parent = node.parent
    while isinstance(parent, Tag) and parent.name != "[document]":
        for sibling in parent.contents:
            if sibling is node:
                break
            if _has_text(sibling):
                return None
        if parent.name in _WRAPPERS and _attr(parent, "id"):
            return _attr(parent, "id")
        node, parent = parent, parent.parent
    return None


def _preceding_target(tag: Tag) -> str | None:
    """An id/name on an empty element right before the heading (``<a name="x"></a><h2>``)."""
    sibling = tag.previous_sibling
    while sibling is not None and not isinstance(sibling, Tag):
        if _has_text(sibling):
            return None
        sibling = sibling.previous_sibling
    if sibling is None or _has_text(sibling) or sibling.name in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return None
    if _AD_SLOT.search(f"{_attr(sibling, 'class')} {_attr(sibling, 'id')}"):
        return None  # an empty ad slot is not the heading's anchor
    return _target_in(sibling)


def find_anchor(tag: Tag, rules: tuple[str, ...] = RULES) -> tuple[str, str] | None:
    """(anchor, rule) for the heading as the page has it, trying ``rules`` in ``RULES``'
    order; None when the page offers no target (the caller then generates one from the text)."""
    for rule in rules:
        value = _FINDERS[rule](tag)
        if value:
            return value, rule
    return None


def _own_id(tag: Tag) -> str | None:
    return _attr(tag, "id") or None


def _inner_id(tag: Tag) -> str | None:
    for node in tag.find_all(True):
        value = _attr(node, "id") or (_attr(node, "name") if node.name == "a" else "")
        if value:
            return value
    return None


_FINDERS = {"own-id": _own_id, "inner-id": _inner_id, "permalink": _permalink_target,
            "wrapper-id": _wrapper_target, "preceding-id": _preceding_target}
