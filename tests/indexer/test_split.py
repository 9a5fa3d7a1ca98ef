"""indexer.split: an article's main content → question-answer sections, one per heading."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.split import INTRO_ANCHOR, safe_href, slugify, split

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
FIXTURES = Path(__file__).parent / "fixtures" / "split"
GOALS_TITLE = "Goals of Psychotherapy: What Therapy Can Help You Achieve"
ANALYSIS_TITLE = "How Long Does Psychoanalysis Take? Length, Frequency and Progress"


def article_of(markup: str):
    """The page's ``<article>`` (the body when it has none), as the extractor would hand it over."""
    soup = BeautifulSoup(markup, "lxml")
    return soup.find("article") or soup.body or soup


def split_fixture(name: str, title: str = "Fixture Article"):
    return split(article_of((FIXTURES / name).read_text(encoding="utf-8")), title)


def by_question(result):
    return {s.question: s for s in result.sections}


@pytest.fixture(scope="module")
def goals_article():
    return article_of((CORPUS / "goals-of-psychotherapy.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def goals(goals_article):
    return split(goals_article, GOALS_TITLE)


# --------------------------------------------------------------------------- the real corpus


def test_goals_article_gives_the_intro_plus_one_section_per_heading(goals, goals_article):
    headings = [h.get_text(" ", strip=True) for h in goals_article.find_all(["h2", "h3"])]
    assert len(headings) == 19
    assert len(goals.sections) == 20
    assert goals.sections[0].question == GOALS_TITLE
    assert [s.question for s in goals.sections[1:]] == headings
    assert [s.position for s in goals.sections] == list(range(20))


def test_goals_article_intro_section_is_titled_with_the_article_title(goals):
    intro = goals.sections[0]
    assert intro.anchor == INTRO_ANCHOR
    assert intro.breadcrumbs == [GOALS_TITLE]
    assert intro.answer.endswith("explore their patterns and build healthier ways of living.")
    assert "Psychotherapy helps people understand their thoughts" in intro.answer
    assert "What Is Psychotherapy?" not in intro.answer


def test_goals_article_anchors_equal_the_page_heading_ids(goals, goals_article):
    ids = [h["id"] for h in goals_article.find_all(["h2", "h3"])]
    assert [s.anchor for s in goals.sections[1:]] == ids
    assert not any(s.anchor_generated for s in goals.sections)
    assert goals.warnings == []


@pytest.mark.parametrize(
    ("question", "parents"),
    [
        ("The 5 P’s in Psychotherapy", ["Psychotherapy Techniques"]),
        ("The Basic Goal of Psychotherapy", ["Core Goals of Psychotherapy"]),
        ("Four Common Goals Explained", ["Core Goals of Psychotherapy"]),
        ("Primary Goal in DID Treatment", ["Core Goals of Psychotherapy"]),
        ("Goals of Counselling", ["Psychotherapy vs Counselling"]),
        ("Shared and Distinct Benefits", ["Psychotherapy vs Counselling"]),
        ("Support for Mental Health Needs", ["Benefits for Daily Life"]),
        ("Improved Relationships", ["Benefits for Daily Life"]),
        ("Coping Skills", ["Benefits for Daily Life"]),
        ("Psychotherapy Techniques", []),
        ("Benefits for Daily Life", []),
        ("How to Begin and Find Therapeutic Help", []),
    ],
)
def test_goals_article_breadcrumbs_name_the_parent_headings(goals, question, parents):
    section = by_question(goals)[question]
    assert section.breadcrumbs == [GOALS_TITLE, *parents]
    assert section.level == (3 if parents else 2)


def test_goals_article_outline_lists_every_heading_with_its_level(goals, goals_article):
    expected = [(int(h.name[1]), h.get_text(strip=True), h["id"]) for h in goals_article.find_all(["h2", "h3"])]
    assert [(h.level, h.text, h.anchor) for h in goals.outline] == expected


def test_four_common_goals_answer_has_the_bullets_as_dash_lines(goals):
    answer = by_question(goals)["Four Common Goals Explained"].answer
    lines = answer.splitlines()
    bullets = [
        "- Understanding emotional and behavioral patterns",
        "- Reducing symptoms that affect life and work",
        "- Improving relationships with family members and others",
        "- Building coping strategies that support long term stability",
    ]
    start = lines.index(bullets[0])
    assert lines[start:start + 4] == bullets  # one item a line, in order, nothing between
    assert answer.startswith("Four goals appear across most approaches.")
    assert answer.endswith("how they support meaningful change.")


def test_goals_answers_hold_the_text_up_to_the_next_heading_of_any_level(goals):
    sections = by_question(goals)
    techniques = sections["Psychotherapy Techniques"].answer
    assert techniques.startswith("Therapists use techniques such as identifying thought patterns")
    assert techniques.endswith("based on the client’s goals and comfort level.")
    assert "5 P’s" not in techniques  # the sub-section's text belongs to the sub-section
    five_ps = sections["The 5 P’s in Psychotherapy"].answer
    assert five_ps.startswith("Some clinicians use the 5 P’s")
    what_is = sections["What Is Psychotherapy?"].answer
    assert what_is.count("\n\n") == 1  # two paragraphs
    assert "manage inner conflict." in what_is


def test_source_line_breaks_inside_a_paragraph_are_spaces():
    markup = "<h2 id='a'>Wrapped</h2>\n<p>A paragraph the CMS\n   wrapped over\n  three lines.</p>\n"
    assert split(article_of(markup), "T").sections[0].answer == "A paragraph the CMS wrapped over three lines."


def test_goals_links_stand_in_the_sections_that_contain_them(goals):
    links = {s.question: [(lk.href, lk.text) for lk in s.links] for s in goals.sections if s.links}
    assert links == {
        "How Psychotherapy Works": [
            ("/can-psychotherapy-notes-be-subpoenaed/", "can psychotherapy notes be subpoenaed")
        ],
        "Long-Term Recovery and Resilience": [
            ("https://mypsychotherapy.example/how-long-does-psychoanalysis-take",
             "how long psychoanalysis typically takes")
        ],
        "How to Begin and Find Therapeutic Help": [
            ("/online-therapy-new-york-city/#choosing-an-online-therapist", "best online therapy in New York City")
        ],
    }
    assert [lk.href for lk in goals.links] == [lk for s in goals.sections for lk in (x.href for x in s.links)]


def test_anchors_come_from_a_id_elements_inside_headings():
    markup = (CORPUS / "how-long-does-psychoanalysis-take.html").read_text(encoding="utf-8")
    article = article_of(markup)
    result = split(article, ANALYSIS_TITLE)
    inner_ids = [h.find("a")["id"] for h in article.find_all(["h2", "h3"])]
    assert all(not h.get("id") for h in article.find_all(["h2", "h3"]))
    assert [s.anchor for s in result.sections] == [INTRO_ANCHOR, *inner_ids]
    assert not any(s.anchor_generated for s in result.sections)
    assert not any("no id" in w for w in result.warnings)
    slow = by_question(result)["When Progress Feels Slow"]
    assert slow.anchor == "when-progress-feels-slow"
    assert slow.breadcrumbs == [ANALYSIS_TITLE, "Signs of Progress"]


@pytest.mark.parametrize("markup", ['<h2><a name="legacy"></a>Old Style</h2><p>x</p>',
                                    '<h2><span id="legacy"></span>Old Style</h2><p>x</p>'])
def test_anchor_may_come_from_a_name_or_a_span_id_inside_the_heading(markup):
    (section,) = split(article_of(markup), "T").sections
    assert section.anchor == "legacy"
    assert not section.anchor_generated


# --------------------------------------------------------------------------- small fixtures


def test_skipped_heading_levels_nest_under_the_nearest_higher_heading():
    result = split_fixture("nested-levels.html")
    crumbs = {s.question: s.breadcrumbs[1:] for s in result.sections}
    assert crumbs == {
        "Fixture Article": [],
        "Approaches": [],
        "Exposure Work": ["Approaches"],  # h2 → h4: the h4's parent is the h2
        "CBT": ["Approaches"],  # back up to h3: the h4 is closed, the h2 is not
        "Homework": ["Approaches", "CBT"],
        "Worksheets": ["Approaches", "CBT", "Homework"],
        "Medication": [],  # a new h2 closes everything below it
    }
    levels = {s.question: s.level for s in result.sections}
    assert levels["Exposure Work"] == 4 and levels["Worksheets"] == 5


def test_h1_with_an_id_names_the_intro_anchor():
    result = split_fixture("nested-levels.html")
    intro = result.sections[0]
    assert (intro.question, intro.anchor, intro.answer) == ("Fixture Article", "page-title", "Intro about anxiety treatment.")
    assert all(h.level >= 2 for h in result.outline)  # the h1 is the title, not in the outline


def test_headings_inside_wrapper_divs_are_found_and_nest_by_level():
    result = split_fixture("wrapper-divs.html")
    sections = by_question(result)
    assert list(sections) == ["First Steps", "What to Bring", "Fees"]
    assert sections["First Steps"].answer == "Call the office."
    assert sections["What to Bring"].answer == "Bring your insurance card."
    assert sections["What to Bring"].breadcrumbs == ["Fixture Article", "First Steps"]
    assert sections["Fees"].answer == "Sessions cost a fee.\n\nSliding scale available."
    assert sections["Fees"].breadcrumbs == ["Fixture Article"]


def test_list_items_become_dash_lines_one_per_item():
    answer = by_question(split_fixture("lists-and-tables.html"))["Common Signs"].answer
    lines = answer.splitlines()
    assert lines[0] == "Watch for:"
    i = lines.index("- Trouble sleeping")
    assert lines[i:i + 3] == ["- Trouble sleeping", "- Loss of interest in hobbies", "- Irritability"]
    for item in ("- at work", "- at home", "- First step", "- Second step"):
        assert item in lines
    j = lines.index("- First step")
    assert lines[j + 1] == "- Second step"


def test_table_rows_become_lines_with_cells_separated_by_bars():
    answer = by_question(split_fixture("lists-and-tables.html"))["Session Costs"].answer
    lines = [line for line in answer.splitlines() if line]
    assert lines[0] == "Fees by session type"
    assert "Type | Length | Fee" in lines
    assert "Individual | 50 minutes | $180" in lines
    assert "Couples | 75 minutes | $240" in lines
    assert answer.endswith("Line one\nLine two")  # <br> is a line break


def test_duplicate_heading_ids_are_made_unique_with_a_warning():
    result = split_fixture("duplicate-ids.html")
    assert [(s.question, s.anchor) for s in result.sections] == [
        ("Overview", "overview"),
        ("Overview", "overview-3"),  # overview-2 is a real id further down: not taken
        ("Overview Two", "overview-2"),
        ("Overview", "overview-4"),  # no id: slug "overview" is taken, and so are -2, -3
    ]
    assert any("duplicate heading ids" in w and "overview" in w for w in result.warnings)
    assert len({s.anchor for s in result.sections}) == len(result.sections)


def test_headings_without_ids_get_slugs_and_a_warning_that_the_page_lacks_ids():
    result = split_fixture("missing-ids.html")
    anchors = {s.question: (s.anchor, s.anchor_generated) for s in result.sections}
    assert anchors["What Is EMDR?"] == ("what-is-emdr", True)
    assert anchors["Children’s Sessions & Teens"] == ("childrens-sessions-teens", True)
    assert anchors["Who Is It For?"] == ("who-is-it-for", False)
    assert [w for w in result.warnings if "no id" in w] == [
        "3 heading(s) have no id; anchors were generated from their text "
        "(add ids in the CMS so that deep links stay stable): 'What Is EMDR?', "
        "'Children’s Sessions & Teens', 'Sessions'"
    ]


def test_a_generated_slug_never_takes_an_id_another_heading_really_has():
    result = split_fixture("missing-ids.html")
    anchors = {s.question: (s.anchor, s.anchor_generated) for s in result.sections}
    # "Sessions" has no id and slugs to "sessions", which is the real id of "Session Length":
    # deep links to #sessions must keep landing on "Session Length".
    assert anchors["Session Length"] == ("sessions", False)
    assert anchors["Sessions"] == ("sessions-2", True)
    assert not any("duplicate" in w for w in result.warnings)


def test_page_with_all_ids_has_no_missing_id_warning():
    result = split(article_of('<h2 id="a">A</h2><p>x</p><h3 id="b">B</h3><p>y</p>'), "T")
    assert result.warnings == []


def test_heading_without_text_of_its_own_but_with_subheadings_is_outline_only():
    result = split_fixture("parent-and-empty-headings.html")
    questions = [s.question for s in result.sections]
    assert "Getting Started" not in questions
    assert "getting-started" in [h.anchor for h in result.outline]
    assert by_question(result)["The First Call"].breadcrumbs == ["Fixture Article", "Getting Started"]
    assert by_question(result)["The First Session"].breadcrumbs == ["Fixture Article", "Getting Started"]
    assert not any("Getting Started" in w for w in result.warnings)


def test_heading_with_neither_text_nor_subheadings_is_skipped_with_a_warning():
    result = split_fixture("parent-and-empty-headings.html")
    assert "nothing-here" not in [s.anchor for s in result.sections]
    assert "img-only" not in [s.anchor for s in result.sections]
    assert "heading 'Nothing Here' has no text of its own and no sub-headings; skipped" in result.warnings
    assert "heading '#img-only' has no text of its own and no sub-headings; skipped" in result.warnings


def test_empty_heading_keeps_its_text_under_its_parent_name():
    result = split_fixture("parent-and-empty-headings.html")
    (blank,) = [s for s in result.sections if s.anchor == "blank-heading"]
    assert blank.answer == "Text under a heading without words."
    assert blank.question == "Fixture Article"  # no words of its own: named after its parent
    nested = split(article_of('<h2 id="p">Parent</h2><p>a</p><h3 id="e"> </h3><p>under</p>'), "T")
    (under,) = [s for s in nested.sections if s.anchor == "e"]
    assert (under.question, under.answer, under.breadcrumbs) == ("Parent", "under", ["T", "Parent"])


def test_text_before_the_first_heading_is_an_intro_section_titled_with_the_article_title():
    result = split_fixture("intro-only-text.html", title="Sleep and Mood: a Guide")
    intro = result.sections[0]
    assert intro.question == "Sleep and Mood: a Guide"
    assert intro.anchor == INTRO_ANCHOR and intro.level == 1 and intro.position == 0
    assert intro.answer == "Sleep affects mood in many ways.\n\nShort nights make stress harder to bear."
    assert "Sleep and Mood" not in intro.answer  # the h1 is the title, not intro text


def test_without_a_title_the_h1_names_the_article():
    result = split_fixture("intro-only-text.html", title="")
    assert result.title == "Sleep and Mood"
    assert result.sections[0].question == "Sleep and Mood"
    assert result.sections[1].breadcrumbs == ["Sleep and Mood"]


def test_without_title_or_h1_the_article_is_untitled():
    result = split(article_of("<p>Just text.</p>"), "")
    assert result.title == "Untitled"


def test_an_h1_nested_in_another_heading_is_not_mistaken_for_the_title():
    markup = "<h2 id='a'>Outer <h1>inner</h1></h2><p>x</p><h1>Real Title</h1><p>y</p>"
    result = split(article_of(markup), "")
    assert result.title == "Real Title"
    assert [(s.question, s.answer) for s in result.sections] == [("Outer inner", "x\n\ny")]


def test_later_h1_headings_are_sections_like_h2():
    result = split(article_of("<h1>Title</h1><p>a</p><h1 id='again'>Second H1</h1><p>b</p>"), "")
    assert [(s.question, s.level, s.anchor) for s in result.sections] == [("Title", 1, "top"), ("Second H1", 2, "again")]


def test_page_without_headings_is_one_section_with_a_warning():
    result = split(article_of("<p>One paragraph.</p><p>Another.</p>"), "Plain Page")
    assert [(s.question, s.answer) for s in result.sections] == [("Plain Page", "One paragraph.\n\nAnother.")]
    assert result.warnings == ["the page has no headings; it is served as a single section"]


def test_no_content_gives_no_sections():
    result = split(None, "T")
    assert result.sections == [] and result.title == "T"


def test_scripts_styles_and_comments_are_not_text():
    markup = "<p>Visible<script>var hidden = 1;</script><style>p{}</style><!-- note --></p>"
    assert split(article_of(markup), "T").sections[0].answer == "Visible"


def test_preformatted_text_keeps_its_line_breaks():
    (section,) = split(article_of("<pre>line one\nline two</pre>"), "T").sections
    assert section.answer == "line one\nline two"


def test_links_in_a_heading_belong_to_its_section():
    result = split(article_of('<h2 id="x"><a href="/other/">Other</a> topic</h2><p>text</p>'), "T")
    assert [(lk.href, lk.text) for lk in result.sections[0].links] == [("/other/", "Other")]


@pytest.mark.parametrize(
    ("text", "slug"),
    [("What Is EMDR?", "what-is-emdr"), ("The 5 P’s in Psychotherapy", "the-5-ps-in-psychotherapy"),
     ("  Fees & Insurance  ", "fees-insurance"), ("???", "section"), ("Café Talk", "café-talk")],
)
def test_slugify_makes_toc_style_fragments(text, slug):
    assert slugify(text) == slug


# --------------------------------------------------------------------------- properties

_TAGS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "div", "section", "table", "tr",
         "td", "th", "a", "span", "em", "strong", "blockquote", "pre"]
_IDS = ["", "", "", "top", "intro", "a", "a-2", "x"]
_HREFS = ["/goals-of-psychotherapy/", "https://example.org/", "#a", "mailto:x@example.org"]


def _render(node, text_of) -> str:
    if node == "TEXT":
        return text_of()
    if node == "BR":
        return "<br>"
    name, ident, href, children = node
    attrs = f' id="{ident}"' if ident else ""
    if name == "a":
        attrs += f' href="{href}"'
    return f"<{name}{attrs}>" + "".join(_render(c, text_of) for c in children) + f"</{name}>"


_trees = st.recursive(
    st.sampled_from(["TEXT", "TEXT", "BR"]),
    lambda children: st.tuples(
        st.sampled_from(_TAGS), st.sampled_from(_IDS), st.sampled_from(_HREFS),
        st.lists(children, max_size=4),
    ),
    max_leaves=30,
)
_documents = st.lists(_trees, min_size=1, max_size=6)
_random_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)

