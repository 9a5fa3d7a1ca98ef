"""indexer.derived: the arrays written into a generation hold exactly Whoosh's postings and
lengths, an update derives only what it wrote, a broken set is refused at publish, and a
generation without them still opens and ranks the same."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from whoosh import index as whoosh_index

from indexer.derived import (
    LIVE,
    MANIFEST,
    OPEN_COLUMNS,
    PREFIX,
    VOCABULARY_PREFIX,
    check_derived,
    open_derived,
)
from indexer.publish import BuildError, build, current_generation
from indexer.schema import SEARCH_FIELDS
from indexer.settings import load_config
from indexer.suggesttable import SUGGEST_PREFIX
from service.scoring import Scorer
from service.search import Engine

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
QUERIES = ["what is psychotherapy", "coping skills for stress", "DID treatment", "calmer communication",
           "what does a shrink do", "therapist worries"]
ALTERNATES = ("goals-of-psychotherapy#what-is-psychotherapy: what does a shrink do\n"
              "goals-of-psychotherapy#coping-skills: my therapist and my worries\n")


@pytest.fixture(scope="module")
def updated(tmp_path_factory):
    """A full build, then an update of one article: two segments, deleted documents."""
    root = tmp_path_factory.mktemp("derived")
    shutil.copytree(CORPUS, root / "corpus")
    config = load_config(env={}, corpus_dir=root / "corpus", index_dir=root / "index")
    (root / "corpus" / "alternates.txt").write_text(ALTERNATES, encoding="utf-8")  # the sparse field too
    build(config)
    first = current_generation(config.index_dir)[1]
    page = root / "corpus" / "goals-of-psychotherapy.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "Therapy encourages clearer communication", "Therapy encourages calmer, clearer communication"),
        encoding="utf-8")
    assert build(config, mode="update").rewritten == ["goals-of-psychotherapy.html"]
    return config, first, current_generation(config.index_dir)[1]


def whoosh_postings(reader, field: str, term: bytes) -> list[tuple[int, float]]:
    m = reader.postings(field, term)
    out = []
    while m.is_active():
        out.append((m.id(), m.weight()))
        m.next()
    return out


def test_derived_postings_lengths_and_live_mask_equal_whooshs_after_an_update(updated):
    _, _, path = updated
    ix = whoosh_index.open_dir(str(path))
    derived = open_derived(path, ix)
    assert derived is not None and len(derived.segments) == 2
    with ix.reader() as reader:
        assert reader.has_deletions()
        assert derived.live.tolist() == [not reader.is_deleted(d) for d in range(reader.doc_count_all())]
        for field in SEARCH_FIELDS:
            assert derived.lengths[field].tolist() == [
                reader.doc_field_length(d, field, 0) or 0 for d in range(reader.doc_count_all())]
            for term in reader.lexicon(field):
                expected = whoosh_postings(reader, field, term)
                ids, tf = derived.postings(field, term.decode("utf-8"))
                assert list(zip(ids.tolist(), tf.tolist(), strict=True)) == expected, (field, term)
                assert derived.doc_frequency(field, term.decode("utf-8")) == len(expected)
    assert derived.postings("answer", "zzzunknown")[0].size == 0


def test_an_update_derives_only_its_own_segment_and_links_the_others(updated):
    _, first, path = updated
    segment_arrays = lambda folder: {p.name: p.stat().st_ino for p in folder.glob(f"{PREFIX}*.npy")  # noqa: E731
                                     if p.name != LIVE and not p.name.startswith((VOCABULARY_PREFIX, SUGGEST_PREFIX))}
    old, new = segment_arrays(first), segment_arrays(path)
    assert old and set(old) < set(new)
    assert all(new[name] == ino for name, ino in old.items())  # hard links, not rewrites
    assert (first / LIVE).stat().st_ino != (path / LIVE).stat().st_ino


def test_the_scorer_ranks_identically_from_derived_arrays_and_from_whoosh(updated):
    _, _, path = updated
    ix = whoosh_index.open_dir(str(path))
    with ix.reader() as reader:
        fast = Scorer(reader, derived=open_derived(path, ix))
        slow = Scorer(reader)
        assert fast.derived is not None and slow.derived is None
        assert fast.avglen == slow.avglen and fast.n == slow.n
        for q in QUERIES:
            clauses = [[(t,)] for t in q.lower().split()]
            assert [fast.doc_frequency(t) for (t,), in clauses] == [slow.doc_frequency(t) for (t,), in clauses]
            a, b = fast.score(clauses), slow.score(clauses)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_a_generation_without_derived_arrays_opens_from_whoosh_and_answers_the_same(updated, tmp_path):
    config, _, path = updated
    with_arrays = Engine(config)
    copy = tmp_path / "index"
    shutil.copytree(config.index_dir, copy)
    current = current_generation(copy)[1]
    for p in current.glob(f"{PREFIX}*"):
        p.unlink()
    (current / "MANIFEST.json").unlink()  # an older version wrote no integrity manifest either
    info = json.loads((current / "GENERATION.json").read_text(encoding="utf-8"))
    info.pop("manifest", None)
    (current / "GENERATION.json").write_text(json.dumps(info), encoding="utf-8")
    old_config = load_config(env={}, corpus_dir=config.corpus_dir, index_dir=copy)
    without = Engine(old_config)
    assert without.generation().derived is None and with_arrays.generation().derived is not None
    for q in QUERIES:
        assert without.search(q) == with_arrays.search(q)


def test_a_generation_whose_table_predates_result_rows_opens_from_it_and_answers_the_same(updated, tmp_path):
    config, _, _ = updated
    copy = tmp_path / "index"
    shutil.copytree(config.index_dir, copy)
    current = current_generation(copy)[1]
    manifest = json.loads((current / MANIFEST).read_text(encoding="utf-8"))
    manifest["documents"] = list(OPEN_COLUMNS)  # what schema 5 wrote: no "shown" column
    (current / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    for offsets in current.glob(f"{PREFIX}*.docs.offsets.npy"):
        np.save(offsets, np.load(offsets)[:len(OPEN_COLUMNS)])
    (current / "MANIFEST.json").unlink()  # the integrity manifest no longer matches the edited files
    info = json.loads((current / "GENERATION.json").read_text(encoding="utf-8"))
    info.pop("manifest", None)
    (current / "GENERATION.json").write_text(json.dumps(info), encoding="utf-8")
    older = Engine(load_config(env={}, corpus_dir=config.corpus_dir, index_dir=copy))
    documents = older.generation().derived.documents
    assert documents is not None and "shown" not in documents.column_index  # still opened from the table
    assert "missing" in check_derived(current, whoosh_index.open_dir(str(current)))  # never published so
    current_engine = Engine(config)
    for q in QUERIES:
        assert older.search(q) == current_engine.search(q)


def test_arrays_listing_other_segments_are_not_used(updated, tmp_path):
    _, first, path = updated
    copy = tmp_path / "gen"
    shutil.copytree(path, copy)
    shutil.copy(first / MANIFEST, copy / MANIFEST)  # the manifest of the one-segment build
    assert open_derived(copy, whoosh_index.open_dir(str(copy))) is None


def test_a_build_whose_derived_arrays_are_broken_is_not_published(updated, tmp_path, monkeypatch):
    config, _, path = updated
    copy = tmp_path / "gen"
    shutil.copytree(path, copy)
    ix = whoosh_index.open_dir(str(copy))
    assert check_derived(copy, ix) is None
    victim = next(copy.glob(f"{PREFIX}*.answer.ids.npy"))
    np.save(victim, np.load(victim)[:-1])
    assert "inconsistent" in check_derived(copy, ix)

    import indexer.publish as publish
    served = current_generation(config.index_dir)
    monkeypatch.setattr(publish, "write_derived", lambda folder, ix: os.remove(folder / MANIFEST)
                        if (folder / MANIFEST).exists() else None)
    fresh = load_config(env={}, corpus_dir=config.corpus_dir, index_dir=tmp_path / "index")
    with pytest.raises(BuildError, match="derived arrays"):
        build(fresh)
    assert current_generation(config.index_dir) == served


def test_a_generation_opened_from_the_document_table_equals_one_read_from_stored_fields(updated, monkeypatch):
    from service import generations

    _, _, path = updated
    fast = generations.Generation(path.name, path)
    monkeypatch.setattr(generations.Generation, "_documents_from_table",
                        lambda self, documents, live: self._documents_from_stored_fields())
    monkeypatch.setattr(generations, "open_vocabulary", lambda folder: None)
    plain = generations.Generation(path.name, path)
    assert fast.derived.documents is not None and not fast.derived.live.all()  # an update: deletions
    assert fast.doc_count == plain.doc_count
    for d in range(len(fast.derived.live)):
        assert fast.question_terms.get(d, ()) == plain.question_terms.get(d, ())
        if d in plain.slug_of:
            assert fast.slug_of[d] == plain.slug_of[d]
    assert fast.answer_ids.tolist() == plain.answer_ids.tolist()
    assert fast.answer_id_count == plain.answer_id_count
    assert set(fast.docs_by_slug.spans) == set(plain.docs_by_slug)
    for slug, docs in plain.docs_by_slug.items():
        assert fast.docs_by_slug.get(slug).tolist() == docs.tolist()
    assert fast.suggester.entries == plain.suggester.entries
    assert fast.speller.freq == plain.speller.freq
    for variant, owners in plain.speller.deletes.items():
        assert sorted(fast.speller.deletes.get(variant, ())) == sorted(owners)
    assert {t: set(a) for t, a in fast.lexicon.by_term.items() if a} == \
        {t: set(a) for t, a in plain.lexicon.by_term.items() if a}


def test_an_update_adding_no_word_keeps_the_speller_table_and_a_broken_one_is_refused(updated, tmp_path):
    from indexer.spelltable import check_vocabulary

    config, _, path = updated
    config = config.replace(index_dir=tmp_path / "index")
    build(config)
    first = current_generation(config.index_dir)[1]
    page = Path(config.corpus_dir) / "goals-of-psychotherapy.html"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("calmer, clearer", "clearer, calmer"), encoding="utf-8")  # no new word
    try:
        assert build(config, mode="update").rewritten == ["goals-of-psychotherapy.html"]
    finally:
        page.write_text(text, encoding="utf-8")
    second = current_generation(config.index_dir)[1]
    for kind in ("variants", "owners", "table_words"):
        name = f"{VOCABULARY_PREFIX}{kind}.npy"
        assert (first / name).stat().st_ino == (second / name).stat().st_ino
    assert check_vocabulary(second) is None
    broken = tmp_path / "broken"
    shutil.copytree(second, broken)
    (broken / f"{VOCABULARY_PREFIX}owners.npy").unlink()
    np.save(broken / f"{VOCABULARY_PREFIX}owners.npy", np.asarray([10**6], dtype=np.int32))
    assert check_vocabulary(broken) is not None
    assert check_derived(broken, whoosh_index.open_dir(str(broken))) is not None
