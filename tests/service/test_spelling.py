"""The speller's work is bounded whatever the corpus or the query holds."""

from __future__ import annotations

import tracemalloc

from service.spelling import Speller


def test_a_very_long_word_in_the_corpus_adds_nothing_to_the_deletion_table():
    tracemalloc.start()
    speller = Speller({"therapy": 5, "x" * 60_000: 1})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "x" * 60_000 not in speller.freq
    assert all(len(variant) < Speller.MAX_WORD for variant in speller.deletes)
    assert peak < 5_000_000  # the 60,000-letter word alone once cost 3.5 GB of variants
    assert speller.correct("therpay") == "therapy"


def test_a_very_long_query_word_is_not_corrected():
    speller = Speller({"therapy": 5})
    assert speller.correct("t" + "h" * 10_000) is None


def test_the_vocabulary_keeps_only_the_most_frequent_words_beyond_its_cap(monkeypatch):
    monkeypatch.setattr(Speller, "MAX_VOCABULARY", 2)
    speller = Speller({"therapy": 9, "session": 7, "counsel": 1})
    assert set(speller.freq) == {"therapy", "session"}
