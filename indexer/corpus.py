"""Read the corpus folder into articles: files → extraction → sections → resolved links.

This is the I/O edge of the indexer. Every problem with a file (too big, empty, binary,
mis-declared encoding, duplicate slug, no headings, broken internal links) becomes an
``Issue`` naming the file and the reason; none of them raises, so one bad page can never
stop a build or touch the index being served.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

from bs4 import UnicodeDammit

from indexer.extract import extract
from indexer.split import Section, split

HTML_SUFFIXES = {".html", ".htm"}
IGNORED_NAMES = {"README.md", "synonyms.txt", "alternates.txt", ".gitkeep", ".DS_Store"}
_SKIP_SCHEMES = ("mailto:", "tel:", "javascript:", "data:", "sms:")


@dataclass(frozen=True)
class Issue:
    """A problem found in the corpus. ``error`` issues keep the file out of the index."""

    source: str
    message: str
    level: str = "warning"  # "info" | "warning" | "error"
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


def iter_files(corpus_dir: Path, issues: list[Issue] | None = None) -> Iterator[Path]:
    """Every file of the corpus that could be a page, in a stable order.

    Symbolic links are followed only while their real path stays inside the corpus folder:
    ``ln -s /etc/passwd corpus/x.html`` must not publish the password file. Such links are
    skipped with an ``outside-corpus`` warning in ``issues``; hidden names and links that
    lead back to a folder already walked are skipped silently.
    """
    for _, entry in corpus_entries(corpus_dir, issues):
        yield Path(entry.path)


def outside_corpus(path: str | Path, root: Path) -> Path | None:
    """Where ``path`` really leads when that is outside ``root`` (the corpus folder, resolved),
    else None. A link out of the corpus is never read: an editor's link must not publish, or
    let a build read, any other file on the machine."""
    real = Path(path).resolve()
    return None if real.is_relative_to(root) else real


def corpus_entries(corpus_dir: Path, issues: list[Issue] | None = None) -> list[tuple[str, os.DirEntry]]:
    """``iter_files`` as (path relative to the corpus, directory entry): an update compares the
    entry's ``stat()`` with the one it recorded, and makes no ``Path`` per file (on a large
    corpus those cost more than the ``stat``)."""
    root = corpus_dir.resolve()
    seen = {root}
    found: list[tuple[list[str], os.DirEntry]] = []
    stack = [(corpus_dir, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if issues is not None:
                issues.append(Issue(str(folder.relative_to(corpus_dir)), f"cannot read the folder: {exc.strerror}",
                                    "error", "unreadable"))
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name in IGNORED_NAMES:
                continue
            source = prefix + entry.name
            outside = outside_corpus(entry.path, root) if entry.is_symlink() else None
            if outside is not None:
                if issues is not None:
                    issues.append(Issue(source, f"symbolic link to {outside}, outside the corpus folder; skipped",
                                        code="outside-corpus"))
                continue
            try:
                if entry.is_dir():
                    real = Path(entry.path).resolve()
                    if real not in seen:
                        seen.add(real)
                        stack.append((Path(entry.path), source + os.sep))
                elif entry.is_file():
                    found.append((source.split(os.sep), entry))
            except OSError:
                continue
    found.sort(key=lambda item: item[0])  # by path components, as paths sort
    return [(os.sep.join(parts), entry) for parts, entry in found]


#: Control characters (but tab, newline, form feed, carriage return) and U+FFFD: a page whose
#: text is more than ``_MAX_JUNK_SHARE`` of these is binary data that happened to decode.
_JUNK = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")
_MAX_JUNK_SHARE = 0.05


def decode(data: bytes, source: str) -> tuple[str | None, list[Issue]]:
    """Bytes to text, trusting a BOM or declared charset unless it is plainly wrong."""
    text, issues = _decode(data, source)
    if text is not None:
        junk = len(_JUNK.findall(text))
        if junk > _MAX_JUNK_SHARE * max(len(text) - text.count(" "), 1):
            return None, issues + [Issue(source, f"the text is {junk / len(text):.0%} control or replacement "
                                                 "characters: binary data, not HTML", "error", "binary")]
    return text, issues


def _decode(data: bytes, source: str) -> tuple[str | None, list[Issue]]:
    issues: list[Issue] = []
    if not data.strip():
        return None, [Issue(source, "the file is empty", "error", "empty")]
    sample = data[:8192]
    if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [Issue(source, "the file is binary, not HTML", "error", "binary")]
    declared = _declared_charset(sample)
    if declared and not _browser_codec(declared):
        issues.append(Issue(source, f"declared encoding {declared!r} is not one browsers support; detected instead",
                            code="encoding"))
        declared = None
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


#: Python codecs of the encodings of the WHATWG Encoding Standard (what browsers decode).
#: A label Python knows but browsers do not (UTF-7, EBCDIC, rot13, hz...) is ignored as an
#: unknown one is: UTF-7 would turn harmless-looking ``+ADw-script+AD4-`` into ``<script>``.
_BROWSER_CODECS = frozenset({
    "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp866", "iso8859-2", "iso8859-3", "iso8859-4",
    "iso8859-5", "iso8859-6", "iso8859-7", "iso8859-8", "iso8859-10", "iso8859-13", "iso8859-14",
    "iso8859-15", "iso8859-16", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "cp874", "cp1250",
    "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "gbk", "gb18030",
    "big5", "big5hkscs", "euc_jp", "iso2022_jp", "shift_jis", "cp932", "euc_kr", "cp949",
})


def _browser_codec(label: str) -> bool:
    try:
        return codecs.lookup(label).name in _BROWSER_CODECS
    except LookupError:
        return True  # unknown to Python as well: decoding fails and says so, as before


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


MAX_SLUG_CHARS = 100
#: What a slug is made of: it goes into URLs, HTML and the ``/v1/faqs/{slug}`` route unescaped.
SLUG_PATTERN = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")


def safe_slug(text: str) -> str:
    """``text`` as lowercase ASCII letters, digits and underscores joined by single hyphens
    (accents folded, everything else a separator; underscores kept so that existing file
    names keep their slugs); empty when nothing of it is ASCII."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9_]+", "-", folded.lower()).strip("-")[:MAX_SLUG_CHARS].strip("-")


