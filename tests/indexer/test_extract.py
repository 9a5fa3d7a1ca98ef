"""indexer.extract: main-content detection, chrome removal, metadata, robustness."""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.extract import Extraction, extract, extract_text

FIXTURES = Path(__file__).parent / "fixtures" / "extract"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
READABILITY_PAGES = SHARED / "readability" / "pages.tar.gz"
F1_TOOL = SHARED / "tools" / "extract_f1.py"
METHODS = {"selector", "article", "main", "role-main", "cms-class", "density", "body"}


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def text_of(result: Extraction) -> str:
    return " ".join(result.content.get_text(" ").split())


def assert_well_formed(result: Extraction) -> None:
    assert isinstance(result.content, Tag)
    assert isinstance(result.content.parent, BeautifulSoup), "content must sit in its own tree"
    assert result.method in METHODS
    assert isinstance(result.title, str) and isinstance(result.description, str)
    assert all(isinstance(w, str) and w for w in result.warnings)


# --------------------------------------------------------------------------- CMS page chrome


@pytest.fixture(scope="module")
def cms() -> Extraction:
    return extract(load("cms_article.html"))


def test_article_is_found_inside_cms_chrome(cms: Extraction) -> None:
    assert cms.method == "article"
    assert cms.content.name == "article"
    assert cms.warnings == []
    assert_well_formed(cms)


def test_cookie_banner_and_nav_are_dropped(cms: Extraction) -> None:
    text = text_of(cms)
    assert "cookies" not in text.lower()
    assert "Skip to content" not in text
    assert "Contact us" not in text
    assert cms.content.find("nav") is None


def test_site_header_footer_sidebar_and_comments_are_dropped(cms: Extraction) -> None:
    text = text_of(cms)
    chrome_texts = ("Calm Rooms Therapy", "Recent posts", "Privacy", "thoughts on", "Monday")
    for chrome in chrome_texts:
        assert chrome not in text
    assert cms.content.find("footer") is None
    assert cms.content.find("aside") is None


def test_share_related_newsletter_and_tags_widgets_are_dropped(cms: Extraction) -> None:
    text = text_of(cms)
    for chrome in ("Share this", "Facebook", "Related posts", "panic attacks", "newsletter",
                   "Subscribe", "Tagged"):
        assert chrome not in text
    assert cms.content.find(["form", "input", "button"]) is None


def test_byline_is_dropped_but_h1_and_its_header_stay(cms: Extraction) -> None:
    h1 = cms.content.find("h1")
    assert h1 is not None and h1.get_text(strip=True) == "Coping with Social Anxiety at Work"
    assert h1.find_parent("header") is not None
    assert "Dr Sam Lee" not in text_of(cms)


def test_article_text_tables_lists_and_figure_captions_are_kept(cms: Extraction) -> None:
    text = text_of(cms)
    assert text.startswith("Coping with Social Anxiety at Work Social anxiety is more than shy")
    assert "Graded exposure: speaking up briefly" in text
    table = cms.content.find("table")
    assert table is not None and table.find("caption").get_text(strip=True).startswith("Typical")
    assert len(table.find_all("tr")) == 3
    assert cms.content.find("figcaption").get_text(strip=True).startswith("Small meetings")
    assert cms.content.find("img")["src"] == "/img/meeting.jpg"


def test_topic_sections_named_like_widgets_are_kept(cms: Extraction) -> None:
    # id "social-anxiety-and-remote-work" contains "social", but the section is real text
    section = cms.content.find(id="social-anxiety-and-remote-work")
    assert section is not None
    assert "Turning off self-view" in section.get_text()


def test_page_builder_widget_wrappers_are_not_mistaken_for_widgets() -> None:
    result = extract(load("page_builder.html"))
    text = text_of(result)
    assert result.method == "cms-class"
    assert text.startswith("Informed consent and your rights Before therapy begins")
    assert "What informed consent means" in text  # id="informed-consent", class "...widget..."
    assert "Consent is not a one-off signature" in text
    assert "Share on" not in text and "Home" not in text


# --------------------------------------------------------------------------- detection chain


