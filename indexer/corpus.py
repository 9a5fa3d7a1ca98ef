"""Read the corpus folder into articles: files → extraction → sections → resolved links.

This is the I/O edge of the indexer. Every problem with a file (too big, empty, binary,
mis-declared encoding, duplicate slug, no headings, broken internal links) becomes an
``Issue`` naming the file and the reason; none of them raises, so one bad page can never
stop a build or touch the index being served.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from bs4 import UnicodeDammit

from indexer.extract import extract
from indexer.split import Section, split

HTML_SUFFIXES = {".html", ".htm"}
IGNORED_NAMES = {"README.md", "synonyms.txt", ".gitkeep", ".DS_Store"}
_SKIP_SCHEMES = ("mailto:", "tel:", "javascript:", "data:", "sms:")


@dataclass(frozen=True)
class Issue:
    """A problem found in the corpus. ``error`` issues keep the file out of the index."""

    source: str
    message: str
    level: str = "warning"  # "warning" | "error"
    code: str = "other"

    def __str__(self) -> str:
        return f"{self.level}: {self.source}: {self.message}"


@dataclass
class ResolvedLink:
    section: int  # position of the section the link stands in
    href: str  # absolute URL or site path, as resolved against the article's own URL
    text: str
    kind: str  # "internal" | "external" | "broken"
    slug: str | None = None
    fragment: str = ""


@dataclass
class Article:
    slug: str
    source: str  # path relative to the corpus folder
    sha256: str
    title: str
    url: str  # site path, e.g. "/goals-of-psychotherapy/"
    canonical: str | None
    description: str
    published: str | None
    modified: str | None
    sections: list[Section]
    outline: list[dict]
    raw_links: list[tuple[int, str, str]]  # (section position, absolute href, text), in order
    links: list[ResolvedLink] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def related(self) -> list[str]:
        """Slugs of the corpus articles it links to, in order of first mention."""
        return list(dict.fromkeys(lk.slug for lk in self.links if lk.kind == "internal" and lk.slug != self.slug))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iter_files(corpus_dir: Path) -> Iterator[Path]:
    """Every file of the corpus that could be a page, in a stable order."""
    for path in sorted(corpus_dir.rglob("*")):
        if path.is_file() and path.name not in IGNORED_NAMES and not path.name.startswith("."):
            yield path


def decode(data: bytes, source: str) -> tuple[str | None, list[Issue]]:
    """Bytes to text, trusting a BOM or declared charset unless it is plainly wrong."""
    issues: list[Issue] = []
    if not data.strip():
        return None, [Issue(source, "the file is empty", "error", "empty")]
    sample = data[:8192]
    if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [Issue(source, "the file is binary, not HTML", "error", "binary")]
    declared = _declared_charset(sample)
    if declared:
        try:
            return data.decode(declared), issues
        except (LookupError, UnicodeDecodeError):
            issues.append(
                Issue(source, f"declared encoding {declared!r} does not decode the file; detected instead", code="encoding")
            )
    dammit = UnicodeDammit(data, ["utf-8", "windows-1252"], is_html=True)
    if dammit.unicode_markup is None:
        return None, issues + [Issue(source, "cannot decode the file as text", "error", "encoding")]
    if not declared and dammit.original_encoding not in ("utf-8", "ascii"):
        issues.append(
            Issue(source, f"no charset declared; decoded as {dammit.original_encoding}", code="encoding")
        )
    return dammit.unicode_markup, issues


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
#: Labels that browsers (WHATWG Encoding Standard) decode as windows-1252: pages that say
#: "iso-8859-1" routinely hold Windows curly quotes and dashes in 0x80-0x9F, which Python's
#: latin-1 would turn into invisible C1 control characters.
_WINDOWS_1252_LABELS = {
    "ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1", "iso-ir-100",
    "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1", "us-ascii", "windows-1252",
    "x-cp1252",
}


def _declared_charset(sample: bytes) -> str | None:
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    m = _CHARSET.search(sample)
    if not m:
        return None
    label = m.group(1).decode("ascii").lower()
    if label.startswith(("utf-16", "utf16", "utf-32", "utf32")):
        # A <meta> cannot truthfully declare UTF-16/32 (it would not read as ASCII): browsers
        # take such a page as UTF-8 (WHATWG encoding sniffing), and so do we.
        return "utf-8"
    return "windows-1252" if label in _WINDOWS_1252_LABELS else label


def slug_for(canonical: str | None, source: str) -> str:
    """Stable slug: the canonical URL's last path segment, else the file name."""
    if canonical:
        segments = [s for s in unquote(urlsplit(canonical).path).split("/") if s]
        if segments and re.fullmatch(r"index\.html?", segments[-1], re.I):
            segments.pop()
        if segments:
            return re.sub(r"\.html?$", "", segments[-1]).lower()
    return re.sub(r"\.html?$", "", Path(source).name).lower()


