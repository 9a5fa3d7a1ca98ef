"""indexer.metadata: what a page says about itself (title, description, canonical, dates)."""

from __future__ import annotations

from bs4 import BeautifulSoup

from indexer.metadata import METADATA_KEYS, choose_title, first_time, read_metadata

PAGE = """<html lang="en-GB"><head><title>Coping With Grief | My Psychotherapy</title>
<meta property="og:site_name" content="My Psychotherapy">
<meta name="description" content="How grief counselling helps.">
<link rel="canonical" href="https://example.org/grief/">
<script type="application/ld+json">{"@type": "Article", "datePublished": "2024-01-02",
 "dateModified": "2024-03-04",}</script></head>
<body><article><h1>Coping With Grief</h1><time datetime="2023-05-06">May</time></article></body></html>"""


def test_read_metadata_takes_each_field_from_the_most_specific_source():
    soup = BeautifulSoup(PAGE, "lxml")
    meta = read_metadata(soup)
    assert set(meta) == set(METADATA_KEYS)
    assert meta["description"] == "How grief counselling helps."
    assert meta["canonical"] == "https://example.org/grief/"
    assert (meta["published"], meta["modified"]) == ("2024-01-02", "2024-03-04")  # lenient JSON-LD
    assert meta["lang"] == "en-GB"


def test_choose_title_drops_the_site_name_and_first_time_finds_a_date():
    soup = BeautifulSoup(PAGE, "lxml")
    assert choose_title(read_metadata(soup), soup.find("article"), soup) == "Coping With Grief"
    assert first_time(soup.find("article")) == "2023-05-06"
    assert first_time(None) is None