def test_main_is_used_when_there_is_no_article() -> None:
    result = extract(load("main_only.html"))
    assert result.method == "main"
    assert result.content.name == "main"
    text = text_of(result)
    assert text.startswith("Our fees An initial consultation")
    assert "Cancellations" in text and "Example Street" not in text


def test_role_main_is_used() -> None:
    result = extract(load("role_main.html"))
    assert result.method == "role-main"
    assert result.content.get("role") == "main"
    text = text_of(result)
    assert "The first session is mostly a conversation." in text
    assert "Depression" not in text and "About" not in text


def test_density_finds_the_article_among_nav_link_lists() -> None:
    result = extract(load("density.html"))
    assert result.method == "density"
    text = text_of(result)
    assert text.startswith("When someone dies suddenly")
    assert "continuing with your life." in text
    for chrome in ("Topics", "Archive", "Bereavement helpline", "Eating disorders"):
        assert chrome not in text


def test_editor_selector_wins_over_detection() -> None:
    result = extract(load("cms_article.html"), selector="div.entry-content")
    assert result.method == "selector"
    assert result.warnings == []
    assert result.content.get("class") == ["entry-content"]
    assert result.content.find("h1") is None  # detection would have taken the whole <article>
    assert text_of(result).startswith("Social anxiety is more than shyness.")
    assert result.title == "Coping with Social Anxiety at Work"


def test_selector_matching_nothing_warns_and_falls_back() -> None:
    result = extract(load("cms_article.html"), selector=".no-such-class")
    assert result.method == "article"
    assert result.warnings == [
        "content selector '.no-such-class' matched nothing; fell back to detection"
    ]
    assert "Social anxiety is more than shyness." in text_of(result)


def test_invalid_selector_warns_and_falls_back() -> None:
    result = extract(load("main_only.html"), selector="div[")
    assert result.method == "main"
    assert len(result.warnings) == 1 and "is invalid" in result.warnings[0]


def test_most_substantial_article_wins_over_cards() -> None:
    cards = "".join(
        f'<article class="card"><h3><a href="/p{i}">Teaser {i}</a></h3><p>Blurb.</p></article>'
        for i in range(6)
    )
    body = " ".join(["Therapy helps people understand their feelings, and change patterns."] * 12)
    page = f"<html><body><article><h1>Main story</h1><p>{body}</p></article>{cards}</body></html>"
    result = extract(page)
    assert result.method == "article"
    assert result.content.find("h1").get_text() == "Main story"
    assert "Teaser" not in text_of(result)


# --------------------------------------------------------------------------- what is removed


def test_hidden_and_aria_hidden_elements_are_dropped() -> None:
    result = extract(load("hidden.html"))
    text = text_of(result)
    assert "A panic attack is a sudden surge" in text
    assert "respond well to treatment" in text
    for hidden in ("ICON-TEXT-ARIA", "HIDDEN-ATTRIBUTE", "DISPLAY-NONE", "VISIBILITY-HIDDEN",
                   "NOSCRIPT", "TEMPLATE-TEXT", "COMMENT-TEXT"):
        assert hidden not in text
    assert "COMMENT-TEXT" not in str(result.content)


def test_hidden_until_found_accordion_text_is_kept() -> None:
    page = ("<html><body><article><h1>FAQ</h1><h2 id='q1'>Is it confidential?</h2>"
            "<div hidden='until-found'><p>Yes, within the limits the law sets out, which your "
            "therapist explains in the first session.</p></div></article></body></html>")
    assert "within the limits the law sets out" in text_of(extract(page))


def test_heading_ids_survive_extraction() -> None:
    result = extract(load("headings.html"))
    ids = [h.get("id") for h in result.content.find_all(["h1", "h2", "h3"])]
    assert ids == ["faq", "how-long", None, None, "social-anxiety"]


def test_inner_anchors_of_headings_survive() -> None:
    result = extract(load("headings.html"))
    anchor = result.content.find("a", id="x")
    assert anchor is not None and anchor.parent.name == "h2"
    assert anchor.parent.get_text(strip=True) == "Is therapy confidential?"
    named = result.content.find("a", attrs={"name": "old-anchor"})
    assert named is not None and named.parent.name == "h3"


