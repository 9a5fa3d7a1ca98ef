"""indexer.spelltable: an update's vocabulary, applied as changes to the served arrays, is
exactly the one a full count writes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer import spelltable
from indexer.spelltable import (
    FILES,
    count_words,
    open_vocabulary,
    update_vocabulary,
    write_vocabulary,
)

WORDS = st.text(alphabet="abcé1", min_size=1, max_size=7) | st.sampled_from(["x" * 30, "therapy", "anxiety"])
ARTICLE = st.frozensets(WORDS, max_size=8)


def arrays(folder: Path) -> dict[str, tuple]:
    out = {}
    for kind in FILES:
        array = np.load(spelltable._path(folder, kind), allow_pickle=False)
        out[kind] = (array.dtype.str, array.tolist())
    return out


def changes(before: list[frozenset], after: list[frozenset]) -> dict[str, int]:
    delta: dict[str, int] = {}
    for article in before:
        for w in article:
            delta[w] = delta.get(w, 0) - 1
    for article in after:
        for w in article:
            delta[w] = delta.get(w, 0) + 1
    return delta


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ARTICLE, max_size=10), st.data())
def test_applying_the_changes_writes_the_arrays_a_full_count_writes(articles, data):
    removed = data.draw(st.sets(st.integers(0, max(len(articles) - 1, 0)), max_size=len(articles)))
    added = data.draw(st.lists(ARTICLE, max_size=4))
    kept = [a for i, a in enumerate(articles) if i not in removed]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        write_vocabulary(Path(a), count_words(articles))
        assert update_vocabulary(Path(a), changes([articles[i] for i in removed], added))
        write_vocabulary(Path(b), count_words(kept + added))
        assert arrays(Path(a)) == arrays(Path(b))
        assert open_vocabulary(Path(a)) is not None


def test_no_change_leaves_the_files_as_they_are(tmp_path):
    write_vocabulary(tmp_path, count_words([["therapy", "anxiety"]]))
    before = {k: spelltable._path(tmp_path, k).stat().st_ino for k in FILES}
    assert update_vocabulary(tmp_path, {"therapy": 0})
    assert {k: spelltable._path(tmp_path, k).stat().st_ino for k in FILES} == before


def test_counts_that_do_not_add_up_are_declined_and_nothing_is_written(tmp_path):
    write_vocabulary(tmp_path, count_words([["therapy"]]))
    before = arrays(tmp_path)
    assert not update_vocabulary(tmp_path, {"therapy": -2})  # fewer articles than none
    assert not update_vocabulary(tmp_path, {"unknown": -1})  # a word no article had
    assert arrays(tmp_path) == before


def test_without_arrays_or_with_the_vocabulary_cut_in_play_it_declines(tmp_path, monkeypatch):
    assert not update_vocabulary(tmp_path, {"therapy": 1})
    write_vocabulary(tmp_path, count_words([["therapy", "anxiety", "session"]]))
    monkeypatch.setattr(spelltable, "MAX_VOCABULARY", 3)  # the cut would choose among the words
    assert not update_vocabulary(tmp_path, {"sleep": 1})
