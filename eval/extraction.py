"""Anchor and section quality on Mozilla Readability's 130 real-world pages (``docs/extraction.md``).

Why through a published index: what a visitor gets is what the ``Engine`` serves, so the
pages are built with ``indexer.publish.build`` into a temporary folder and every figure is
read back through ``service.search.Engine``, not from the splitter alone.

Figures: the share of section deep links (other than ``#top``) whose anchor exists as an
``id`` or ``name`` in the page; the share of outline headings whose anchor exists; questions
with permalink/edit debris; sections whose answer has no word; and the token F1 of all the
published sections of a page (questions and answers) against Readability's ``expected.html``
(the protocol of ``shared/data/tools/extract_f1.py``).

    python eval/extraction.py [PAGES_TAR_GZ]

Run it from another checkout (``PYTHONPATH=/tmp/before``) to measure older code the same way.
"""

from __future__ import annotations

import collections
import os
import re
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup

DEFAULT_PAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "readability" / "pages.tar.gz"

#: Permalink and edit debris as readers see it in a question (the measure, kept apart from
#: the cleaning rules in ``indexer.split`` so that it can judge them).
DEBRIS = re.compile(r"[¶§\U0001F517]|\[\s*edit\s*\]|\bpermalink\b|(^|\s)#\s*$|\s[#†*]$", re.I)


def read_pages(path: Path) -> dict[str, dict[str, bytes]]:
    pages: dict[str, dict[str, bytes]] = collections.defaultdict(dict)
    with tarfile.open(path) as tf:
        for member in tf.getmembers():
            if member.isfile():
                _, page, name = member.name.split("/")
                pages[page][name] = tf.extractfile(member).read()
    return dict(pages)


def _text_of(html: str) -> str:
    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return soup.get_text(" ")


def _tokens(text: str) -> collections.Counter:
    return collections.Counter(re.findall(r"\w+", text.lower()))