_PROPERTY = settings(max_examples=120, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_PROPERTY
@given(_documents, st.data(), st.sampled_from(["", "Article Title"]))
def test_split_never_crashes_and_keeps_its_invariants_on_arbitrary_html(doc, data, title):
    markup = "".join(_render(node, lambda: html_lib.escape(data.draw(_random_text))) for node in doc)
    result = split(article_of(markup), title)
    anchors = [s.anchor for s in result.sections]
    assert len(set(anchors)) == len(anchors), anchors
    assert [s.position for s in result.sections] == list(range(len(result.sections)))
    for section in result.sections:
        assert section.answer and section.answer == section.answer.strip()
        assert section.question
        assert section.breadcrumbs[0] == result.title
    assert all(re.fullmatch(r"[^\s#]+", a) for a in anchors)


_MARKER = re.compile(r"mk\d+x")


@_PROPERTY
@given(_documents)
def test_every_text_node_lands_in_exactly_one_place_title_question_answer_or_outline(doc):
    counter = iter(range(10_000))
    markup = "".join(_render(node, lambda: f" mk{next(counter)}x ") for node in doc)
    content = article_of(markup)
    markers = _MARKER.findall(" ".join(content.find_all(string=True)))  # what the parser kept
    result = split(content, "")
    own_text = {h.anchor: h.text for h in result.outline}
    served = {s.anchor for s in result.sections}
    # A heading with nothing under it is not served, but its words stay in the outline.
    places = [result.title] + [h.text for h in result.outline if h.anchor not in served]
    for section in result.sections:
        if own_text.get(section.anchor):  # a heading's own words (not a name borrowed from a parent)
            places.append(section.question)
        places.append(section.answer)
    found = _MARKER.findall("\n".join(places))
    assert sorted(found) == sorted(markers)
    assert len(found) == len(set(found))


# --------------------------------------------------------------------------- link schemes


@pytest.mark.parametrize("href", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "java\nscript:alert(1)", "java\rscript:alert(1)", "\x01javascript:alert(1)", "\x00 javascript:alert(1)",
    "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd",
    "jav\tas\ncript\r:alert(1)", "javascript\t:alert(1)", "sms:123",
])
def test_hrefs_with_a_scheme_other_than_http_https_mailto_or_tel_are_dropped(href):
    assert safe_href(href) is None


