"""Query the published index: ranked answers, the best answer, suggestions, related articles.

The user's text is never handed to Whoosh's query parser: it is analysed exactly like the
index (``indexer.schema``) and turned into term queries, so no input can inject field
names, wildcards or operators, raise a syntax error or explode into thousands of terms.

One ``Engine`` lives in each worker. It keeps the served generation open, notices a newly
published one with a ``stat`` of the pointer file (no reopen per request), and gives each
thread its own Whoosh searcher, because searchers are not thread-safe.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
import re
import sqlite3
import threading
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whoosh import highlight, scoring
from whoosh import index as whoosh_index
from whoosh.query import Or, Phrase, Term

from indexer.publish import CATALOG, CURRENT, GENERATION_INFO, GENERATIONS, current_generation
from indexer.schema import (
    ANALYZER,
    COMMON_WORDS,
    SEARCH_FIELDS,
    STOP_WORDS,
    analyze,
    load_synonyms,
    words,
)
from indexer.settings import Config

log = logging.getLogger("faq.search")

MAX_QUERY_TERMS = 32  # a pasted essay is cut here rather than becoming a huge OR


class NoIndex(Exception):
    """No generation has been published (or it cannot be opened)."""


class NotFound(Exception):
    """An unknown article slug or section anchor."""


# --------------------------------------------------------------------------- ranking knobs


@dataclass(frozen=True)
class Ranking:
    """Ranking parameters; defaults were chosen with ``make eval`` (see docs/quality.md)."""

    fields: tuple[tuple[str, float], ...] = tuple(SEARCH_FIELDS.items())
    k1: float = 1.2
    b: float = 0.75
    coord: float | None = 0.9  # Whoosh's coordination bonus: more query terms matched, higher
    phrase_boost: float = 1.5  # the query's words adjacent in a question
    phrase_max_terms: int = 6
    collapse_duplicates: bool = True

    def weighting(self) -> scoring.WeightingModel:
        return scoring.BM25F(B=self.b, K1=self.k1)


DEFAULT_RANKING = Ranking()


# --------------------------------------------------------------------------- synonyms


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
        """Group ``tokens`` into clauses; each clause lists its alternative term sequences."""
        clauses: list[list[tuple[str, ...]]] = []
        for raw in raw_words:
            if raw in self.acronyms:
                clauses.append(self.acronyms[raw])
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                span = tuple(tokens[i:i + n])
                if span in self.by_terms:
                    clauses.append(self.by_terms[span])
                    i += n
                    break
            else:
                clauses.append([(tokens[i],)])
                i += 1
        return clauses


# --------------------------------------------------------------------------- suggestions


@dataclass
class Suggester:
    """As-you-type completion of questions from an in-memory word index built at load.

    A keystroke costs a few dictionary and bisect look-ups, never a Whoosh query.
    """

    entries: list[dict]  # {"id", "text", "url", "words"}
    vocab: list[str] = field(default_factory=list)
    postings: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: list[dict]) -> Suggester:
        postings: dict[str, set[int]] = defaultdict(set)
        for i, entry in enumerate(entries):
            for w in entry["words"]:
                postings[w].add(i)
        return cls(entries, sorted(postings), dict(postings))

    def _prefixed(self, prefix: str, cap: int = 2000) -> set[int]:
        out: set[int] = set()
        i = bisect_left(self.vocab, prefix)
        while i < len(self.vocab) and self.vocab[i].startswith(prefix):
            out |= self.postings[self.vocab[i]]
            if len(out) > cap * 4:
                break
            i += 1
        return out

    def suggest(self, q: str, limit: int) -> list[dict]:
        typed = words(q)
        if not typed:
            return []
        last_is_prefix = not q[-1:].isspace()
        complete, last = (typed[:-1], typed[-1]) if last_is_prefix else (typed, None)
        candidates: set[int] | None = None
        needed = [w for w in complete if w not in STOP_WORDS] or complete
        for w in needed:
            found = self.postings.get(w, set()) | self._prefixed(w)
            candidates = found if candidates is None else candidates & found
        if last is not None:
            found = self._prefixed(last)
            candidates = found if candidates is None else candidates & found
        if not candidates:
            return []
        normal = " ".join(typed)
        scored = []
        for i in candidates:
            entry = self.entries[i]
            joined = " ".join(entry["words"])
            starts = joined.startswith(normal)
            first_match = _first_index(entry["words"], typed[0])
            scored.append((not starts, first_match, len(entry["words"]), entry["position"], i))
        scored.sort()
        return [self.entries[t[-1]] for t in scored[:limit]]


def _first_index(ws: list[str], prefix: str) -> int:
    for i, w in enumerate(ws):
        if w.startswith(prefix):
            return i
    return len(ws)


def mark_prefixes(text: str, typed: list[str]) -> str:
    """HTML-escape ``text`` and wrap the words that start with a typed word in <mark>."""
    prefixes = [w for w in typed if w]
    out, last = [], 0
    for m in re.finditer(r"\w+(?:['\u2019]\w+)*", text):
        folded = words(m.group(0))
        if folded and any(folded[0].startswith(p) for p in prefixes):
            hit = max((p for p in prefixes if folded[0].startswith(p)), key=len)
            length = _surface_length(m.group(0), len(hit))
            out.append(html.escape(text[last:m.start()]))
            out.append(f"<mark>{html.escape(m.group(0)[:length])}</mark>")
            out.append(html.escape(m.group(0)[length:]))
            last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _surface_length(word: str, folded_len: int) -> int:
    """How many characters of ``word`` spell its first ``folded_len`` folded characters."""
    for n in range(1, len(word) + 1):
        if len("".join(words(word[:n]))) >= folded_len:
            return n
    return len(word)


# --------------------------------------------------------------------------- snippets


class _MarkFormatter(highlight.Formatter):
    """Whoosh formatter that escapes text and wraps only the matched terms in <mark>."""

    between = " … "

    def format_token(self, text, token, replace=False):
        return f"<mark>{html.escape(highlight.get_text(text, token, replace))}</mark>"

    def format_fragment(self, fragment, replace=False):
        output, index = [], fragment.startchar
        text = fragment.text
        for t in fragment.matches:
            if t.startchar > index:
                output.append(html.escape(text[index:t.startchar]))
            output.append(self.format_token(text, t, replace))
            index = t.endchar
        output.append(html.escape(text[index:fragment.endchar]))
        return "".join(output)


_FRAGMENTER = highlight.ContextFragmenter(maxchars=240, surround=80)
_FORMATTER = _MarkFormatter()


def make_snippet(answer: str, terms: frozenset[str], chars: int = 240) -> str:
    """The answer's best passage, HTML-escaped, with the query's terms in <mark>."""
    if terms:
        text = highlight.highlight(answer, terms, ANALYZER, _FRAGMENTER, _FORMATTER, top=2)
        if text:
            return text
    cut = answer[:chars]
    if len(answer) > chars:
        cut = cut.rsplit(" ", 1)[0] + " …"
    return html.escape(cut)


# --------------------------------------------------------------------------- generation


class Generation:
    """One published generation opened by a worker: index, catalog, suggestions, synonyms."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self.info = json.loads((path / GENERATION_INFO).read_text(encoding="utf-8"))
        self.ix = whoosh_index.open_dir(str(path))
        self.articles = _read_articles(path / CATALOG)
        self.backlinks: dict[str, list[str]] = defaultdict(list)
        for slug, art in self.articles.items():
            for target in art["related"]:
                if target != slug and slug not in self.backlinks[target]:
                    self.backlinks[target].append(slug)
        self.synonyms = Synonyms.from_file(path / "synonyms.txt")
        self._local = threading.local()
        entries = []
        with self.ix.searcher() as s:
            self.doc_count = s.doc_count()
            for docnum, stored in s.iter_docs():
                entries.append(
                    {
                        "id": stored["id"],
                        "text": stored["question"],
                        "url": stored["meta"]["url"],
                        "position": (stored["slug"], stored["position"]),
                        "words": words(stored["question"]),
                    }
                )
        entries.sort(key=lambda e: e["position"])
        self.suggester = Suggester.build(entries)
        self.ranking = DEFAULT_RANKING

    def searcher(self):
        """This thread's searcher over this generation (created on first use)."""
        s = getattr(self._local, "searcher", None)
        if s is None:
            s = self.ix.searcher(weighting=self.ranking.weighting())
            self._local.searcher = s
        return s

    def close(self) -> None:
        s = getattr(self._local, "searcher", None)
        if s is not None:
            s.close()


