"""The index schema and the text analysis, shared by the indexer and the service.

Both sides must analyse text identically, or a query term would never meet the indexed
term it stands for; so the analyser, the spelling-variant table and the schema live here
and nowhere else. The analysis chain: tokenise words (keeping inner apostrophes), fold
case and accents, drop possessive "'s" and apostrophes, map British spellings to American
ones, drop a few stop words, then Snowball-stem.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from whoosh.analysis import (
    Analyzer,
    CharsetFilter,
    Filter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
    Token,
)
from whoosh.fields import ID, NUMERIC, STORED, TEXT, Schema
from whoosh.formats import Frequency
from whoosh.lang import stemmer_for_language
from whoosh.support.charset import accent_map
from whoosh.system import pack_uint

SCHEMA_VERSION = 6  # 6: the document table holds what a result shows (answer, breadcrumbs, related)

#: Longest word kept, in characters (after case and accent folding). The longest words in
#: English dictionaries have about 45 letters ("pneumonoultramicroscopicsilicovolcanoconiosis");
#: anything longer is a URL fragment, a hash or junk: 60,000 letters in one page would bloat
#: the lexicon and make the service's spelling corrector compare huge strings. Longer words
#: are dropped, at index and at query time alike (both call this module).
MAX_TOKEN_CHARS = 50

#: Words carrying no meaning for question lookup. Question words ("what", "how") are kept
#: out of the index's vocabulary too, so "what is psychotherapy" ranks by "psychotherapy".
STOP_WORDS = frozenset(
    """a an and are as at be been being by do does for from had has have i if in into is it
    its me my of on or our so than that the their them then there these they this those to
    was we were what when where which who whom why will with would you your can could should
    about how just also""".split()
)

#: Acronyms in synonyms.txt that are also English words match only when typed in capitals.
COMMON_WORDS = frozenset("did add aid act all am care cope us it may will".split())

_ACCENTS = accent_map  # a str.translate table

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})

#: British → American spellings, applied to whole lower-cased words before stemming so that
#: "behaviour"/"behavior", "organise"/"organize", "centre"/"center" meet. Word-level rules
#: with explicit stems: a blanket "-our" or "-ise" rule would break "four" or "advise".
_UK_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^(behavi|col|fav|hon|hum|lab|neighb|rum|sav|savi|vap|harb|arm|endeav|flav|od|tum"
         r"|vig|rig|clam|parl|splend|val|cand|glam)our", r"\1or"),
        (r"^(organ|real|recogn|apolog|priorit|special|emphas|minim|maxim|normal|traumat"
         r"|stabil|summar|util|visual|categor|critic|social|symbol|sympath|character|general"
         r"|memor|author|optim|hospital|immun|stigmat|idol|verbal|rational|internal|external"
         r"|legal|central|modern|person|civil|agon|harmon|mobil|neutral|fertil|steril"
         r"|hypnot|anaesthet|anesthet|desensit|sensit|jeopard|patron|fantas|final|standard"
         r"|capital|commercial|custom|emotional|familiar|global|individual|institutional"
         r"|local|material|moral|natural|penal|polar|radical|revital|rout|scrutin|subsid"
         r"|synchron|tranquil|victim|vocal)is(e|es|ed|ing|ation|ations|er|ers)$", r"\1iz\2"),
        (r"^(cent|theat|met|fib|lit|somb|spect|lust|manoeuv|meag|sab)re(s|d)?$", r"\1er\2"),
        (r"^(catalog|dialog|analog|monolog|prolog|epilog)ue(s|d)?$", r"\1\2"),
        (r"^(defen|offen|licen|preten)ce(s)?$", r"\1se\2"),
        (r"^programme(s|d)?$", r"program\1"),
        (r"^judgement(s)?$", r"judgment\1"),
        (r"^ageing$", "aging"),
        (r"^grey(s|ed|ing)?$", r"gray\1"),
        (r"^(travel|model|label|cancel|counsel|fuel|signal|level|marvel|channel|tunnel)l(ed|ing|er|ers|or|ors)$", r"\1\2"),
        (r"^(enrol|fulfil|instil|distil|skil)(ment|ments|s)$", r"\1l\2"),
        (r"^paed", "ped"),
        (r"^orthopaed", "orthoped"),
        (r"^(an|leuk|isch|hyperglyc|hypoglyc|septic|tox|ur|hyperkal|hypokal|hypercalc|hypocalc"
         r"|hyponatr|hypernatr|bacter|vir|thalass|hypox|hyperlipid|glyc)aem", r"\1em"),
        (r"^haem", "hem"),
        (r"^oesoph", "esoph"),
        (r"^oestr", "estr"),
        (r"^oedem", "edem"),
        (r"^coeliac", "celiac"),
        (r"^foet", "fet"),
        (r"^gynaec", "gynec"),
        (r"^(diarrh|dyspn|apn|seborrh|amenorrh|gonorrh|logorrh|pyorrh)oea", r"\1ea"),
        (r"^(an|)aesthe", r"\1esthe"),
        (r"^encyclopaed", "encycloped"),
        (r"^mould", "mold"),
        (r"^plough", "plow"),
        (r"^tyre(s)?$", r"tire\1"),
    )
)


@lru_cache(maxsize=200_000)
def us_spelling(word: str) -> str:
    """Map a lower-cased British spelling to its American form (identity otherwise)."""
    for pattern, repl in _UK_PATTERNS:
        new, n = pattern.subn(repl, word)
        if n:
            return new
    return word


class NormalizeFilter(Filter):
    """Fold apostrophes, drop possessive "'s", join the rest ("don't" → "dont") and map UK → US."""

    def __call__(self, tokens: Iterable) -> Iterator:
        for t in tokens:
            text = t.text.translate(_APOSTROPHES)
            if "'" in text:
                if text.endswith("'s"):
                    text = text[:-2]
                text = text.replace("'", "")
                if not text:
                    continue
            t.text = us_spelling(text)
            yield t


class LongWordFilter(Filter):
    """Drop tokens longer than ``MAX_TOKEN_CHARS`` (positions are not renumbered, as for
    tokens ``NormalizeFilter`` empties)."""

    def __call__(self, tokens: Iterable) -> Iterator:
        for t in tokens:
            if len(t.text) <= MAX_TOKEN_CHARS:
                yield t


_TOKEN_PATTERN = r"\w+(?:['\u2019\u2018\u02bc`\u00b4]\w+)*"  # every apostrophe _APOSTROPHES folds


def make_analyzer(stem: bool = True):
    """The reference analysis chain, built from Whoosh's own filters.

    ``FastAnalyzer`` does the same in one pass with a per-word cache and is what the index
    uses; this chain is kept as the specification a test compares it with.
    """
    chain = (
        RegexTokenizer(_TOKEN_PATTERN)
        | LowercaseFilter()
        | CharsetFilter(accent_map)
        | NormalizeFilter()
        | LongWordFilter()
        | StopFilter(stoplist=STOP_WORDS, minsize=1)
    )
    if stem:
        chain = chain | StemFilter(lang="en", cachesize=100_000)
    return chain


_WORD = re.compile(_TOKEN_PATTERN, re.UNICODE)
_STEM = stemmer_for_language("en")


@lru_cache(maxsize=500_000)
def _analyse_word(word: str, stem: bool) -> tuple[str, bool]:
    """(term, stopped) for one tokenised word: the reference chain applied to a single word."""
    text = word.lower().translate(_ACCENTS).translate(_APOSTROPHES)
    if "'" in text:
        if text.endswith("'s"):
            text = text[:-2]
        text = text.replace("'", "")
    if not text:
        return "", True
    text = us_spelling(text)
    if len(text) > MAX_TOKEN_CHARS:
        return "", True
    if text in STOP_WORDS:
        return text, True
    return (_STEM(text) if stem else text), False


class FastAnalyzer(Analyzer):
    """The analysis chain in a single pass, each distinct word analysed once (cached).

    Whoosh's composable filters cost a generator hop and several attribute writes per token
    per filter; indexing MedQuAD spent half its time there. Output is identical to
    ``make_analyzer()`` (tested), including positions renumbered over removed stop words.
    """

    def __init__(self, stem: bool = True):
        self.stem = stem

    def __eq__(self, other):
        return type(other) is type(self) and other.stem == self.stem

    def __hash__(self):
        return hash((type(self), self.stem))

    def has_morph(self) -> bool:
        return self.stem

    def __call__(self, value, positions=False, chars=False, keeporiginal=False, removestops=True,
                 start_pos=0, start_char=0, tokenize=True, mode="", no_morph=False, **kwargs):
        stem = self.stem and not no_morph
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        kept_pos = None  # StopFilter's renumbering: kept words get consecutive positions
        if tokenize:
            matches = ((m.group(0), m.start(), m.end()) for m in _WORD.finditer(value))
        else:
            matches = iter(((value, 0, len(value)),))
        for raw_pos, (word, start, end) in enumerate(matches, start_pos):
            text, stopped = _analyse_word(word, stem)
            if not text or (stopped and removestops):
                continue
            t.text = text
            t.stopped = stopped
            t.boost = 1.0
            if keeporiginal:
                t.original = word
            if positions:
                if stopped:
                    t.pos = raw_pos
                else:
                    kept_pos = raw_pos if kept_pos is None else kept_pos + 1
                    t.pos = kept_pos
            if chars:
                t.startchar = start_char + start
                t.endchar = start_char + end
            yield t


class FastFrequency(Frequency):
    """Whoosh's Frequency format, counting terms straight from the cached word analysis
    instead of building a Token per word (the same postings: a test builds both)."""

    def word_values(self, value, analyzer, **kwargs):
        if not isinstance(analyzer, FastAnalyzer) or not isinstance(value, str):
            return super().word_values(value, analyzer, **kwargs)
        counts: dict[str, int] = defaultdict(int)
        stem = analyzer.stem
        for word in _WORD.findall(value):
            text, stopped = _analyse_word(word, stem)
            if text and not stopped:
                counts[text] += 1
        fb = self.field_boost
        return ((w, freq, freq * fb, pack_uint(freq)) for w, freq in counts.items())


def term_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, index term) of every non-stop word of ``text``: for highlighting."""
    for m in _WORD.finditer(text):
        term, stopped = _analyse_word(m.group(0), True)
        if term and not stopped:
            yield m.start(), m.end(), term