@pytest.mark.parametrize(("href", "cleaned"), [
    ("https://example.org/a", "https://example.org/a"),
    ("HTTP://example.org/a", "HTTP://example.org/a"),
    ("  /goals/\n", "/goals/"),
    ("mailto:a@example.org", "mailto:a@example.org"),
    ("tel:+1 555", "tel:+1 555"),
    ("../sibling.html", "../sibling.html"),
    ("#top", "#top"),
    ("page?x=1:2", "page?x=1:2"),
    ("/a\tb", "/ab"),
])
def test_http_mailto_tel_and_relative_hrefs_are_kept_as_browsers_read_them(href, cleaned):
    assert safe_href(href) == cleaned


@given(st.lists(st.sampled_from(["\t", "\n", "\r", "\x01", "\x1f", " ", "\x00"]), max_size=6),
       st.sampled_from(["javascript", "vbscript", "data", "JaVaScRiPt"]),
       st.integers(min_value=0, max_value=20), st.text(max_size=20))
@settings(max_examples=300)
def test_no_mix_of_controls_and_whitespace_smuggles_a_script_scheme_through(junk, scheme, at, rest):
    noise = "".join(junk)
    at = min(at, len(scheme))
    for href in (noise + scheme + ":" + rest,
                 scheme[:at] + noise.replace(" ", "").replace("\x00", "").replace("\x01", "").replace("\x1f", "")
                 + scheme[at:] + ":" + rest):
        assert safe_href(href) is None, repr(href)