def test_links_keep_their_href() -> None:
    result = extract(load("headings.html"))
    hrefs = [a.get("href") for a in result.content.find_all("a", href=True)]
    assert "/contact/" in hrefs and "/privacy/#limits" in hrefs


# --------------------------------------------------------------------------- metadata


def test_metadata_from_meta_tags_and_json_ld(cms: Extraction) -> None:
    assert cms.title == "Coping with Social Anxiety at Work"
    assert cms.description == "Practical ways to manage social anxiety in meetings and at work."
    assert cms.canonical == "https://calmrooms.example/social-anxiety-at-work/"
    assert cms.published == "2024-02-01T09:00:00+00:00"
    assert cms.modified == "2024-03-05T10:30:00+00:00"
    assert cms.lang == "en-GB"


def test_json_ld_graph_and_broken_json_are_tolerated() -> None:
    page = """<html><head>
    <script type="application/ld+json">{"@type": "Article", "headline": "Broken", </script>
    <script type="application/ld+json">
      {"@context": "https://schema.org", "@graph": [
        {"@type": "Organization", "name": "Calm Rooms"},
        {"@type": ["BlogPosting"], "headline": "Grief and the holidays",
         "description": "Why December can be hard.", "datePublished": "2023-12-01",
         "dateModified": "2023-12-10",},
      ]}
    </script></head><body><p>Body text.</p></body></html>"""
    result = extract(page)
    assert result.title == "Grief and the holidays"
    assert result.description == "Why December can be hard."
    assert (result.published, result.modified) == ("2023-12-01", "2023-12-10")


def test_title_tag_site_suffix_is_removed() -> None:
    page = ("<html><head><title>Sleep and anxiety: a practical guide | Calm Rooms</title></head>"
            "<body><p>Text.</p></body></html>")
    assert extract(page).title == "Sleep and anxiety: a practical guide"
    assert extract(load("main_only.html")).title == "Our fees"  # the h1 matches the <title>


def test_og_title_site_suffix_is_removed_when_site_name_is_known() -> None:
    page = ('<html><head><meta property="og:title" content="Couples therapy | Calm Rooms">'
            '<meta property="og:site_name" content="Calm Rooms"></head><body></body></html>')
    assert extract(page).title == "Couples therapy"


def test_h1_is_the_title_when_there_is_no_title_tag() -> None:
    result = extract("<html><body><article><h1>Only a heading</h1><p>x</p></article></body></html>")
    assert result.title == "Only a heading"


def test_missing_metadata_gives_empty_values() -> None:
    result = extract("<p>No head at all, just one paragraph of text.</p>")
    assert (result.title, result.description) == ("", "")
    assert (result.canonical, result.published, result.modified, result.lang) == (None,) * 4


def test_canonical_falls_back_to_og_url_and_published_to_time_element() -> None:
    page = ('<html lang="de"><head><meta property="og:url" content="https://x.example/a/">'
            '</head><body><article><h1>T</h1><p>Posted <time datetime="2022-05-04">4 May</time>'
            "</p></article></body></html>")
    result = extract(page)
    assert result.canonical == "https://x.example/a/"
    assert result.published == "2022-05-04"
    assert result.lang == "de"


# --------------------------------------------------------------------------- input handling


def test_windows_1252_bytes_are_decoded() -> None:
    raw = load("windows1252.html")
    assert b"\xe9" in raw  # really single-byte encoded
    result = extract(raw)
    assert result.title == "Thérapie de couple"
    text = text_of(result)
    assert "sécurité dans la relation" in text and "l’on se voit" in text
    assert result.lang == "fr"


def test_utf8_bytes_with_bom_are_decoded() -> None:
    raw = "\ufeff<html><body><article><p>Séance – thérapie.</p></article></body></html>"
    assert "Séance – thérapie." in text_of(extract(raw.encode("utf-8")))


