"""Page metadata: title, description, canonical URL, dates and language.

Why a module of its own: what a page says *about itself* (``<title>``, ``<meta>``, Open Graph,
Dublin Core, JSON-LD, ``<link rel=canonical>``) is read by different rules than its main
content, and is where URLs and slugs come from. Pure functions of a parsed page; never raise
on odd markup (broken JSON-LD is read leniently or ignored).
"""

from __future__ import annotations

import json
import re
from typing import Any

from bs4 import BeautifulSoup, Tag

__all__ = ["METADATA_KEYS", "choose_title", "first_time", "read_metadata"]

#: Keys of the dict that :func:`read_metadata` returns.
METADATA_KEYS = ("meta_title", "site_name", "title_tag", "description", "canonical", "published",
                 "modified", "lang")

_ARTICLE_TYPES = frozenset(
    "article newsarticle blogposting medicalwebpage webpage scholarlyarticle report "
    "techarticle medicalscholarlyarticle analysisnewsarticle reportagenewsarticle "
    "socialmediaposting liveblogposting faqpage qapage aboutpage".split()
)


def attr_str(tag: Tag, name: str) -> str:
    """An attribute's value as one string (bs4 gives lists for class-like attributes)."""
    value = tag.attrs.get(name) if tag.attrs else None
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def norm(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped."""
    return " ".join(text.split())


def _text(tag: Tag) -> str:
    return norm(tag.get_text(" "))


def _meta_values(soup: BeautifulSoup) -> dict[str, str]:
    values: dict[str, str] = {}
    for meta in soup.find_all("meta"):
        content = meta.get("content")
        if content is None:
            continue
        content = norm(str(content))
        if not content:
            continue
        keys: list[str] = []
        for attr in ("property", "name", "itemprop"):
            raw = attr_str(meta, attr).strip().lower()
            if raw:
                keys.extend(raw.split())
        for key in keys:
            key = key.replace("dc.", "dc:").replace("dcterms.", "dcterms:")
            values.setdefault(key, content)
    return values


def _loads_lenient(raw: str) -> Any:
    raw = raw.strip()
    raw = re.sub(r"^\s*(<!--|//\s*<!\[CDATA\[|<!\[CDATA\[)", "", raw)
    raw = re.sub(r"(-->|//\s*\]\]>|\]\]>)\s*$", "", raw).strip()
    try:
        return json.loads(raw, strict=False)
    except (ValueError, RecursionError):
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", raw)  # trailing commas
    try:
        return json.loads(fixed, strict=False)
    except (ValueError, RecursionError):
        pass
    try:  # several objects glued together, or junk after the first one
        obj, _ = json.JSONDecoder(strict=False).raw_decode(fixed)
        return obj
    except (ValueError, RecursionError):
        return None


def _jsonld_objects(data: Any, depth: int = 0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if depth > 6:
        return found
    if isinstance(data, list):
        for item in data:
            found.extend(_jsonld_objects(item, depth + 1))
    elif isinstance(data, dict):
        found.append(data)
        graph = data.get("@graph")
        if isinstance(graph, (list, dict)):
            found.extend(_jsonld_objects(graph, depth + 1))
        main = data.get("mainEntity") or data.get("mainEntityOfPage")
        if isinstance(main, dict):
            found.extend(_jsonld_objects(main, depth + 1))
    return found


def _jsonld_types(obj: dict[str, Any]) -> set[str]:
    kind = obj.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(k).lower().rsplit("/", 1)[-1] for k in kinds if isinstance(k, str)}


def _jsonld(soup: BeautifulSoup) -> dict[str, str]:
    """Article fields from JSON-LD; tolerant of broken JSON and ``@graph`` lists."""
    best: dict[str, Any] | None = None
    best_rank = 99
    for script in soup.find_all("script"):
        kind = attr_str(script, "type").lower()
        if "ld+json" not in kind:
            continue
        data = _loads_lenient(script.string or script.get_text() or "")
        for obj in _jsonld_objects(data):
            types = _jsonld_types(obj)
            if not types & _ARTICLE_TYPES:
                continue
            rank = 0 if any(t.endswith(("article", "posting")) for t in types) else 1
            if rank < best_rank:
                best, best_rank = obj, rank
    if best is None:
        return {}
    out: dict[str, str] = {}
    publisher = best.get("publisher")
    if isinstance(publisher, dict) and isinstance(publisher.get("name"), str):
        out["publisher"] = norm(publisher["name"])
    for key in ("headline", "name", "description", "datePublished", "dateModified", "url"):
        value = best.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, (str, int, float)) and str(value).strip():
            out[key] = norm(str(value))
    return out


def first_time(root: Tag | None) -> str | None:
    """The first ``<time datetime>`` under ``root``: a publication date when no metadata gives one."""
    if root is None:
        return None
    for time in root.find_all("time"):
        value = attr_str(time, "datetime").strip()
        if value:
            return value
    return None


_RE_TITLE_SEP = re.compile(r"\s+[|\-\u2013\u2014:\u00bb/\\>\u00b7\u2022]\s+")


def _words(text: str) -> int:
    return len(text.split())


def _clean_title(raw: str, headings: list[str]) -> str:
    """Drop a trailing (or leading) ' | Site' / ' - Site' part of a <title>."""
    title = norm(raw)
    if not title:
        return ""
    low = title.lower()
    for heading in headings:  # the page's own heading is the best title when it matches
        if heading and len(heading) >= 6 and heading.lower() in low:
            return heading
    parts = _RE_TITLE_SEP.split(title)
    if len(parts) < 2:
        return title
    seps = _RE_TITLE_SEP.findall(title)
    head = title[: title.rfind(seps[-1])].strip()
    if _words(head) >= 3:
        return head
    tail = title[title.find(seps[0]) + len(seps[0]) :].strip()
    if _words(tail) >= 3 and _words(parts[0]) <= 2:
        return tail
    return title


def read_metadata(soup: BeautifulSoup) -> dict[str, Any]:
    """The page's own metadata (keys: ``METADATA_KEYS``); the most specific source wins."""
    meta = _meta_values(soup)
    ld = _jsonld(soup)
    title_tag = next(  # not an SVG icon's <title>
        (t for t in soup.find_all("title") if t.find_parent("svg") is None), None
    )
    html = soup.find("html")
    canonical = None
    for link in soup.find_all("link"):
        rels = [r.lower() for r in attr_str(link, "rel").split()]
        href = attr_str(link, "href").strip()
        if "canonical" in rels and href:
            canonical = href
            break
    lang = attr_str(html, "lang").strip() if isinstance(html, Tag) else ""
    if not lang:
        lang = meta.get("content-language", "") or meta.get("dc:language", "")
    title_tag_text = norm(title_tag.get_text(" ")) if title_tag is not None else ""
    ld_title = ld.get("headline") or ld.get("name") or ""
    if ld.get("headline") and ld.get("name") and ld["headline"] != ld["name"]:
        # Some pages put a summary in one of them: keep the one closer to <title>.
        ref = title_tag_text or meta.get("og:title") or meta.get("twitter:title") or ""
        if _overlap(ref, ld["name"]) > _overlap(ref, ld["headline"]):
            ld_title = ld["name"]
    return {
        "meta_title": ld_title
        or meta.get("dc:title")
        or meta.get("dcterms:title")
        or meta.get("og:title")
        or meta.get("twitter:title")
        or meta.get("parsely-title")
        or "",
        "site_name": meta.get("og:site_name")
        or meta.get("application-name")
        or ld.get("publisher")
        or "",
        "title_tag": title_tag_text,
        "description": meta.get("description")
        or meta.get("og:description")
        or meta.get("dc:description")
        or meta.get("dcterms:description")
        or meta.get("twitter:description")
        or ld.get("description")
        or "",
        "canonical": canonical or meta.get("og:url") or None,
        "published": meta.get("article:published_time")
        or ld.get("datePublished")
        or meta.get("datepublished")
        or meta.get("dcterms:created")
        or meta.get("dc:date")
        or meta.get("parsely-pub-date")
        or meta.get("date")
        or None,
        "modified": meta.get("article:modified_time")
        or ld.get("dateModified")
        or meta.get("og:updated_time")
        or meta.get("datemodified")
        or meta.get("dcterms:modified")
        or None,
        "lang": lang.split(",")[0].strip() or None,
    }


def _overlap(a: str, b: str) -> float:
    """Share of the words of ``a`` that occur in ``b``."""
    wa = re.findall(r"\w+", a.lower())
    wb = set(re.findall(r"\w+", b.lower()))
    return sum(w in wb for w in wa) / len(wa) if wa else 0.0


def _strip_site(title: str, site: str, tag_title: str) -> str:
    """Remove a trailing " | Site" from a metadata title when the site name is known."""
    seps = list(_RE_TITLE_SEP.finditer(title))
    if not seps:
        return title
    last = seps[-1]
    tail = title[last.end() :].strip().lower()
    head = title[: last.start()].strip()
    tag_seps = list(_RE_TITLE_SEP.finditer(tag_title))
    tag_tail = tag_title[tag_seps[-1].end() :].strip().lower() if tag_seps else ""
    if head and tail and (tail == site.strip().lower() or tail == tag_tail):
        return head
    return title


def choose_title(meta: dict[str, Any], content: Tag, soup: BeautifulSoup) -> str:
    """Metadata title (JSON-LD, Dublin Core, Open Graph, Twitter), else the cleaned
    ``<title>``, else the first ``<h1>``; a trailing site name is removed."""
    h1s = [_text(h) for h in content.find_all("h1")] if content is not None else []
    if not h1s:
        h1s = [_text(h) for h in soup.find_all("h1")]
    h1s = [h for h in h1s if h]
    if meta["meta_title"]:
        return _strip_site(meta["meta_title"], meta["site_name"], meta["title_tag"])
    cleaned = _clean_title(meta["title_tag"], h1s)
    if cleaned:
        return _strip_site(cleaned, meta["site_name"], "")
    return h1s[0] if h1s else ""

