"""indexer.corpus: files → decoded text → articles with sections and resolved links."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.corpus import (
    LinkMap,
    corpus_entries,
    decode,
    fingerprint,
    is_non_article_link,
    iter_files,
    link_key,
    parse_page,
    resolve_links,
    slug_for,
)

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FIXTURES = Path(__file__).parent / "fixtures" / "corpus"
SITE = "https://mypsychotherapy.example"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str, **kwargs):
    return parse_page(fixture_bytes(name), name, **kwargs)


def codes(issues) -> list[str]:
    return [i.code for i in issues]


@pytest.fixture(scope="module")
def real_articles():
    articles = {}
    for path in sorted(CORPUS.glob("*.html")):
        article, issues = parse_page(path.read_bytes(), path.name)
        assert article is not None, issues
        assert not [i for i in issues if i.level == "error"]
        article.issues = issues
        articles[article.slug] = article
    link_map = LinkMap([(a.slug, a.url, a.canonical, a.source) for a in articles.values()])
    for article in articles.values():
        resolve_links(article, link_map)
    return articles


@pytest.fixture(scope="module")
def real_link_map(real_articles):
    return LinkMap([(a.slug, a.url, a.canonical, a.source) for a in real_articles.values()])


# --------------------------------------------------------------------------- decode


def test_decode_honours_a_declared_windows_1252_charset():
    text, issues = decode(fixture_bytes("windows-1252.html"), "windows-1252.html")
    assert issues == []
    assert "Therapist’s Notes on Café Conversations" in text
    assert "“quoted” words" in text and "naïve hopes – and" in text


@pytest.mark.parametrize("label", ["iso-8859-1", "ISO-8859-1", "latin1", "us-ascii"])
def test_decode_reads_latin1_and_ascii_labels_as_windows_1252_like_browsers(label):
    data = f'<meta charset="{label}"><p>'.encode() + "Therapist’s “notes” – café</p>".encode("cp1252")
    text, issues = decode(data, "legacy.html")
    assert text.endswith("<p>Therapist’s “notes” – café</p>")  # not C1 control characters
    assert issues == []


def test_decode_of_a_misdeclared_encoding_warns_and_detects_instead():
    text, issues = decode(fixture_bytes("misdeclared-latin1.html"), "misdeclared-latin1.html")
    assert text is not None and "Fréquently Asked Questions" in text and "déjà vu" in text
    assert [(i.level, i.code) for i in issues] == [("warning", "encoding")]
    assert "'utf-8' does not decode" in issues[0].message


def test_parse_page_of_a_misdeclared_encoding_still_gives_an_article():
    article, issues = parse_fixture("misdeclared-latin1.html")
    assert article is not None and article.title == "Fréquently Asked Questions"
    assert "encoding" in codes(issues)
    assert all(i.level == "warning" for i in issues)


def test_decode_without_a_declared_charset_detects_windows_1252_and_says_so():
    data = "<p>Caf\u00e9 \u2019quotes\u2019</p>".encode("cp1252")
    text, issues = decode(data, "x.html")
    assert text == "<p>Café ’quotes’</p>"
    assert codes(issues) == ["encoding"] and "no charset declared" in issues[0].message


def test_decode_of_undeclared_utf8_is_silent():
    text, issues = decode("<p>Café</p>".encode(), "x.html")
    assert (text, issues) == ("<p>Café</p>", [])


@pytest.mark.parametrize("bom, encoding", [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le")])
def test_decode_trusts_a_byte_order_mark(bom, encoding):
    text, issues = decode(bom + "<p>Zoë</p>".encode(encoding), "x.html")
    assert text == "<p>Zoë</p>" and issues == []


def test_decode_of_an_unknown_declared_charset_warns_and_detects():
    text, issues = decode(b'<meta charset="x-klingon"><p>plain</p>', "x.html")
    assert text is not None and "plain" in text
    assert codes(issues) == ["encoding"]


@pytest.mark.parametrize("data", [b"", b"   \n\t  \n"])
def test_empty_file_is_an_error_not_a_crash(data):
    text, issues = decode(data, "empty.html")
    assert text is None
    assert [(i.level, i.code) for i in issues] == [("error", "empty")]


def test_binary_file_is_an_error_not_a_crash():
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    text, issues = decode(data, "logo.html")
    assert text is None
    assert [(i.level, i.code) for i in issues] == [("error", "binary")]
    article, issues = parse_page(data, "logo.html")
    assert article is None and codes(issues) == ["binary"]


# --------------------------------------------------------------------------- parse_page


def test_file_over_the_size_cap_is_skipped_with_an_error():
    data = fixture_bytes("no-headings.html")
    article, issues = parse_page(data, "big.html", max_bytes=len(data) - 1)
    assert article is None
    assert [(i.level, i.code) for i in issues] == [("error", "too-large")]
    assert f"{len(data):,} bytes" in issues[0].message
    article, _ = parse_page(data, "big.html", max_bytes=len(data))  # at the cap is fine
    assert article is not None


@pytest.mark.parametrize("name", ["notes.txt", "page.php", "README", "page.html.bak"])
def test_file_without_an_html_extension_is_rejected(name):
    article, issues = parse_page(fixture_bytes("no-headings.html"), name)
    assert article is None
    assert [(i.level, i.code) for i in issues] == [("error", "not-html")]


@pytest.mark.parametrize("name", ["page.htm", "PAGE.HTML"])
def test_htm_and_upper_case_extensions_are_html(name):
    article, _ = parse_page(fixture_bytes("no-headings.html"), name)
    assert article is not None


def test_text_without_markup_is_not_html():
    article, issues = parse_page(b"just some words, no tags at all", "plain.html")
    assert article is None and codes(issues) == ["not-html"]


def test_page_without_main_text_is_an_error():
    article, issues = parse_page(b"<html><head><title>Blank</title></head><body></body></html>", "blank.html")
    assert article is None
    assert ("error", "empty") in [(i.level, i.code) for i in issues]


def test_page_without_headings_is_one_section_with_a_warning():
    article, issues = parse_fixture("no-headings.html")
    assert [s.question for s in article.sections] == ["A Note on Cancellations"]
    assert "forty-eight hours" in article.sections[0].answer and "call the office" in article.sections[0].answer
    assert ("warning", "split") in [(i.level, i.code) for i in issues]
    assert any("no headings" in i.message for i in issues)


def test_page_without_any_title_is_named_after_its_file_with_a_warning():
    article, issues = parse_fixture("no-title.html")
    assert article.title == "No title"
    assert [(i.level, i.code) for i in issues if i.code == "no-title"] == [("warning", "no-title")]


def test_slug_and_url_come_from_the_canonical_url_when_there_is_one():
    article, _ = parse_fixture("canonical-slug.html")
    assert article.slug == "anxiety-in-teens"
    assert article.url == "/blog/Anxiety-In-Teens/"
    assert article.canonical == f"{SITE}/blog/Anxiety-In-Teens/"


def test_slug_and_url_come_from_the_file_name_without_a_canonical_url():
    article, _ = parse_fixture("windows-1252.html")
    assert (article.slug, article.url, article.canonical) == ("windows-1252", "/windows-1252/", None)


@pytest.mark.parametrize(
    ("canonical", "source", "slug"),
    [
        (f"{SITE}/goals-of-psychotherapy/", "anything.html", "goals-of-psychotherapy"),
        (f"{SITE}/blog/2025/post-name.html", "x.html", "post-name"),
        (f"{SITE}/Mixed-Case", "x.html", "mixed-case"),
        (f"{SITE}/", "home-page.html", "home-page"),  # no path segment: the file decides
        (None, "sub/dir/Page-Name.htm", "page-name"),
        ("", "a.html", "a"),
    ],
)
def test_slug_for(canonical, source, slug):
    assert slug_for(canonical, source) == slug


def test_article_records_the_hash_of_its_bytes():
    data = fixture_bytes("canonical-slug.html")
    article, _ = parse_page(data, "canonical-slug.html")
    assert article.sha256 == hashlib.sha256(data).hexdigest()


def test_raw_links_are_absolute_and_skip_mailto_and_same_page_fragments():
    article, _ = parse_fixture("links.html")
    assert article.raw_links == [
        (1, f"{SITE}/goals-of-psychotherapy/", "goals of psychotherapy"),
        (1, f"{SITE}/how-long-does-psychoanalysis-take", "how long psychoanalysis takes"),
        (1, f"{SITE}/online-therapy-new-york-city/#choosing-an-online-therapist", "choosing an online therapist"),
        (1, f"{SITE}/can-psychotherapy-notes-be-subpoenaed.html", "subpoenaed notes"),
        (2, "https://www.nimh.nih.gov/health/topics/psychotherapies", "NIMH overview of psychotherapies"),
        (2, f"{SITE}/grief-counselling/", "grief counselling"),
    ]


def test_relative_links_resolve_against_the_file_location_without_a_canonical():
    html = (b'<html><head><title>Sub Page Title Here</title></head><body><article><h1>Sub Page Title Here</h1>'
            b'<p>See <a href="sibling.html">the sibling page</a> and <a href="../top-level/">a top page</a> '
            b'for more on this topic, which matters a great deal to many readers of this site.</p></article></body></html>')
    article, _ = parse_page(html, "guides/sub-page.html")
    assert [href for _, href, _ in article.raw_links] == ["/guides/sibling.html", "/top-level/"]


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize(
    "href",
    [
        "/goals-of-psychotherapy/",
        "/goals-of-psychotherapy",
        "/goals-of-psychotherapy.html",
        "/goals-of-psychotherapy/index.html",
        "/goals-of-psychotherapy/?utm_source=newsletter",
        f"{SITE}/goals-of-psychotherapy/",
        f"{SITE}/goals-of-psychotherapy",
        "https://MyPsychotherapy.example/Goals-Of-Psychotherapy/",
        "http://mypsychotherapy.example/goals-of-psychotherapy/",
    ],
)
def test_link_map_normalises_trailing_slashes_html_case_query_and_host(real_link_map, href):
    link = real_link_map.resolve(3, href, "text")
    assert (link.kind, link.slug, link.section, link.fragment) == ("internal", "goals-of-psychotherapy", 3, "")


def test_link_map_keeps_the_fragment_of_an_internal_link(real_link_map):
    link = real_link_map.resolve(0, "/online-therapy-new-york-city/#choosing-an-online-therapist", "t")
    assert (link.kind, link.slug, link.fragment) == ("internal", "online-therapy-new-york-city", "choosing-an-online-therapist")


def test_link_map_finds_an_article_by_its_file_name():
    link_map = LinkMap([("anxiety-in-teens", "/blog/anxiety-in-teens/", None, "old/anxiety.html")])
    assert link_map.resolve(0, "/old/anxiety.html", "t").slug == "anxiety-in-teens"
    assert link_map.resolve(0, "/blog/anxiety-in-teens", "t").slug == "anxiety-in-teens"
    assert link_map.resolve(0, "/anxiety-in-teens/", "t").slug == "anxiety-in-teens"


@pytest.mark.parametrize("href", ["https://www.nimh.nih.gov/health/", "//cdn.example.org/goals-of-psychotherapy/",
                                  "https://other.example/goals-of-psychotherapy/"])
def test_links_to_other_hosts_are_external_even_when_the_path_matches(real_link_map, href):
    link = real_link_map.resolve(0, href, "t")
    assert (link.kind, link.slug) == ("external", None)


@pytest.mark.parametrize("href", ["/grief-counselling/", f"{SITE}/nope", "/"])
def test_site_links_that_match_no_article_are_broken(real_link_map, href):
    assert real_link_map.resolve(0, href, "t").kind == "broken"


def test_site_url_makes_its_host_internal_without_canonicals():
    entries = [("goals-of-psychotherapy", "/goals-of-psychotherapy/", None, "goals-of-psychotherapy.html")]
    assert LinkMap(entries).resolve(0, f"{SITE}/goals-of-psychotherapy/", "t").kind == "external"
    assert LinkMap(entries, site_url=SITE).resolve(0, f"{SITE}/goals-of-psychotherapy/", "t").kind == "internal"


@pytest.mark.parametrize(("url", "key"), [("/a/b/", "/a/b"), ("https://h.example/A/index.htm", "/a"),
                                          ("/a.html#x", "/a"), ("", "/"), ("https://h.example", "/")])
def test_link_key(url, key):
    assert link_key(url) == key


def test_resolve_links_keeps_external_links_apart_and_reports_broken_ones(real_link_map):
    article, _ = parse_fixture("links.html")
    resolve_links(article, real_link_map)
    kinds = [(lk.kind, lk.slug) for lk in article.links]
    assert kinds == [
        ("internal", "goals-of-psychotherapy"),
        ("internal", "how-long-does-psychoanalysis-take"),
        ("internal", "online-therapy-new-york-city"),
        ("internal", "can-psychotherapy-notes-be-subpoenaed"),
        ("external", None),
        ("broken", None),
    ]
    broken = [i for i in article.issues if i.code == "broken-link"]
    assert len(broken) == 1 and "grief-counselling" in broken[0].message and broken[0].source == "links.html"
    assert article.related == ["goals-of-psychotherapy", "how-long-does-psychoanalysis-take",
                               "online-therapy-new-york-city", "can-psychotherapy-notes-be-subpoenaed"]
    resolve_links(article, real_link_map)  # resolving again does not repeat the issue
    assert len([i for i in article.issues if i.code == "broken-link"]) == 1


def test_goals_article_links_resolve_to_the_three_other_articles_in_their_sections(real_articles):
    goals = real_articles["goals-of-psychotherapy"]
    questions = {s.position: s.question for s in goals.sections}
    resolved = [(questions[lk.section], lk.kind, lk.slug, lk.fragment) for lk in goals.links]
    assert resolved == [
        ("How Psychotherapy Works", "internal", "can-psychotherapy-notes-be-subpoenaed", ""),
        ("Long-Term Recovery and Resilience", "internal", "how-long-does-psychoanalysis-take", ""),
        ("How to Begin and Find Therapeutic Help", "internal", "online-therapy-new-york-city",
         "choosing-an-online-therapist"),
    ]
    assert goals.related == ["can-psychotherapy-notes-be-subpoenaed", "how-long-does-psychoanalysis-take",
                             "online-therapy-new-york-city"]


def test_real_corpus_parses_without_errors_or_broken_links(real_articles):
    assert sorted(real_articles) == ["can-psychotherapy-notes-be-subpoenaed", "goals-of-psychotherapy",
                                     "how-long-does-psychoanalysis-take", "online-therapy-new-york-city"]
    for article in real_articles.values():
        assert article.url == f"/{article.slug}/"
        assert not [lk for lk in article.links if lk.kind == "broken"], article.slug
        assert article.sections[0].question == article.title


def test_real_goals_article_has_twenty_sections_with_the_page_anchors(real_articles):
    goals = real_articles["goals-of-psychotherapy"]
    assert goals.title == "Goals of Psychotherapy: What Therapy Can Help You Achieve"
    assert len(goals.sections) == 20
    assert goals.sections[6].anchor == "core-goals-of-psychotherapy"
    assert [h["level"] for h in goals.outline].count(3) == 9


# --------------------------------------------------------------------------- files


def test_iter_files_skips_readme_synonyms_and_hidden_files_and_recurses(tmp_path):
    for name in ("b.html", "a.htm", "README.md", "synonyms.txt", ".DS_Store", ".hidden.html", "sub/c.html", "x.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<p>x</p>")
    assert [str(p.relative_to(tmp_path)) for p in iter_files(tmp_path)] == ["a.htm", "b.html", "sub/c.html", "x.txt"]


def test_corpus_entries_list_what_iter_files_lists_in_the_same_path_order(tmp_path):
    # "a-b.html" sorts before "a/b.html" as a string ("-" < "/") but after it as a path ("a" < "a-b").
    for name in ("a-b.html", "a/b.html", "a/a/c.html", "a.html", "b/.hidden/x.html", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<p>x</p>")
    entries = corpus_entries(tmp_path)
    assert [source for source, _ in entries] == [str(p.relative_to(tmp_path)) for p in iter_files(tmp_path)]
    assert [source for source, _ in entries] == ["a/a/c.html", "a/b.html", "a-b.html", "a.html"]
    assert all(Path(entry.path) == tmp_path / source for source, entry in entries)


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_a_meta_charset_of_utf16_on_an_ascii_compatible_page_is_read_as_utf8():
    for tail in (b"", b" "):
        data = ('<html><head><meta charset="utf-16"><title>Caf\u00e9</title></head><body><article>'
                "<h2 id='a'>Caf\u00e9?</h2><p>Yes, caf\u00e9.</p></article></body></html>").encode("utf-8") + tail
        article, issues = parse_page(data, "cafe.html")
        assert article is not None, issues
        assert article.sections[-1].answer == "Yes, caf\u00e9."


@pytest.mark.parametrize(("canonical", "slug"), [
    ("https://example.org/th%C3%A9rapie/", "therapie"),
    ("https://example.org/blog/anxiety/index.html", "anxiety"),
    ("https://example.org/blog/anxiety.html", "anxiety"),
])
def test_slug_from_canonical_is_decoded_and_ignores_index_html(canonical, slug):
    assert slug_for(canonical, "whatever.html") == slug


def test_a_link_written_unencoded_matches_a_percent_encoded_canonical():
    link_map = LinkMap([("th\u00e9rapie", "/th%C3%A9rapie/", "https://example.org/th%C3%A9rapie/", "t.html")])
    assert link_map.resolve(0, "https://example.org/th\u00e9rapie/", "x").slug == "th\u00e9rapie"


# --------------------------------------------------------------------------- symlinks


def outside_page(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.html"
    secret.write_text("<html><head><title>Secret Page Here</title></head><body><article><h2 id='s'>Secret?</h2>"
                      "<p>root:x:0:0 secret text that must never be published.</p></article></body></html>")
    return secret


def test_iter_files_skips_symlinks_whose_real_path_is_outside_the_corpus_with_a_warning(tmp_path):
    secret = outside_page(tmp_path)
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.html").write_text("<p>a</p>")
    (corpus / "sub" / "b.html").write_text("<p>b</p>")
    (corpus / "x.html").symlink_to(secret)
    (corpus / "passwd.html").symlink_to("/etc/passwd")
    (corpus / "linked-dir").symlink_to(secret.parent, target_is_directory=True)
    (corpus / "inside.html").symlink_to(corpus / "sub" / "b.html")  # inside: kept
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)  # inside, but a cycle
    issues: list = []
    found = [str(p.relative_to(corpus)) for p in iter_files(corpus, issues)]
    assert found == ["a.html", "inside.html", "sub/b.html"]
    warned = {i.source: i for i in issues}
    assert set(warned) >= {"x.html", "passwd.html", "linked-dir"}
    assert all(i.level == "warning" and i.code == "outside-corpus" for i in warned.values())
    assert "outside the corpus folder" in warned["x.html"].message


# --------------------------------------------------------------------------- slugs, canonical URLs


@pytest.mark.parametrize(("canonical", "slug"), [
    ("https://example.org/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E/", "img-src-x-onerror-alert-1"),
    ("https://example.org/Th%C3%A9rapie_Guide/", "therapie_guide"),
    ("https://example.org/cancergov_0000001_1.html", "cancergov_0000001_1"),  # file-name slugs are kept
    ("https://example.org/%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82/", "page-name"),  # nothing ASCII: the file
    ("https://example.org/a%2F..%2F..%2Fb/", "a-b"),
])
def test_slugs_are_made_of_lowercase_ascii_letters_digits_underscores_and_hyphens(canonical, slug):
    assert slug_for(canonical, "Page Name.html") == slug


@given(st.text(max_size=40), st.text(max_size=20))
@settings(max_examples=200)
def test_every_slug_is_safe_whatever_the_canonical_and_file_name(canonical, name):
    slug = slug_for("https://example.org/" + canonical, name + ".html")
    assert re.fullmatch(r"[a-z0-9_]+(-[a-z0-9_]+)*", slug), slug
    assert len(slug) <= 100


def page_with_canonical(canonical: str, heading_id: str = "q") -> bytes:
    return (f'<html><head><title>Some Page Title</title><link rel="canonical" href="{canonical}"></head>'
            f'<body><article><h2 id="{heading_id}">Question here?</h2><p>Answer text that is long enough.</p>'
            "</article></body></html>").encode()


@pytest.mark.parametrize("canonical", [
    "//evil.example/phish/", "/\\evil.example/phish/", "\\\\evil.example/phish/", "/\t/evil.example/phish/",
    "https://example.org//evil.example/phish/", "https://example.org/\\evil.example/", "javascript:alert(1)",
    "data:text/html,x", "https://evil.example/phish/",
])
def test_a_canonical_url_never_makes_an_off_site_article_url(canonical):
    article, issues = parse_page(page_with_canonical(canonical), "page.html", site_url="https://example.org")
    assert article is not None
    assert article.url.startswith("/") and not article.url.startswith("//")
    assert "\\" not in article.url and "evil.example" not in article.url.split("/")[1]
    assert urlsplit(urljoin("https://example.org/x/", article.url)).netloc == "example.org"


def test_an_off_site_canonical_is_ignored_with_a_warning():
    article, issues = parse_page(page_with_canonical("//evil.example/phish/"), "page.html")
    assert article.canonical is None and article.url == "/page/" and article.slug == "page"
    assert "canonical-url" in codes(issues)


def test_a_canonical_on_another_host_than_the_site_is_ignored():
    article, _ = parse_page(page_with_canonical("https://evil.example/phish/"), "page.html",
                            site_url="https://example.org")
    assert (article.canonical, article.url) == (None, "/page/")
    article, _ = parse_page(page_with_canonical("https://example.org/real/"), "page.html",
                            site_url="https://example.org")
    assert (article.canonical, article.url, article.slug) == ("https://example.org/real/", "/real/", "real")


def test_an_article_url_from_a_percent_encoded_canonical_stays_encoded():
    article, _ = parse_page(page_with_canonical("https://example.org/%3Cimg%20src%3Dx%3E/"), "p.html")
    assert "<" not in article.url and ">" not in article.url and " " not in article.url
    assert article.url == "/%3Cimg%20src%3Dx%3E/"


# --------------------------------------------------------------------------- hostile text


def test_text_that_is_mostly_control_or_replacement_characters_is_rejected_naming_the_file():
    noise = random.Random(7).randbytes(1_000_000).replace(b"\x00", b"\x01")  # no NUL: not caught as binary
    article, issues = parse_page(b"<html><body><p>" + noise + b"</p></body></html>", "noise.html")
    assert article is None
    assert "binary" in codes(issues)
    assert any(i.source == "noise.html" and "control or replacement" in i.message for i in issues)


def test_a_page_with_a_few_odd_characters_is_still_published():
    body = "<h2 id='q'>Question?</h2><p>" + "Plain words of an answer. " * 40 + "\ufffd\x07</p>"
    article, _ = parse_page(f"<html><body><article>{body}</article></body></html>".encode(), "ok.html")
    assert article is not None


@pytest.mark.parametrize("label", ["utf-7", "UTF-7", "unicode-1-1-utf-7", "rot13", "hz", "base64", "cp037"])
def test_charset_labels_browsers_do_not_support_are_ignored(label):
    data = (f'<html><head><meta charset="{label}"><title>Title Page</title></head><body><article>'
            "<h2 id='a'>Q?</h2><p>+ADw-script+AD4-alert(1)+ADw-/script+AD4- cafe</p></article></body></html>"
            ).encode("ascii")
    text, issues = decode(data, "x.html")
    assert text is not None and "+ADw-script+AD4-" in text and "<script>" not in text
    assert "cafe" in text


def test_a_charset_label_browsers_support_is_still_honoured():
    data = '<html><head><meta charset="koi8-r"></head><body><p>\u043f\u0440\u0438\u0432\u0435\u0442</p></body></html>'
    text, _ = decode(data.encode("koi8-r"), "x.html")
    assert "\u043f\u0440\u0438\u0432\u0435\u0442" in text


def test_sections_beyond_the_cap_join_the_last_kept_section_with_a_warning():
    body = "".join(f"<h2 id='q{i}'>Question {i}?</h2><p>Answer {i}.</p>" for i in range(10))
    data = f"<html><head><title>Many Questions Page</title></head><body><article>{body}</article></body></html>"
    article, issues = parse_page(data.encode(), "many.html", max_sections=4)
    assert [s.anchor for s in article.sections] == ["q0", "q1", "q2", "q3"]
    assert "Answer 3." in article.sections[-1].answer and "Question 9?" in article.sections[-1].answer
    assert "Answer 9." in article.sections[-1].answer
    assert any(i.code == "too-many-sections" and "4" in i.message for i in issues)


@pytest.mark.parametrize(("href", "non_article"), [
    ("/contact/", True), ("https://mypsychotherapy.example/privacy-policy/", True), ("/", True),
    ("/tag/anxiety/", True), ("/files/intake-form.pdf", True), ("/grief/", False),
    ("/contact-lenses-and-anxiety/", False), ("/no-such-article/", False),
])
def test_links_to_site_pages_that_are_not_articles_are_recognised(href, non_article):
    assert is_non_article_link(href) is non_article
