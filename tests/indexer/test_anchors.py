"""indexer.anchors: a heading's real deep-link target and its text without debris."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from indexer.anchors import find_anchor, heading_text


def heading(markup: str):
    return BeautifulSoup(markup, "lxml").find(["h1", "h2", "h3", "h4", "h5", "h6"])


@pytest.mark.parametrize(("markup", "expected"), [
    ('<h2 id="own"><a id="inner"></a>T</h2>', ("own", "own-id")),
    ('<h2><b><span id="deep"></span>T</b></h2>', ("deep", "inner-id")),
    ('<h2>T<a class="headerlink" href="#x">¶</a></h2>', ("x", "permalink")),
    ('<h2><a href="#top">Back to top</a> T</h2>', None),
    ('<section id="s"><h2>T</h2><p>x</p></section>', ("s", "wrapper-id")),
    ('<div id="outer"><div><a name="z"></a><h2>T</h2></div></div>', ("outer", "wrapper-id")),
    ('<div id="w"><p>text first</p><h2>T</h2></div>', None),
    ('<p>x</p><a name="n"></a>\n<h2>T</h2>', ("n", "preceding-id")),
    ('<p><span id="p"></span></p><h2>T</h2>', ("p", "preceding-id")),
    ('<div class="ad-slot" id="ad-3"></div><h2>T</h2>', None),
    ('<p id="para">text</p><h2>T</h2>', None),
])
def test_anchor_rules_in_order(markup, expected):
    assert find_anchor(heading(markup)) == expected


@pytest.mark.parametrize(("markup", "text"), [
    ('<h2>Setting up <a class="headerlink" href="#s">¶</a></h2>', "Setting up"),
    ('<h2><span id="H">History</span><span class="mw-editsection">[<a href="/e">edit</a>]</span></h2>', "History"),
    ("<h2>Plain [edit]</h2>", "Plain"),
    ('<h2>Title <a href="#t">#</a></h2>', "Title"),
    ("<h2># Markdown Title</h2>", "Markdown Title"),
    ('<h2>Link Emoji 🔗</h2>', "Link Emoji"),
    ('<h2>Anchored <a href="#a" aria-label="Permalink">Permalink</a></h2>', "Anchored"),
    ("<h2>Learning C#</h2>", "Learning C#"),
    ("<h2>Sections § 4 and 5</h2>", "Sections § 4 and 5"),
])
def test_heading_text_drops_permalink_and_edit_debris(markup, text):
    assert heading_text(heading(markup)) == text