def slug_for(canonical: str | None, source: str) -> str:
    """Stable slug: the canonical URL's last path segment, else the file name, made safe
    (``SLUG_PATTERN``); a hash of the file name when neither has an ASCII letter or digit."""
    candidates = []
    if canonical:
        segments = [unquote(s) for s in urlsplit(canonical).path.split("/") if s]
        if segments and re.fullmatch(r"index\.html?", segments[-1], re.I):
            segments.pop()
        if segments:
            candidates.append(re.sub(r"\.html?$", "", segments[-1], flags=re.I))
    candidates.append(re.sub(r"\.html?$", "", Path(source).name, flags=re.I))
    for candidate in candidates:
        slug = safe_slug(candidate)
        if slug:
            break
    else:
        slug = "article-" + sha256(source.encode("utf-8"))[:12]
    assert SLUG_PATTERN.fullmatch(slug), slug
    return slug


_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def site_canonical(raw: str | None, site_url: str = "") -> tuple[str | None, str | None]:
    """(canonical URL, None) when ``raw`` names a page of this site, else (None, why not).

    Read as a browser reads it (controls trimmed, tabs and newlines removed), it must be an
    http(s) URL, on the host of ``site_url`` when that is set, or a path starting with one
    ``/``. Scheme-relative (``//host``) and backslash (``/\\host``) forms are refused:
    browsers take both to another host.
    """
    if not raw:
        return None, None
    url = raw.strip(_C0_OR_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
    if "\\" in url:
        return None, "has a backslash"
    parts = urlsplit(url)
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None, "is not an http(s) URL"
        site_host = urlsplit(site_url).hostname if site_url else None
        if site_host and parts.hostname != site_host:
            return None, f"is on another host than the site ({site_host})"
    elif not url.startswith("/") or url.startswith("//"):
        return None, "is neither an http(s) URL nor a path starting with /"
    if parts.path.startswith("//"):
        return None, "has a path starting with //"
    return url, None


def parse_page(data: bytes, source: str, *, selector: str | None = None, max_bytes: int | None = None,
               site_url: str = "", max_sections: int | None = None) -> tuple[Article | None, list[Issue]]:
    """One file's bytes to an article with unresolved links (pure: no file access).

    Over ``max_sections`` sections, the text of the others (headings and answers) joins the
    last kept section, so that it stays searchable without one page flooding the index.
    """
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
    if max_sections is not None and len(result.sections) > max_sections:
        extra = len(result.sections) - max_sections
        _merge_tail(result.sections, max_sections)
        issues.append(Issue(source, f"{max_sections + extra} sections, over the cap of {max_sections} "
                                    f"(FAQ_MAX_SECTIONS_PER_ARTICLE): the text of the last {extra} joins "
                                    f"section #{result.sections[-1].anchor}", code="too-many-sections"))
    canonical, problem = site_canonical(ex.canonical, site_url)
    if problem:
        issues.append(Issue(source, f"canonical URL {ex.canonical!r} {problem}; ignored", code="canonical-url"))
    slug = slug_for(canonical, source)
    url = _site_path(canonical) or f"/{slug}/"
    base = canonical or "/" + source  # relative links resolve like the file's own location
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
        canonical=canonical,
        description=ex.description,
        published=ex.published,
        modified=ex.modified,
        sections=result.sections,
        outline=[asdict(h) for h in result.outline],
        raw_links=raw_links,
    )
    return article, issues