def test_a_javascript_link_keeps_its_text_but_is_not_recorded_as_a_link():
    html = ('<article><h2 id="q">Question?</h2><p>Click <a href="java&#x09;script:alert(1)">here now</a> or '
            '<a href="&#x01;javascript:alert(2)">there</a> or <a href="/ok/">fine</a>.</p></article>')
    result = split(article_of(html), "T")
    assert [link.href for link in result.links] == ["/ok/"]
    assert "Click here now or there or fine." in result.sections[-1].answer


# --------------------------------------------------------------------------- real-world anchors and debris


def test_anchors_are_the_targets_the_page_really_has_in_rule_order():
    result = split_fixture("real-world-anchors.html")
    anchors = {s.question: (s.anchor, s.anchor_generated) for s in result.sections}
    assert anchors["Sphinx Wrapper"] == ("id2", False)
    assert anchors["Dropbox Wrapper"] == ("dropbox-part", False)
    assert anchors["Wiki Section"] == ("Wiki_section", False)
    assert anchors["Legacy Named Anchor"] == ("legacy-target", False)
    assert anchors["Static Site Heading"] == ("static-site", False)
    assert anchors["No Target At All"] == ("no-target-at-all", True)


def test_the_intro_keeps_top_when_only_a_wrapper_has_an_id():
    result = split_fixture("real-world-anchors.html")
    assert result.sections[0].anchor == INTRO_ANCHOR  # not the <article id="post-7">


