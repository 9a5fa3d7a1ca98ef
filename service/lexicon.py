"""Built-in lexical equivalences of visitors' words: numbers and their words (five/5,
first/1st), letters' plurals (Ps/P's), general English (kind/sort/type), and word families
(therapy → psychotherapy). Each gives alternatives to a query term, weighted by a
``Ranking`` knob; editor synonyms stay the override (``service.query``).

Built once per generation from its vocabulary; a lookup is a dictionary access.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from indexer.schema import analyze, load_synonyms

EQUIVALENCES = Path(__file__).with_name("equivalences.txt")

_CARDINALS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
              "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()
_ORDINALS = ("zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
             "twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth "
             "nineteenth twentieth").split()
_TENS = {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90, "hundred": 100}

# Combining forms that make a word a narrower member of its family ("psycho" + "therapy").
# A query word then also finds the longer words of the corpus built on it, even when the
# corpus never uses the word itself ("therapy" finds "psychotherapy").
COMBINING_FORMS = ("psycho", "psych", "tele", "hypno", "physio", "pharmaco", "neuro", "hydro", "cyber")
MIN_FAMILY_STEM = 5  # what is left after the form: "therapy", "analysis"; never "logy"

_LETTER_PLURAL = re.compile(r"[A-Z]{1,4}s")


def _suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def number_groups() -> list[tuple[str, ...]]:
    """(digits, cardinal word) and (ordinal word, digits + suffix) for 0–20, and the round
    tens: "five" is 5 and "fifth" is 5th, but five sessions are not the fifth session."""
    groups = [(str(n), _CARDINALS[n]) for n in range(len(_CARDINALS))]
    groups += [(_ORDINALS[n], f"{n}{_suffix(n)}") for n in range(len(_ORDINALS))]
    groups += [(str(n), word) for word, n in _TENS.items()]
    return groups


@dataclass(frozen=True)
class Alternative:
    terms: tuple[str, ...]
    kind: str  # "number", "letters", "general" or "family"


class Lexicon:
    """Alternatives of analysed query terms, restricted to terms the generation has."""

    def __init__(self, vocabulary: Iterable[str], has_term, equivalences: list[tuple[str, ...]] | None = None):
        """``vocabulary``: the corpus's surface words (for families); ``has_term(term)``: whether
        any section holds an index term (alternatives no section has are useless)."""
        self.by_term: dict[str, list[Alternative]] = defaultdict(list)
        groups = [("number", g) for g in number_groups()]
        groups += [("general", g) for g in (equivalences if equivalences is not None else load_equivalences())]
        for kind, group in groups:
            analysed = list(dict.fromkeys(tuple(analyze(w)) for w in group))
            analysed = [a for a in analysed if a]
            for a in analysed:
                if len(a) != 1:
                    continue
                for b in analysed:
                    if b != a and all(has_term(t) for t in b):
                        self._add(a[0], Alternative(b, kind))
        for word in {w for w in vocabulary if w.isalpha()}:
            for form in COMBINING_FORMS:
                base = word[len(form):]
                if word.startswith(form) and len(base) >= MIN_FAMILY_STEM:
                    base_terms, word_terms = analyze(base), analyze(word)
                    if len(base_terms) == 1 and len(word_terms) == 1 and has_term(word_terms[0]):
                        self._add(base_terms[0], Alternative((word_terms[0],), "family"))

    def _add(self, term: str, alternative: Alternative) -> None:
        if alternative not in self.by_term[term] and alternative.terms != (term,):
            self.by_term[term].append(alternative)

    def alternatives(self, term: str) -> list[Alternative]:
        return self.by_term.get(term, [])

    @staticmethod
    def letters(raw_word: str) -> Alternative | None:
        """"Ps" (a capital letter or acronym with a plural s) also means "P's", the letter p."""
        if _LETTER_PLURAL.fullmatch(raw_word):
            singular = analyze(raw_word[:-1] + "'s")
            if singular:
                return Alternative(tuple(singular), "letters")
        return None


def load_equivalences(path: Path = EQUIVALENCES) -> list[tuple[str, ...]]:
    """The reviewed general-English groups shipped with the service."""
    return load_synonyms(path)