def f1(pred: str, gold: str) -> float:
    p, g = _tokens(pred), _tokens(gold)
    common = sum((p & g).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def page_targets(html: bytes) -> set[str]:
    """Every fragment a browser can scroll to: ``id`` of any element, ``name`` of an ``<a>``."""
    soup = BeautifulSoup(html, "lxml")
    targets = {str(t["id"]) for t in soup.find_all(id=True)}
    targets |= {str(a["name"]) for a in soup.find_all("a", attrs={"name": True})}
    return targets


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _id_or_name(tag) -> str:
    value = tag.get("id") or (tag.get("name") if tag.name == "a" else None)
    return value.strip() if isinstance(value, str) else ""


def offered_target(heading) -> bool:
    """Does the page offer this heading any target (the issue's list, written here apart from
    ``indexer.anchors`` so that it can judge it)? An id/name on or inside the heading, a
    same-page link inside it, the id of a section/div/article it opens, or an id/name on an
    empty element right before it."""
    if _id_or_name(heading) or any(_id_or_name(t) for t in heading.find_all(True)):
        return True
    if any(str(a["href"]).strip().startswith("#") and len(str(a["href"]).strip()) > 1
           for a in heading.find_all("a", href=True)):
        return True
    node = heading
    while node.parent is not None and node.parent.name != "[document]":
        before = node.parent.contents[: node.parent.contents.index(node)]
        if any(str(b).strip() if isinstance(b, str) else b.get_text(strip=True) for b in before):
            break
        node = node.parent
        if node.name in ("section", "div", "article") and _id_or_name(node):
            return True
    prev = heading.find_previous_sibling()
    if prev is not None and not prev.get_text(strip=True) and prev.name not in HEADING_TAGS \
            and not AD.search(" ".join(prev.get("class") or []) + " " + str(prev.get("id") or "")):
        return bool(_id_or_name(prev) or any(_id_or_name(t) for t in prev.find_all(True)))
    return False


AD = re.compile(r"(^|[^a-z])(ad|ads|adsense|advert\w*)([^a-z]|$)", re.I)  # ad slots are not anchors
HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def page_headings(html: bytes) -> dict[str, list[bool]]:
    """For each heading text (as words) of the page, in order: does it offer a target?"""
    soup = BeautifulSoup(html, "lxml")
    out: dict[str, list[bool]] = collections.defaultdict(list)
    for heading in soup.find_all(HEADING_TAGS):
        out[_words(heading.get_text(" "))].append(offered_target(heading))
    return out


def measure(pages_path: Path) -> dict:
    from indexer.publish import build
    from indexer.settings import load_config
    from service.search import Engine

    pages = read_pages(pages_path)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        corpus.mkdir()
        for page, files in pages.items():
            (corpus / f"{page}.html").write_bytes(files["source.html"])
        config = load_config(env={}, corpus_dir=corpus, index_dir=index)
        started = time.perf_counter()
        report = build(config)
        build_seconds = time.perf_counter() - started
        engine = Engine(config)
        by_source = {a["source"]: a["slug"] for a in engine.articles()["articles"]}
        links = links_ok = heads = heads_ok = offering = offering_ok = questions = debris = empty = 0
        misses: list[str] = []
        scores: list[float] = []
        debris_examples: list[str] = []
        for page, files in sorted(pages.items()):
            gold = _text_of(files["expected.html"].decode("utf-8", "replace"))
            slug = by_source.get(f"{page}.html")
            if slug is None:
                scores.append(0.0)
                continue
            article = engine.article(slug)
            targets = page_targets(files["source.html"])
            text = []
            for section in article["sections"]:
                anchor = unquote(urlsplit(section["url"]).fragment)
                if anchor != "top":
                    links += 1
                    links_ok += anchor in targets
                    questions += 1
                    if DEBRIS.search(section["question"]):
                        debris += 1
                        debris_examples.append(f"{page}: {section['question']!r}")
                if not re.search(r"\w", section["answer"]):
                    empty += 1
                text.append(f"{section['question']}\n{section['answer']}")
            offered = page_headings(files["source.html"])
            for heading in article["outline"]:
                heads += 1
                heads_ok += heading["anchor"] in targets
                found = offered.get(_words(heading["text"]))
                page_offers = bool(found.pop(0)) if found else False
                if page_offers or heading["anchor"] in targets:
                    offering += 1
                    offering_ok += heading["anchor"] in targets
                    if heading["anchor"] not in targets:
                        misses.append(f"{page}: {heading['text']!r} -> #{heading['anchor']}")
            scores.append(f1("\n".join(text), gold))
    return {
        "pages": len(pages), "published": len(by_source), "sections": report.sections,
        "links": links, "links_ok": links_ok, "headings": heads, "headings_ok": heads_ok,
        "offering": offering, "offering_ok": offering_ok, "misses": misses,
        "questions": questions, "debris": debris, "debris_examples": debris_examples, "empty": empty,
        "f1_median": statistics.median(scores), "f1_mean": statistics.mean(scores),
        "build_seconds": build_seconds,
    }


def main(argv: list[str]) -> int:
    import indexer

    path = Path(argv[0]) if argv else DEFAULT_PAGES
    if not path.is_file():
        print(f"no pages at {path}", file=sys.stderr)
        return 1
    r = measure(path)
    print(f"indexer: {Path(indexer.__file__).parent}")
    print(f"pages {r['pages']}, published {r['published']}, sections {r['sections']}, "
          f"build {r['build_seconds']:.1f} s")
    print(f"deep links whose anchor exists: {r['links_ok']}/{r['links']} = {r['links_ok'] / max(r['links'], 1):.3f}")
    print(f"outline headings with a target: {r['headings_ok']}/{r['headings']} = "
          f"{r['headings_ok'] / max(r['headings'], 1):.3f}")
    print(f"outline headings the page offers a target for: {r['offering']}/{r['headings']}; "
          f"their deep link lands on it: {r['offering_ok']}/{r['offering']} = "
          f"{r['offering_ok'] / max(r['offering'], 1):.3f}")
    print(f"questions with debris: {r['debris']}/{r['questions']}; empty answers: {r['empty']}")
    print(f"F1 of the published sections: median {r['f1_median']:.3f} mean {r['f1_mean']:.3f}")
    for line in r["debris_examples"][:8]:
        print(f"  debris: {line}")
    for line in r["misses"][: int(os.environ.get("SHOW_MISSES", "0"))]:
        print(f"  missed target: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