def test_questions_carry_no_permalink_or_edit_debris():
    questions = [s.question for s in split_fixture("real-world-anchors.html").sections]
    assert "Static Site Heading" in questions and "Link Emoji" in questions
    assert not [q for q in questions if re.search(r"[¶§#🔗]|\[|edit\b", q)]


def test_an_empty_heading_without_an_id_adds_its_text_to_the_section_above():
    result = split_fixture("real-world-anchors.html")
    assert not [s for s in result.sections if s.anchor.startswith("section")]
    emoji = by_question(result)["Link Emoji"]
    assert emoji.answer == "Some themes end headings with a link emoji.\n\nText under an empty heading without any id."


def test_a_section_whose_answer_has_no_words_is_never_served():
    result = split_fixture("real-world-anchors.html")
    assert "dash-only" not in [s.anchor for s in result.sections]
    assert all(re.search(r"\w", s.answer) for s in result.sections)


def test_a_furniture_heading_without_prose_is_dropped_with_its_links():
    result = split_fixture("real-world-anchors.html")
    assert "Share this story" not in [s.question for s in result.sections]
    assert not [lk for lk in result.links if "share" in lk.href]
    assert any("furniture" in w and "Share this story" in w for w in result.warnings)


def test_a_furniture_heading_above_the_article_does_not_swallow_it():
    prose = "Anxiety is common, and therapy helps many people learn to live with it well. " * 3
    result = split(article_of(f'<h2 id="intro">Intro</h2><p>First.</p><h2>Share this story</h2><p>{prose}</p>'
                              '<h2 id="next">Next</h2><p>More.</p>'), "T")
    assert [s.question for s in result.sections] == ["Intro", "Next"]
    assert by_question(result)["Intro"].answer == "First.\n\n" + prose.strip()