def _read_articles(path: Path) -> dict[str, dict]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM articles ORDER BY slug").fetchall()
    finally:
        conn.close()
    out = {}
    for row in rows:
        d = dict(row)
        d["outline"] = json.loads(d["outline"])
        d["links"] = json.loads(d["links"])
        d["issues"] = json.loads(d["issues"])
        d["related"] = list(dict.fromkeys(
            lk["slug"] for lk in d["links"] if lk["kind"] == "internal" and lk["slug"] != d["slug"]
        ))
        out[d["slug"]] = d
    return out


# --------------------------------------------------------------------------- engine


@dataclass
class Plan:
    """A query after analysis: what is searched and what is shown back."""

    query: Any  # whoosh query, or None when nothing is searchable
    terms: frozenset[str]  # index terms, for highlighting and coverage
    clauses: list[list[tuple[str, ...]]]
    did_you_mean: str | None
    unknown: list[str]  # words found nowhere and not corrected


class Engine:
    """The per-worker search engine over the served generation."""

    def __init__(self, config: Config, ranking: Ranking = DEFAULT_RANKING):
        self.config = config
        self.index_dir = Path(config.index_dir)
        self.site_url = (config.site_url or "").rstrip("/")
        self.ranking = ranking
        self._gen: Generation | None = None
        self._pointer_stat: tuple | None = None
        self._lock = threading.Lock()

    # -- generation switching

    def generation(self) -> Generation:
        """The served generation; switches to a newly published one when the pointer moved."""
        try:
            st = os.stat(self.index_dir / CURRENT)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        gen = self._gen
        if gen is not None and key == self._pointer_stat:
            return gen
        with self._lock:
            if self._gen is not None and key == self._pointer_stat:
                return self._gen
            current = current_generation(self.index_dir)
            if current is None:
                if self._gen is not None:
                    return self._gen
                raise NoIndex(f"no index has been built in {self.index_dir}; run `faq-index build`")
            if self._gen is None or self._gen.name != current[0]:
                try:
                    new = Generation(*current)
                    new.ranking = self.ranking
                except Exception as exc:  # a broken generation must not take the service down
                    log.error("cannot open generation %s: %s", current[0], exc)
                    if self._gen is None:
                        raise NoIndex(f"the index generation {current[0]} cannot be opened: {exc}") from exc
                    return self._gen
                self._gen = new
                log.info("serving generation %s", new.name)
            self._pointer_stat = key
            return self._gen

    # -- query analysis

    def plan(self, gen: Generation, q: str, correct: bool = True) -> Plan:
        searcher = gen.searcher()
        reader = searcher.reader()
        raw_words = re.findall(r"\w+", q)
        surface = [w for w in words(q) if w not in STOP_WORDS][:MAX_QUERY_TERMS]
        tokens: list[str] = []
        corrections: dict[str, str] = {}
        unknown: list[str] = []
        for w in surface:
            analysed = analyze(w)
            if not analysed:
                continue
            t = analysed[0]
            if correct and not _known(reader, t, self.ranking):
                fixed = _correct(searcher, w)
                if fixed:
                    corrections[w] = fixed
                    fixed_terms = analyze(fixed)
                    if fixed_terms:
                        t = fixed_terms[0]
                else:
                    unknown.append(w)
            tokens.append(t)
        if unknown and corrections:
            # A word we cannot place suggests an off-topic question: "correcting" its
            # neighbours into unrelated corpus words ("bread" → "broad") would only mislead.
            tokens = [analyze(w)[0] if w in corrections else t for w, t in zip(
                [w for w in surface if analyze(w)], tokens, strict=True)]
            corrections = {}
        tokens = list(dict.fromkeys(tokens))
        clauses = gen.synonyms.expand(tokens, raw_words)
        terms = frozenset(t for clause in clauses for alt in clause for t in alt)
        did_you_mean = None
        if corrections:
            did_you_mean = q
            for wrong, right in corrections.items():
                did_you_mean = re.sub(rf"(?i)\b{re.escape(wrong)}\b", right, did_you_mean, count=1)
            if did_you_mean == q:
                did_you_mean = None
        return Plan(self._build_query(clauses, tokens), terms, clauses, did_you_mean, unknown)

    def _build_query(self, clauses: list[list[tuple[str, ...]]], tokens: list[str]):
        if not clauses:
            return None
        fields = self.ranking.fields
        subqueries = []
        for clause in clauses:
            alts = []
            for alt in clause:
                if len(alt) == 1:
                    alts.extend(Term(f, alt[0], boost=w) for f, w in fields)
                else:
                    alts.extend(Phrase(f, list(alt), boost=w) for f, w in fields if f in ("question", "answer"))
            subqueries.append(Or(alts) if len(alts) > 1 else alts[0])
        if 1 < len(tokens) <= self.ranking.phrase_max_terms and self.ranking.phrase_boost:
            subqueries.append(Phrase("question", tokens, slop=2, boost=self.ranking.phrase_boost))
        if len(subqueries) == 1:
            return subqueries[0]
        return Or(subqueries, scale=self.ranking.coord)

    # -- results

    def _url(self, path: str) -> str:
        return f"{self.site_url}{path}" if self.site_url else path

    def _article_ref(self, gen: Generation, slug: str) -> dict:
        art = gen.articles.get(slug)
        if art is None:
            return {"slug": slug, "title": slug, "url": self._url(f"/{slug}/")}
        return {"slug": slug, "title": art["title"], "url": self._url(art["url"])}

    def _result(self, gen: Generation, stored: dict, score: float, terms: frozenset[str]) -> dict:
        meta = stored["meta"]
        return {
            "id": stored["id"],
            "question": stored["question"],
            "answer": stored["answer"],
            "snippet": make_snippet(stored["answer"], terms),
            "score": round(float(score), 4),
            "url": self._url(meta["url"]),
            "breadcrumbs": meta["breadcrumbs"],
            "article": self._article_ref(gen, stored["slug"]),
            "related": [self._article_ref(gen, r["slug"]) for r in meta["related"]],
        }

    def _ranked(self, gen: Generation, plan: Plan, limit: int, offset: int = 0,
                article: str | None = None) -> tuple[list[tuple[dict, float]], int]:
        if plan.query is None:
            return [], 0
        searcher = gen.searcher()
        flt = Term("slug", article) if article else None
        want = offset + limit
        depth = want * 2 + 10 if self.ranking.collapse_duplicates else want
        results = searcher.search(plan.query, limit=depth, filter=flt)
        total = len(results)
        hits, seen = [], set()
        for hit in results:
            stored = hit.fields()
            if self.ranking.collapse_duplicates:
                key = stored["meta"].get("answer_hash") or _answer_hash(stored["answer"])
                if key in seen:
                    total -= 1
                    continue
                seen.add(key)
            hits.append((stored, hit.score))
            if len(hits) >= want:
                break
        return hits[offset:want], max(total, len(hits))

    def search(self, q: str, limit: int = 10, offset: int = 0, article: str | None = None) -> dict:
        gen = self.generation()
        if article is not None and article not in gen.articles:
            raise NotFound(f"no article with slug {article!r}")
        plan = self.plan(gen, q)
        hits, total = self._ranked(gen, plan, limit, offset, article)
        return {
            "query": q,
            "total": total,
            "did_you_mean": plan.did_you_mean,
            "results": [self._result(gen, stored, score, plan.terms) for stored, score in hits],
        }

    def answer(self, q: str, alternatives: int = 3) -> dict:
        gen = self.generation()
        plan = self.plan(gen, q)
        hits, _ = self._ranked(gen, plan, 1 + alternatives)
        if not hits:
            return {"query": q, "answer": None, "confidence": 0.0, "alternatives": []}
        confidence = self.confidence(gen, plan, hits[0][0])
        results = [self._result(gen, stored, score, plan.terms) for stored, score in hits]
        best = results[0] if confidence >= self.config.answer_threshold else None
        return {
            "query": q,
            "answer": best,
            "confidence": round(confidence, 4),
            "alternatives": results[1:] if best else results,
        }

    def confidence(self, gen: Generation, plan: Plan, stored: dict) -> float:
        """Share of the query's information (idf-weighted clauses) the section covers.

        A clause counts as covered when any of its alternatives occurs in the section's
        question, answer, breadcrumbs or title; words found nowhere in the corpus count
        fully against it. 0 means nothing of the question is there, 1 all of it.
        """
        reader = gen.searcher().reader()
        n = max(gen.doc_count, 1)
        text_terms = set(analyze(" ".join((stored["question"], stored["answer"], stored["title"],
                                          " ".join(stored["meta"]["breadcrumbs"])))))
        total = covered = 0.0
        for clause in plan.clauses:
            df = max((min(reader.doc_frequency("answer", t) + reader.doc_frequency("question", t) for t in alt)
                      for alt in clause), default=0)
            weight = math.log(1 + n / (df + 0.5))
            total += weight
            if any(all(t in text_terms for t in alt) for alt in clause):
                covered += weight
        for _ in plan.unknown:
            total += math.log(1 + n / 0.5)
        return covered / total if total else 0.0

    def suggest(self, q: str, limit: int = 8) -> dict:
        gen = self.generation()
        typed = words(q)
        entries = gen.suggester.suggest(q, limit)
        return {
            "query": q,
            "suggestions": [
                {"id": e["id"], "text": e["text"], "url": self._url(e["url"]),
                 "highlight": mark_prefixes(e["text"], typed)}
                for e in entries
            ],
        }

    # -- articles

    def articles(self) -> dict:
        gen = self.generation()
        return {
            "articles": [
                {"slug": a["slug"], "title": a["title"], "url": self._url(a["url"]),
                 "description": a["description"], "sections": a["sections"], "source": a["source"]}
                for a in sorted(gen.articles.values(), key=lambda a: a["title"].lower())
            ]
        }

    def _sections(self, gen: Generation, slug: str) -> list[dict]:
        searcher = gen.searcher()
        docs = [searcher.stored_fields(n) for n in searcher.document_numbers(slug=slug)]
        docs.sort(key=lambda d: d["position"])
        return docs

    def article(self, slug: str) -> dict:
        gen = self.generation()
        art = gen.articles.get(slug)
        if art is None:
            raise NotFound(f"no article with slug {slug!r}")
        sections = [
            {"id": d["id"], "question": d["question"], "answer": d["answer"],
             "url": self._url(d["meta"]["url"]), "breadcrumbs": d["meta"]["breadcrumbs"]}
            for d in self._sections(gen, slug)
        ]
        links = [
            {"href": lk["href"], "text": lk["text"], "kind": lk["kind"], "slug": lk["slug"],
             "section": f"{slug}#{_anchor_at(sections, lk['section'])}"}
            for lk in art["links"]
        ]
        return {
            "slug": slug,
            "title": art["title"],
            "url": self._url(art["url"]),
            "description": art["description"],
            "published": art["published"],
            "modified": art["modified"],
            "outline": art["outline"],
            "sections": sections,
            "links": links,
            "related": [self._article_ref(gen, s) for s in art["related"] if s in gen.articles],
        }

    def faq(self, slug: str, anchor: str) -> dict:
        gen = self.generation()
        searcher = gen.searcher()
        docnum = searcher.document_number(id=f"{slug}#{anchor}")
        if docnum is None:
            if slug not in gen.articles:
                raise NotFound(f"no article with slug {slug!r}")
            raise NotFound(f"article {slug!r} has no section #{anchor}")
        return self._result(gen, searcher.stored_fields(docnum), 0.0, frozenset())

    def related(self, slug: str, limit: int = 10) -> dict:
        gen = self.generation()
        art = gen.articles.get(slug)
        if art is None:
            raise NotFound(f"no article with slug {slug!r}")
        out: list[dict] = []
        seen = {slug}
        for reason, slugs in (("links-to", art["related"]), ("linked-from", gen.backlinks.get(slug, []))):
            for s in slugs:
                if s in seen or s not in gen.articles:
                    continue
                seen.add(s)
                out.append({**self._article_ref(gen, s), "reason": reason, "score": 1.0})
        if len(out) < limit:
            for s, score in self._similar(gen, slug, limit + len(seen)):
                if s in seen:
                    continue
                seen.add(s)
                out.append({**self._article_ref(gen, s), "reason": "similar", "score": round(score, 4)})
        return {"slug": slug, "related": out[:limit]}

    def _similar(self, gen: Generation, slug: str, limit: int) -> list[tuple[str, float]]:
        """Whoosh more-like-this over the article's sections, scores summed per article."""
        searcher = gen.searcher()
        docnums = list(searcher.document_numbers(slug=slug))
        if not docnums:
            return []
        keys = searcher.key_terms(docnums, "answer", numterms=20)
        keys += searcher.key_terms(docnums, "question", numterms=8)
        if not keys:
            return []
        top = max(w for _, w in keys)
        q = Or([Term("answer" if i < 20 else "question", t, boost=w / top) for i, (t, w) in enumerate(keys)])
        scores: dict[str, float] = defaultdict(float)
        for hit in searcher.search(q, limit=200):
            s = hit["slug"]
            if s != slug:
                scores[s] = max(scores[s], hit.score)
        if not scores:
            return []
        best = max(scores.values())
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [(s, v / best) for s, v in ranked]

    def status(self) -> dict:
        gen = self.generation()
        return {
            "generation": gen.name,
            "created": gen.info.get("created"),
            "articles": len(gen.articles),
            "sections": gen.doc_count,
        }


def _anchor_at(sections: list[dict], position: int) -> str:
    if 0 <= position < len(sections):
        return sections[position]["id"].split("#", 1)[1]
    return ""


def _known(reader, term: str, ranking: Ranking) -> bool:
    return any(reader.doc_frequency(f, term) for f, _ in ranking.fields)


def _correct(searcher, word: str) -> str | None:
    """The most frequent indexed word one edit away, else two (Whoosh's corrector).

    Short words are left alone (too many neighbours), and only words of seven letters or
    more may take two edits.
    """
    if len(word) < 5 or not word.isalpha():
        return None
    for maxdist in (1, 2) if len(word) >= 7 else (1,):
        for field_name in ("question", "answer"):
            corrector = searcher.corrector(field_name)
            found = corrector.suggest(word, limit=1, maxdist=maxdist, prefix=1)
            if found:
                return found[0]
    return None


def _answer_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).lower().encode("utf-8")).hexdigest()


__all__ = ["Engine", "Generation", "NoIndex", "NotFound", "Ranking", "GENERATIONS"]
