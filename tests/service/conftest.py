"""Fixtures of the HTTP layer's tests.

The read-only tests share one index built once per session from the real corpus; tests
that publish a new generation or reindex get their own corpus copy and index folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from falcon import testing

from indexer.publish import build
from indexer.settings import Config, load_config
from service.app import create_app

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"
ALLOWED_ORIGIN = "https://www.mypsychotherapy.example"
TOKEN = "test-reindex-token-0123456789"


def api_settings(corpus_dir: Path, index_dir: Path, **overrides) -> Config:
    """A Config that ignores the process environment."""
    values = {"cors_origins": (ALLOWED_ORIGIN,), **overrides}
    return load_config(env={}, corpus_dir=Path(corpus_dir), index_dir=Path(index_dir), **values)


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory) -> Path:
    """An index of the real corpus, built once; never written to by any test."""
    index_dir = tmp_path_factory.mktemp("shared") / "ix"
    build(load_config(env={}, corpus_dir=CORPUS, index_dir=index_dir))
    return index_dir


@pytest.fixture(scope="session")
def api_config(shared_index) -> Config:
    return api_settings(CORPUS, shared_index)


@pytest.fixture(scope="session")
def app(api_config):
    return create_app(api_config)


@pytest.fixture(scope="session")
def client(app) -> testing.TestClient:
    """A client of the shared app (its response cache is shared by the tests: read-only use)."""
    return testing.TestClient(app)


@pytest.fixture
def make_client(shared_index) -> Callable[..., testing.TestClient]:
    """``make_client(**overrides)``: a fresh app over the shared index with settings changed."""

    def make(**overrides) -> testing.TestClient:
        overrides.setdefault("corpus_dir", CORPUS)
        overrides.setdefault("index_dir", shared_index)
        return testing.TestClient(create_app(api_settings(**overrides)))

    return make


class Site:
    """A private corpus copy and index folder, for tests that publish or reindex."""

    def __init__(self, root: Path):
        self.corpus = root / "corpus"
        self.index = root / "ix"
        shutil.copytree(CORPUS, self.corpus)

    def config(self, **overrides) -> Config:
        return api_settings(self.corpus, self.index, **overrides)

    def build(self) -> str:
        report = build(load_config(env={}, corpus_dir=self.corpus, index_dir=self.index))
        return report.generation

    def edit(self, slug: str, old: str, new: str) -> None:
        path = self.corpus / f"{slug}.html"
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path.name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    """A built private copy of the site."""
    s = Site(tmp_path)
    s.build()
    yield s


@pytest.fixture
def unbuilt_site(tmp_path) -> Site:
    """A private copy of the site whose index has not been built (the job store still works)."""
    return Site(tmp_path)