READABILITY_PAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "readability" / "pages.tar.gz"


@pytest.mark.skipif(not READABILITY_PAGES.is_file(),
                    reason=f"Mozilla Readability's test pages not found at {READABILITY_PAGES}")
def test_readability_pages_get_real_anchors_and_clean_questions():
    """The 130 real-world pages through parse_page (the full published figures: eval/extraction.py)."""
    from eval.extraction import DEBRIS, page_headings, page_targets, read_pages
    from eval.extraction import _words as words
    from indexer.corpus import parse_page

    offered = landed = 0
    debris, empty = [], []
    for name, files in sorted(read_pages(READABILITY_PAGES).items()):
        article, _ = parse_page(files["source.html"], f"{name}.html")
        if article is None:
            continue
        targets, headings = page_targets(files["source.html"]), page_headings(files["source.html"])
        debris += [f"{name}: {s.question}" for s in article.sections[1:] if DEBRIS.search(s.question)]
        empty += [f"{name}#{s.anchor}" for s in article.sections if not re.search(r"\w", s.answer)]
        for heading in article.outline:
            found = headings.get(words(heading["text"]))
            if (found and found.pop(0)) or heading["anchor"] in targets:
                offered += 1
                landed += heading["anchor"] in targets
    assert debris == [] and empty == []
    assert landed / offered >= 0.98, f"{landed}/{offered} headings land on the target their page offers"
