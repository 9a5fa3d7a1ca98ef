"""service.catalog: article rows read on demand equal the build's catalog, related and
backlinks included."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from indexer.publish import CATALOG, build, current_generation, read_catalog
from indexer.settings import load_config
from service.catalog import COLUMNS, Catalog

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.fixture(scope="module")
def generation(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("a b?#%")  # a folder name a URI must escape
    shutil.copytree(CORPUS, root / "corpus")
    config = load_config(env={}, corpus_dir=root / "corpus", index_dir=root / "index")
    build(config)
    return current_generation(config.index_dir)[1]


def reference(path: Path) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Rows and backlinks as every worker used to compute them from the whole catalog."""
    rows = {}
    for row in sorted(read_catalog(path).values(), key=lambda r: r["slug"]):
        row = {k: row[k] for k in COLUMNS}
        row["related"] = list(dict.fromkeys(
            lk["slug"] for lk in row["links"] if lk["kind"] == "internal" and lk["slug"] != row["slug"]))
        rows[row["slug"]] = row
    backlinks: dict[str, list[str]] = {}
    for slug, row in rows.items():
        for target in row["related"]:
            if slug not in backlinks.setdefault(target, []):
                backlinks[target].append(slug)
    return rows, backlinks


def test_rows_related_and_backlinks_equal_the_whole_catalog_decoded(generation):
    catalog = Catalog(generation / CATALOG)
    rows, backlinks = reference(generation / CATALOG)
    assert list(catalog) == list(rows) and len(catalog) == len(rows) == 4
    assert {slug: catalog[slug] for slug in catalog} == rows
    assert list(catalog.rows()) == list(rows.values())
    assert catalog.backlinks == backlinks and backlinks  # the goals article is linked to
    assert "words" not in catalog["goals-of-psychotherapy"]  # the build's, not the API's


def test_unknown_slugs_are_absent_not_errors(generation):
    catalog = Catalog(generation / CATALOG)
    assert catalog.get("no-such-article") is None
    assert "no-such-article" not in catalog and "goals-of-psychotherapy" in catalog
    assert 42 not in catalog and catalog.get(42) is None  # type: ignore[call-overload]
    with pytest.raises(KeyError):
        catalog["goals-of-psychotherapy'; DROP TABLE articles; --"]


def test_a_bounded_number_of_rows_stay_decoded(generation):
    catalog = Catalog(generation / CATALOG, cache_rows=2)
    for slug in catalog:
        assert catalog[slug]["slug"] == slug
    assert len(catalog._cache) == 2
    assert catalog[next(iter(catalog))] == reference(generation / CATALOG)[0][next(iter(catalog))]


def test_threads_read_rows_through_their_own_connections(generation):
    catalog = Catalog(generation / CATALOG, cache_rows=0)
    expected, _ = reference(generation / CATALOG)
    problems: list[str] = []

    def read() -> None:
        for _ in range(25):
            for slug, row in expected.items():
                if catalog[slug] != row:
                    problems.append(slug)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []


def test_the_vocabulary_of_an_older_generation_is_still_readable(generation):
    words = [w for article in Catalog(generation / CATALOG).words() for w in article]
    assert "psychotherapy" in words