def test_empty_file_gives_empty_content_and_a_warning(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    for data in (empty.read_bytes(), ""):
        result = extract(data)
        assert_well_formed(result)
        assert result.content.get_text() == ""
        assert result.warnings


def test_binary_junk_does_not_raise() -> None:
    junk = bytes(range(256)) * 40 + b"\x00\xff\xfe<div>\x00</p></html>"
    result = extract(junk)
    assert_well_formed(result)
    assert isinstance(extract_text(junk.decode("latin-1")), str)


def test_page_without_body_gives_empty_content() -> None:
    result = extract("<html><head><title>Only a head</title></head></html>")
    assert result.content.get_text() == ""
    assert "the page has no body" in result.warnings
    assert result.title == "Only a head"


def test_malformed_markup_is_handled() -> None:
    page = "<html><body><div><p>Unclosed <b>bold <i>italic</div></span></table><p>more text"
    result = extract(page)
    assert_well_formed(result)
    assert "Unclosed bold italic" in text_of(result)


def test_deeply_nested_markup_finishes_quickly() -> None:
    start = time.perf_counter()
    result = extract("<div>" * 20000 + "deep text" + "</div>" * 20000)
    assert time.perf_counter() - start < 10
    assert "deep text" in text_of(result)
    assert any("nested" in w for w in result.warnings)


def test_content_is_detached_from_the_page() -> None:
    result = extract(load("main_only.html"))
    root = result.content.parent
    assert isinstance(root, BeautifulSoup)
    assert root.find("header") is None and root.find("footer") is None


def test_extract_text_is_the_text_of_the_content() -> None:
    html = load("role_main.html").decode("utf-8")
    text = extract_text(html)
    assert text == extract(html).content.get_text(" ", strip=True)
    assert text.startswith("What to expect in a first session The first session")


html_bits = st.sampled_from([
    "<div>", "</div>", "<p>", "</p>", "<article>", "</article>", "<main>", "<nav>", "</nav>",
    '<div class="share">', '<div class="entry-content">', "<div hidden>",
    '<span aria-hidden="true">',
    '<p style="display:none">', "<h2 id=x>", "</h2>", '<a href="#a">', "</a>", "<table><tr><td>",
    "<ul><li>", "<!--", "-->", "<script>", "</script>", "<![CDATA[", "<br>", "<title>",
    '<meta property="og:title" content="T">', '<script type="application/ld+json">{"@graph":[',
    "&amp;", "&#0;", "\x00", "\ufffd", ",", "text", " ", "Lorem ipsum dolor sit amet, consectetur.",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=400),
    st.binary(max_size=400),
    st.lists(html_bits, max_size=60).map("".join),
), st.one_of(st.none(), st.sampled_from(["p", "#x", "div[", ":has(", "article > p"])))
def test_arbitrary_input_never_raises(data: str | bytes, selector: str | None) -> None:
    result = extract(data, selector=selector)
    assert_well_formed(result)
    if isinstance(data, str):
        assert isinstance(extract_text(data), str)


# --------------------------------------------------------------------------- real-world pages


def _load_f1_tool():
    spec = importlib.util.spec_from_file_location("extract_f1", F1_TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (READABILITY_PAGES.is_file() and F1_TOOL.is_file()),
    reason=f"Readability test pages or scorer not found under {SHARED}",
)
def test_readability_pages_meet_f1_target() -> None:
    """Token F1 against Mozilla Readability's expected output (tools/extract_f1.py's metric)."""
    tool = _load_f1_tool()
    scores: list[float] = []
    crashes: list[str] = []
    titles = 0
    pages = tool.pages(str(READABILITY_PAGES))
    for name, files in sorted(pages.items()):
        gold = tool.text_of(files["expected.html"])
        try:
            result = extract(files["source.html"])
            scores.append(tool.f1(result.content.get_text(" ", strip=True), gold))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            crashes.append(f"{name}: {exc!r}")
            scores.append(0.0)
            continue
        expected_title = json.loads(files["expected-metadata.json"]).get("title") or ""
        titles += tool.f1(result.title, expected_title) > 0.5
    assert len(scores) == 130
    assert crashes == []
    assert statistics.mean(scores) >= 0.95, f"mean F1 {statistics.mean(scores):.4f}"
    assert statistics.median(scores) >= 0.98, f"median F1 {statistics.median(scores):.4f}"
    assert titles / len(scores) >= 0.9, f"only {titles} titles resemble the expected ones"
