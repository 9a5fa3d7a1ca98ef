"""Query analysis: the visitor's text → normalised text → analysed terms, corrections and
synonym clauses (a ``Plan``), ready for scoring.

The user's text is never handed to Whoosh's query parser: it is analysed exactly like the
index (``indexer.schema``) and turned into term lists, so no input can inject field names,
wildcards or operators, raise a syntax error or explode into thousands of terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.schema import COMMON_WORDS, STOP_WORDS, analyze, load_synonyms, words

if TYPE_CHECKING:
    from service.generations import Generation
    from service.lexicon import Lexicon
    from service.scoring import Ranking


# C0 and C1 control characters read as spaces: a query of only controls is empty.
_CONTROLS = {c: " " for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))}


def normalise_query(text: str, keep_trailing_space: bool = False) -> str:
    """Whitespace runs collapsed to one space, leading and trailing whitespace removed: how the
    API, the evaluation and the benchmarks all see a query.

    Control characters count as whitespace. With ``keep_trailing_space`` (suggestions) one trailing space survives: it tells the
    suggester that the last word is complete rather than a prefix.
    """
    collapsed = " ".join(text.translate(_CONTROLS).split())
    if keep_trailing_space and collapsed and text[-1:].isspace():
        collapsed += " "
    return collapsed


class Synonyms:
    """Editor synonym groups applied to the analysed query.

    All-capital acronyms (DID, CBT) also match typed in lower case, except those that are
    ordinary English words too ("did"): those match only in capitals.
    """

    def __init__(self, groups: list[tuple[str, ...]]):
        self.by_terms: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        self.acronyms: dict[str, list[tuple[str, ...]]] = {}
        self.max_len = 1
        for group in groups:
            alternatives = [tuple(analyze(t)) for t in group]
            alternatives = [a for a in dict.fromkeys(alternatives) if a]
            if len(alternatives) < 2:
                continue
            for raw, alt in zip(group, [tuple(analyze(t)) for t in group], strict=True):
                if raw.isupper() and raw.lower() in COMMON_WORDS | STOP_WORDS:
                    self.acronyms[raw] = alternatives
                elif alt:
                    self.by_terms.setdefault(alt, alternatives)
                    self.max_len = max(self.max_len, len(alt))

    @classmethod
    def from_file(cls, path: Path) -> Synonyms:
        return cls(load_synonyms(path))

    def expand(self, tokens: list[str], raw_words: list[str]) -> list[list[tuple[str, ...]]]:
        """Group ``tokens`` into clauses; each clause lists its alternative term sequences,
        the words as typed first (the scorer weighs the other alternatives less)."""
        clauses: list[list[tuple[str, ...]]] = []
        consumed: set[str] = set()
        for raw in raw_words:
            if raw in self.acronyms:
                typed = tuple(analyze(raw))
                clauses.append(_typed_first(self.acronyms[raw], typed))
                consumed.update(typed)
        tokens = [t for t in tokens if t not in consumed]
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                span = tuple(tokens[i:i + n])
                if span in self.by_terms:
                    clauses.append(_typed_first(self.by_terms[span], span))
                    i += n
                    break
            else:
                clauses.append([(tokens[i],)])
                i += 1
        return clauses


def _typed_first(alternatives: list[tuple[str, ...]], typed: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [typed] + [a for a in alternatives if a != typed]



@dataclass
class Plan:
    """A query after analysis: what is searched and what is shown back."""

    tokens: list[str]  # analysed query terms, in order (after corrections)
    clauses: list[list[tuple[str, ...]]]  # one per word or synonym group: its alternatives
    weights: list[float]  # information (idf) of each clause
    unknown_weight: float  # information of the words found nowhere
    terms: frozenset[str]  # every index term searched, for highlighting
    did_you_mean: str | None
    unknown: list[str]  # words found nowhere and not corrected
    factors: list[list[float]] | None = None  # each clause's alternatives' weights (typed first)
    boosts: list[float] | None = None  # each clause's weight in the score (question sentences)



# Spelling attempts per query: a word costs up to milliseconds, and a 4,000-character message
# of made-up words once took 0.7 s; a visitor's typos are a handful.
MAX_CORRECTIONS = 8


def plan(gen: Generation, q: str, correct: bool = True) -> Plan:
    """Analyse ``q`` as the index was analysed and decide what to search: corrected terms,
    synonym clauses and their weights (the generation's ``Ranking`` caps and weighs them).

    Each word becomes a clause of alternatives: the word as typed, then the editor's
    synonyms or, when the editor has none, the built-in equivalences of ``service.lexicon``
    (numbers, letters, general English, word families), each weighted by its ``Ranking`` knob.
    A word no section holds is spell-corrected only when it has no equivalent either.
    """
    ranking = gen.scorer.ranking
    lexicon = gen.lexicon
    raw_words = re.findall(r"\w+", q)
    term_of = {w: _analysed(w) for w in dict.fromkeys(words(q)) if w not in STOP_WORDS}
    term_of = {w: terms[0] for w, terms in term_of.items() if terms}
    letters = _letter_alternatives(re.findall(r"\w+(?:['\u2019]\w+)*", q), lexicon, ranking)

    def equivalents(term: str) -> list[tuple[tuple[str, ...], float]]:
        """Built-in alternatives of ``term`` that some section holds, with their weights."""
        found = [(alt.terms, _kind_weight(ranking, alt.kind)) for alt in lexicon.alternatives(term)]
        found += letters.get(term, [])
        return [(terms, w) for terms, w in found if w > 0]

    surface = list(term_of)
    if len(surface) > ranking.max_query_terms:
        # Keep the most informative words rather than the first ones: a long message often
        # states its actual question last (unknown words count as the rarest).
        df = {w: gen.scorer.doc_frequency(term_of[w]) for w in surface}
        keep = set(sorted(surface, key=lambda w: df[w])[:ranking.max_query_terms])  # stable: ties keep order
        surface = [w for w in surface if w in keep]
    tokens: list[str] = []
    corrections: dict[str, str] = {}
    unknown: list[str] = []
    attempts = 0
    for w in surface:
        t = term_of[w]
        if correct and not gen.scorer.doc_frequency(t) and not equivalents(t) and attempts < MAX_CORRECTIONS:
            attempts += 1
            fixed = gen.speller.correct(w)
            fixed_terms = analyze(fixed) if fixed else []
            if fixed_terms:
                corrections[w] = fixed
                t = fixed_terms[0]
            else:
                unknown.append(w)
        elif not gen.scorer.doc_frequency(t) and not equivalents(t):
            unknown.append(w)
        tokens.append(t)
    if unknown and corrections:
        # A word we cannot place suggests an off-topic question: "correcting" its
        # neighbours into unrelated corpus words ("bread" → "broad") would only mislead.
        tokens = [term_of[w] for w in surface]
        unknown = [w for w in surface if w in corrections or w in unknown]
        corrections = {}
    tokens = list(dict.fromkeys(tokens))
    known = [t for t in tokens if gen.scorer.doc_frequency(t) or equivalents(t)]
    clauses = gen.synonyms.expand(known, raw_words)
    factors: list[list[float]] = []
    for clause in clauses:
        alt_weights = [1.0] + [ranking.synonym_weight] * (len(clause) - 1)
        if len(clause) == 1 and len(clause[0]) == 1:  # no editor synonyms: the built-in ones
            for terms, weight in equivalents(clause[0][0]):
                if terms not in clause:
                    clause.append(terms)
                    alt_weights.append(weight)
        factors.append(alt_weights)
    weights = [gen.scorer.clause_weight(c) for c in clauses]
    unknown_weight = len(unknown) * ranking.idf_value(gen.scorer.n, 0)
    terms = frozenset(t for clause in clauses for alt in clause for t in alt)
    did_you_mean = None
    if corrections:
        did_you_mean = q
        for wrong, right in corrections.items():
            did_you_mean = re.sub(rf"(?i)\b{re.escape(wrong)}\b", right, did_you_mean, count=1)
        if did_you_mean == q:
            did_you_mean = None
    boosts = _question_boosts(q, clauses, ranking)
    return Plan(tokens, clauses, weights, unknown_weight, terms, did_you_mean, unknown, factors, boosts)


def _kind_weight(ranking: Ranking, kind: str) -> float:
    return {"number": ranking.number_weight, "letters": ranking.letters_weight,
            "general": ranking.general_weight, "family": ranking.family_weight}[kind]


def _letter_alternatives(raw_words: list[str], lexicon: Lexicon,
                         ranking: Ranking) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """"Ps" as typed → its term ("ps") gets the letter's term ("p") as an alternative."""
    out: dict[str, list[tuple[tuple[str, ...], float]]] = {}
    for raw in raw_words:
        alt = lexicon.letters(raw)
        if alt is None:
            continue
        typed = _analysed(raw)
        if len(typed) == 1 and alt.terms != (typed[0],):
            out.setdefault(typed[0], []).append((alt.terms, ranking.letters_weight))
    return out


@lru_cache(maxsize=10_000)
def _analysed(word: str) -> tuple[str, ...]:
    """``analyze`` of one word, cached: a long message repeats its words, and visitors theirs."""
    return tuple(analyze(word))


_QUESTION = re.compile(r"[^.!?\n]*\?")


def _question_boosts(q: str, clauses: list[list[tuple[str, ...]]], ranking: Ranking) -> list[float] | None:
    """A whole message (``question_min_words`` words or more) that asks something: the words
    of its question sentences weigh ``question_boost`` times the rest."""
    if ranking.question_boost == 1.0 or len(q.split()) < ranking.question_min_words:
        return None
    asked = {t for sentence in _QUESTION.findall(q) for t in analyze(sentence)}
    if not asked:
        return None
    return [ranking.question_boost if clause[0][0] in asked else 1.0 for clause in clauses]