def _merge_tail(sections: list[Section], keep: int) -> None:
    """Fold ``sections[keep:]`` into ``sections[keep - 1]``: their headings and answers as text."""
    last = sections[keep - 1]
    for section in sections[keep:]:
        last.answer += f"\n\n{section.question}\n\n{section.answer}"
        last.links.extend(section.links)
    del sections[keep:]


def _site_path(url: str | None) -> str | None:
    """The path of an (already checked) canonical URL, percent-encoded where it is not
    URL-safe so that it can go into HTML and JSON as it is."""
    if not url:
        return None
    path = urlsplit(url).path
    return quote(path, safe="/%-._~!$*+,;=:@") or "/"


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


#: Same-site pages that are not articles (contact, legal, accounts, archives, files): a link
#: to one is information for editors, not a broken link.
NON_ARTICLE_PATH = re.compile(
    r"^/(?:(?:contact|contact-us|about|about-us|privacy|privacy-policy|terms|terms-of-service|terms-of-use|"
    r"terms-and-conditions|cookies?|cookie-policy|legal|imprint|impressum|accessibility|sitemap|search|"
    r"login|log-in|signin|sign-in|logout|register|signup|sign-up|account|my-account|cart|checkout|book|"
    r"booking|book-now|appointments?|schedule|careers|jobs|category|categories|tag|tags|author|authors|"
    r"archives?|page|feed|rss|wp-admin|wp-login\.php|wp-content)(?:/.*)?|.*\.(?:pdf|docx?|xlsx?|pptx?|jpe?g|"
    r"png|gif|webp|svg|mp3|mp4|zip|ics|vcf|txt|csv|xml))?$", re.I)


def is_non_article_link(href: str) -> bool:
    """Does ``href`` go to a same-site page that is not an article (``/contact/``, ``/``, a PDF)?"""
    return bool(NON_ARTICLE_PATH.match(unquote(urlsplit(href).path) or "/"))


def resolve_links(article: Article, link_map: LinkMap) -> None:
    """Fill ``article.links`` and report internal links that point nowhere; a link to a page
    of the site that is not an article is not a problem (``site_link_notes`` lists them)."""
    article.links = [link_map.resolve(pos, href, text) for pos, href, text in article.raw_links]
    article.issues = [i for i in article.issues if i.code != "broken-link"]
    for link in article.links:
        if link.kind == "broken" and not is_non_article_link(link.href):
            article.issues.append(
                Issue(article.source, f"internal link {link.href!r} ({link.text!r}) matches no article", code="broken-link")
            )


def site_link_notes(article: Article) -> list[Issue]:
    """Information for editors: links (after ``resolve_links``) to same-site pages that are
    not articles."""
    return [Issue(article.source, f"link {lk.href!r} ({lk.text!r}) goes to a page of the site that is not an article",
                  "info", "site-link")
            for lk in article.links if lk.kind == "broken" and is_non_article_link(lk.href)]


def fingerprint(obj: object) -> str:
    """A stable hash of JSON-able data: what decides whether an article's documents changed."""
    return sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