ANALYZER = FastAnalyzer()
WORD_ANALYZER = FastAnalyzer(stem=False)


def analyze(text: str) -> list[str]:
    """Index terms of ``text``, in order (stop words removed, stemmed)."""
    return [t.text for t in ANALYZER(text)]


def words(text: str) -> list[str]:
    """Folded, unstemmed words of ``text`` with stop words kept: for prefix suggestions."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    out = []
    for w in re.findall(_TOKEN_PATTERN, text):
        w = w.replace("'s", "") if w.endswith("'s") else w
        w = _fold_accents(w.replace("'", ""))
        if w and len(w) <= MAX_TOKEN_CHARS:
            out.append(w)
    return out


@lru_cache(maxsize=50_000)
def _fold_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def build_schema() -> Schema:
    """One document per question-answer section.

    Searchable text fields are analysed with ``ANALYZER``; everything an API response needs
    (URLs, breadcrumbs, related links, the article's slug/title) is stored in ``meta`` at
    index time so that rendering a result never reads the HTML again.
    """
    schema = Schema(
        id=ID(stored=True, unique=True),
        slug=ID(stored=True),
        # No positions: ranking (service.scoring) and snippets need frequencies only, and
        # positions cost a fifth of the build. Proximity is judged on stored question terms.
        question=TEXT(analyzer=ANALYZER, stored=True, phrase=False),
        title=TEXT(analyzer=ANALYZER, stored=True, phrase=False),
        breadcrumbs=TEXT(analyzer=ANALYZER, phrase=False),
        answer=TEXT(analyzer=ANALYZER, stored=True, phrase=False),
        # Editors' alternate phrasings (``corpus/alternates.txt``), one a line: searched and
        # suggested, never shown as the answer.
        alternates=TEXT(analyzer=ANALYZER, stored=True, phrase=False),
        position=NUMERIC(stored=True, sortable=True),
        meta=STORED(),
    )
    for name in ("question", "title", "breadcrumbs", "answer", "alternates"):
        schema[name].format = FastFrequency(field_boost=schema[name].format.field_boost)
    return schema


SCHEMA = build_schema()

#: Fields searched by a free-text query, with their default weights (tuned by ``make eval``).
SEARCH_FIELDS: dict[str, float] = {"question": 2.0, "title": 1.2, "breadcrumbs": 0.8, "answer": 1.0,
                                   "alternates": 2.0}

#: Fields most sections leave empty. Their average length for BM25's length normalisation
#: is taken over the sections that have them (Lucene's ``docCount``): averaged over all
#: sections it would be near 0, and a section's one phrasing would look thousands of times
#: too long.
SPARSE_FIELDS = frozenset({"alternates"})


def load_synonyms(path: Path) -> list[tuple[str, ...]]:
    """Read editor synonym groups: one group a line, terms separated by commas, ``#`` comments.

    Each term is kept as its analysed form (a tuple of index terms, so multi-word terms work);
    groups with fewer than two distinct terms are ignored.
    """
    groups: list[tuple[str, ...]] = []
    if not path.is_file():
        return groups
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        terms = tuple(dict.fromkeys(t.strip() for t in line.split(",") if t.strip()))
        if len(terms) >= 2:
            groups.append(terms)
    return groups