def parse_page(data: bytes, source: str, *, selector: str | None = None,
               max_bytes: int | None = None) -> tuple[Article | None, list[Issue]]:
    """One file's bytes to an article with unresolved links (pure: no file access)."""
    if max_bytes is not None and len(data) > max_bytes:
        return None, [Issue(source, f"file is {len(data):,} bytes, over the {max_bytes:,}-byte cap", "error", "too-large")]
    if Path(source).suffix.lower() not in HTML_SUFFIXES:
        return None, [Issue(source, "not an HTML file (expected .html or .htm)", "error", "not-html")]
    text, issues = decode(data, source)
    if text is None:
        return None, issues
    if "<" not in text:
        return None, issues + [Issue(source, "no HTML markup in the file", "error", "not-html")]
    ex = extract(text, selector=selector)
    issues += [Issue(source, w, code="extract") for w in ex.warnings]
    title = ex.title.strip()
    if not title:
        issues.append(Issue(source, "no title (no <title>, og:title or <h1>); using the file name", code="no-title"))
        title = Path(source).stem.replace("-", " ").strip().capitalize() or "Untitled"
    result = split(ex.content, title)
    issues += [Issue(source, w, code="split") for w in result.warnings]
    if not result.sections:
        issues.append(Issue(source, "no text found in the main content", "error", "empty"))
        return None, issues
    slug = slug_for(ex.canonical, source)
    url = _site_path(ex.canonical) or f"/{slug}/"
    base = ex.canonical or "/" + source  # relative links resolve like the file's own location
    raw_links = []
    for section in result.sections:
        for link in section.links:
            href = link.href.strip()
            if not href or href.startswith("#") or href.lower().startswith(_SKIP_SCHEMES):
                continue
            raw_links.append((section.position, urljoin(base, href), link.text))
    article = Article(
        slug=slug,
        source=source,
        sha256=sha256(data),
        title=result.title,
        url=url,
        canonical=ex.canonical,
        description=ex.description,
        published=ex.published,
        modified=ex.modified,
        sections=result.sections,
        outline=[asdict(h) for h in result.outline],
        raw_links=raw_links,
    )
    return article, issues


def _site_path(url: str | None) -> str | None:
    if not url:
        return None
    path = urlsplit(url).path
    return path or "/"


def link_key(url: str) -> str:
    """Normalise a URL or path for matching: no scheme, host, query, fragment, trailing slash or .html."""
    path = unquote(urlsplit(url).path)
    path = re.sub(r"/index\.html?$", "", path)
    path = re.sub(r"\.html?$", "", path)
    return path.rstrip("/").lower() or "/"


class LinkMap:
    """Which URLs and paths name which article, and which hosts are this site's own."""

    def __init__(self, articles: Iterable[tuple[str, str, str | None, str]], site_url: str = ""):
        self.hosts: set[str] = set()
        if site_url:
            self.hosts.add(urlsplit(site_url).netloc.lower())
        # A key names the article with the strongest claim to it: its own URL (canonical)
        # over its slug over its file name, then the first file by path. Never "whoever
        # came first", so that an update resolves links exactly as a full build does.
        best: dict[str, tuple[int, str, str]] = {}
        for slug, url, canonical, source in articles:
            keys = [(0, link_key(url)), (1, link_key("/" + slug)), (2, link_key("/" + source))]
            if canonical:
                keys.append((0, link_key(canonical)))
                host = urlsplit(canonical).netloc.lower()
                if host:
                    self.hosts.add(host)
            for rank, key in keys:
                claim = (rank, source, slug)
                if key not in best or claim < best[key]:
                    best[key] = claim
        self.by_key: dict[str, str] = {key: claim[2] for key, claim in best.items()}

    def resolve(self, section: int, href: str, text: str) -> ResolvedLink:
        parts = urlsplit(href)
        host = parts.netloc.lower()
        if host and host not in self.hosts:
            return ResolvedLink(section, href, text, "external")
        slug = self.by_key.get(link_key(href))
        if slug is None:
            return ResolvedLink(section, href, text, "broken")
        return ResolvedLink(section, href, text, "internal", slug, parts.fragment)


def resolve_links(article: Article, link_map: LinkMap) -> None:
    """Fill ``article.links`` and report internal links that point nowhere."""
    article.links = [link_map.resolve(pos, href, text) for pos, href, text in article.raw_links]
    article.issues = [i for i in article.issues if i.code != "broken-link"]
    for link in article.links:
        if link.kind == "broken":
            article.issues.append(
                Issue(article.source, f"internal link {link.href!r} ({link.text!r}) matches no article", code="broken-link")
            )


def fingerprint(obj: object) -> str:
    """A stable hash of JSON-able data: what decides whether an article's documents changed."""
    return sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
