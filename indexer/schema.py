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
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from whoosh.analysis import (
    CharsetFilter,
    Filter,
    LowercaseFilter,
    RegexTokenizer,
    StemFilter,
    StopFilter,
)
from whoosh.fields import ID, NUMERIC, STORED, TEXT, Schema
from whoosh.support.charset import accent_map

SCHEMA_VERSION = 1

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


_TOKEN_PATTERN = r"\w+(?:['\u2019\u2018\u02bc]\w+)*"


def make_analyzer(stem: bool = True):
    """The analysis chain; ``stem=False`` gives the unstemmed form used for suggestions."""
    chain = (
        RegexTokenizer(_TOKEN_PATTERN)
        | LowercaseFilter()
        | CharsetFilter(accent_map)
        | NormalizeFilter()
        | StopFilter(stoplist=STOP_WORDS, minsize=1)
    )
    if stem:
        chain = chain | StemFilter(lang="en", cachesize=100_000)
    return chain


ANALYZER = make_analyzer()
WORD_ANALYZER = make_analyzer(stem=False)


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
        if w:
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
    return Schema(
        id=ID(stored=True, unique=True),
        slug=ID(stored=True),
        question=TEXT(analyzer=ANALYZER, stored=True, spelling=True, phrase=True),
        title=TEXT(analyzer=ANALYZER, stored=True, phrase=False),
        breadcrumbs=TEXT(analyzer=ANALYZER, phrase=False),
        answer=TEXT(analyzer=ANALYZER, stored=True, spelling=True, phrase=True),
        position=NUMERIC(stored=True, sortable=True),
        meta=STORED(),
    )


SCHEMA = build_schema()

#: Fields searched by a free-text query, with their default weights (tuned by ``make eval``).
SEARCH_FIELDS: dict[str, float] = {"question": 3.0, "title": 1.2, "breadcrumbs": 0.8, "answer": 1.0}


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
