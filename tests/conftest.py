"""Fixtures shared by the whole test suite.

Every test that writes works under its own ``tmp_path``: the real ``corpus/`` is copied
before it is changed, and an index folder is never shared between tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from indexer.settings import SETTINGS, Config, load_config

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"


@pytest.fixture
def real_corpus() -> Path:
    """The repository's own corpus folder (read only: use ``corpus_copy`` to change it)."""
    return CORPUS


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A private copy of the real corpus (four articles, README.md, synonyms.txt) in tmp_path."""
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """``make_config(corpus_dir, index_dir=None, **overrides)``: a Config that ignores the
    process environment, with the index under ``tmp_path/index`` unless given."""

    def make(corpus_dir: Path, index_dir: Path | None = None, **overrides) -> Config:
        return load_config(
            env={},
            corpus_dir=Path(corpus_dir),
            index_dir=Path(index_dir) if index_dir is not None else tmp_path / "index",
            **overrides,
        )

    return make


@pytest.fixture
def config(make_config, corpus_copy) -> Config:
    """Config for a private copy of the real corpus and a fresh index folder."""
    return make_config(corpus_copy)


@pytest.fixture
def clean_env(monkeypatch) -> None:
    """Remove every variable the settings table reads, so the caller's shell cannot leak in."""
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)


def page(title: str | None, body: str, *, canonical: str | None = None, charset: str = "utf-8",
         h1: str | None = None) -> str:
    """A small whole page with the body wrapped in ``<article>`` (used by ``write_page``)."""
    head = [f'<meta charset="{charset}">'] if charset else []
    if title is not None:
        head.append(f"<title>{title} | My Psychotherapy</title>")
    if canonical:
        head.append(f'<link rel="canonical" href="{canonical}">')
    heading = f"<h1>{h1 if h1 is not None else title}</h1>\n" if (h1 or title) else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n" + "\n".join(head) + "\n</head>\n<body>\n"
        '<nav><a href="/">Home</a> <a href="/about/">About</a></nav>\n'
        f"<main><article>\n{heading}{body}\n</article></main>\n"
        "<footer><p>My Psychotherapy, New York</p></footer>\n</body>\n</html>\n"
    )


@pytest.fixture
def write_page() -> Callable[..., Path]:
    """``write_page(folder, name, title, body, **page_kwargs)`` writes a small page, UTF-8."""

    def write(folder: Path, name: str, title: str | None, body: str, **kwargs) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(page(title, body, **kwargs), encoding="utf-8")
        return path

    return write


SMALL_PAGE = """<h2 id="{slug}-one">About {topic}</h2>
<p>{topic} is discussed here at some length, so that the page has enough text to be an article
of its own, with a second sentence about how {topic} fits into everyday therapy practice.</p>
<h2 id="{slug}-two">More on {topic}</h2>
<p>A further paragraph on {topic}, long enough to read as real content rather than a stub, and
mentioning the weekly sessions and the consultation that usually come first.</p>"""


@pytest.fixture
def small_corpus(tmp_path, write_page) -> Callable[..., Path]:
    """``small_corpus(folder=tmp_path/"corpus", topics=("Anxiety", "Grief", "Sleep"))``: one
    two-section page per topic (``anxiety.html`` → slug ``anxiety``, anchors ``anxiety-one``...)."""

    def make(folder: Path | None = None, topics: tuple[str, ...] = ("Anxiety", "Grief", "Sleep")) -> Path:
        folder = folder or tmp_path / "corpus"
        for topic in topics:
            slug = topic.lower()
            write_page(folder, f"{slug}.html", f"{topic} in Therapy", SMALL_PAGE.format(slug=slug, topic=topic))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    return make
