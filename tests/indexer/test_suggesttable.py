"""indexer.suggesttable: the suggester's arrays written at build time, checked before publish,
and equal to what a worker computes for a generation built without them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import indexer.publish as publish
from indexer.manifest import MANIFEST
from indexer.publish import GENERATION_INFO, BuildError, build, current_generation
from indexer.settings import load_config
from indexer.suggesttable import (
    FILES,
    KEY_BYTES,
    SUGGEST_PREFIX,
    check_arrays,
    check_suggestions,
    suggest_arrays,
)
from service.generations import Generation
from service.search import Engine
from service.suggest import Suggester
from tests.service.test_scoring import reference_suggestions

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
ALTERNATES = "goals-of-psychotherapy#what-is-psychotherapy: what does a shrink do\n"
PREFIXES = ["w", "what", "what is ", "what does a sh", "psycho", "goals of", "how lo", "online ther", "cop", "zz"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest")
    shutil.copytree(CORPUS, root / "corpus")
    (root / "corpus" / "alternates.txt").write_text(ALTERNATES, encoding="utf-8")
    config = load_config(env={}, corpus_dir=root / "corpus", index_dir=root / "index")
    build(config)
    return config, current_generation(config.index_dir)[1]


def test_the_arrays_order_entries_by_text_and_by_length_and_index_every_word():
    texts = ["what is therapy", "therapy", "what is a shrink for", "coping"]
    arrays = suggest_arrays(texts, [0, 1, 2, 3], [-1, -1, 0, -1])
    assert [texts[i] for i in arrays["by_text"]] == sorted(texts)
    assert arrays["by_rank"].tolist() == [1, 3, 0, 2]  # fewer words first, then site order
    assert arrays["rank"][arrays["by_rank"]].tolist() == [0, 1, 2, 3]
    vocab = [w.decode() for w in arrays["vocab"].tolist()]
    therapy = vocab.index("therapy")
    assert arrays["postings"][arrays["offsets"][therapy]:arrays["offsets"][therapy + 1]].tolist() == [0, 1]
    assert check_arrays(arrays, 4) is None
    assert "outside the index" in check_arrays(arrays, 3)


def test_a_build_writes_the_arrays_and_refuses_broken_ones(built, tmp_path, monkeypatch):
    config, path = built
    assert all((path / f"{SUGGEST_PREFIX}{kind}.npy").is_file() for kind in FILES)
    assert check_suggestions(path, 46) is None
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    victim = broken / f"{SUGGEST_PREFIX}by_text.npy"
    victim.unlink()
    np.save(victim, np.asarray([10**6], dtype=np.int32))
    assert check_suggestions(broken, 46) is not None

    served = current_generation(config.index_dir)
    monkeypatch.setattr(publish, "write_suggestions", lambda folder, documents, live: None)
    with pytest.raises(BuildError, match="suggester arrays"):
        build(config.replace(index_dir=tmp_path / "index"))
    assert current_generation(config.index_dir) == served


def test_a_generation_without_the_arrays_suggests_the_same(built, tmp_path):
    _, path = built
    copy = tmp_path / "old"
    shutil.copytree(path, copy)
    for p in copy.glob(f"{SUGGEST_PREFIX}*"):
        p.unlink()
    (copy / MANIFEST).unlink()  # as a version before the arrays wrote it: no manifest listing them
    info = json.loads((copy / GENERATION_INFO).read_text(encoding="utf-8"))
    info.pop("manifest", None)
    (copy / GENERATION_INFO).write_text(json.dumps(info), encoding="utf-8")
    with_arrays, without = Generation(path.name, path), Generation(copy.name, copy)
    assert with_arrays.suggester.entries == without.suggester.entries
    for q in PREFIXES:
        for limit in (1, 3, 8):
            assert with_arrays.suggester.suggest(q, limit) == without.suggester.suggest(q, limit), q


def test_a_typed_prefix_longer_than_the_keys_is_matched_in_full():
    long_question = " ".join(f"word{i}" for i in range(40))  # far over KEY_BYTES
    entries = [{"id": f"a#{i}", "text": t, "url": f"/a/#{i}", "position": ("a", i), "words": t.split()}
               for i, t in enumerate([long_question, long_question + " more", long_question[:-1] + "9x"])]
    suggester = Suggester.from_entries(entries)
    assert len(long_question.encode()) > KEY_BYTES
    # The last word is a prefix: "word39" also begins "word39x"; fewer words rank first.
    assert [s["id"] for s in suggester.suggest(long_question, 8)] == ["a#0", "a#2", "a#1"]
    assert [s["id"] for s in suggester.suggest(long_question + " ", 8)] == ["a#1", "a#0"]  # then: every word
    assert [s["id"] for s in suggester.suggest(long_question + " m", 8)] == ["a#1"]
    assert [s["id"] for s in suggester.suggest(long_question + "x", 8)] == ["a#2"]


def test_the_engine_suggests_a_phrasing_from_the_shared_arrays(built):
    config, _ = built
    got = Engine(config).suggest("what does a sh", limit=8)["suggestions"]
    assert [(s["id"], s["alternate"]) for s in got] == [
        ("goals-of-psychotherapy#what-is-psychotherapy", "what does a shrink do")]


WORDS = "what is therapy shrink coping skills panic help how long does take".split()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4),
                          st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), max_size=4)),
                min_size=1, max_size=12),
       st.lists(st.sampled_from(WORDS + ["th", "sh", "p", "wha"]), min_size=1, max_size=3), st.booleans(),
       st.sampled_from([1, 2, 3, 8]))
def test_sections_with_many_phrasings_are_suggested_as_a_scan_would(sections, typed, space, limit):
    entries = []
    for i, (question, phrasings) in enumerate(sections):
        base = {"id": f"s#{i}", "text": " ".join(question), "url": f"/s/#{i}", "position": ("s", i)}
        entries.append({**base, "words": question})
        entries += [{**base, "words": p, "alternate": " ".join(p)} for p in phrasings]
    q = " ".join(typed) + (" " if space else "")
    got = [s["id"] for s in Suggester.from_entries(entries).suggest(q, limit)]
    assert got == reference_suggestions(entries, q, limit)


def test_prefixes_that_match_nothing_do_not_grow_the_cache_without_bound():
    from service.suggest import PREFIX_CACHE_KEYS

    entries = [{"id": "a#0", "text": "therapy", "url": "/a/", "position": ("a", 0), "words": ["therapy"]}]
    suggester = Suggester.from_entries(entries)
    for i in range(PREFIX_CACHE_KEYS + 500):
        assert suggester.suggest(f"therapy qz{i}", 8) == []
    assert len(suggester._cache) <= PREFIX_CACHE_KEYS
