"""Searching: one worker's engine over the served generation — ranked sections, the best
answer, suggestions, articles and their related articles, shaped as the API returns them.

Each stage has its own module: ``service.generations`` (which index is served),
``service.query`` (analysis → plan), ``service.scoring`` (BM25F), ``service.highlight``
(snippets), ``service.suggest``, ``service.spelling`` and ``service.related``. This module
puts them together and pages the ranking; it holds no state beyond a ``Generations``.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from indexer.derived import SHOWN
from indexer.schema import words
from indexer.settings import Config
from service.generations import Generation, Generations, NoIndex
from service.highlight import MAX_MATCHES, make_snippet, mark_prefixes, snippet_from_matches
from service.query import Plan, plan
from service.related import similar
from service.scoring import DEFAULT_RANKING, Ranking, top_k


def distinct_count(ids: np.ndarray, universe: int) -> int:
    """How many distinct values ``ids`` (all in ``range(universe)``) holds: a mark per value,
    linear in both, where ``np.unique`` sorts (a tenth of a search's time on MedQuAD)."""
    seen = np.zeros(universe, dtype=bool)
    seen[ids] = True
    return int(np.count_nonzero(seen))


ARTICLE_REFS = 2048  # articles whose reference (slug, title, URL) an engine keeps


class NotFound(Exception):
    """An unknown article slug or section anchor."""


class Engine:
    """The per-worker search engine over the served generation."""

    def __init__(self, config: Config, ranking: Ranking = DEFAULT_RANKING, plain: bool = False):
        self.config = config
        self.plain = plain  # score with the uncached reference path (tests compare the two)
        self.site_url = (config.site_url or "").rstrip("/")
        self.ranking = ranking
        self.generations = Generations(Path(config.index_dir), ranking)
        self._prepared: Generation | None = None  # the generation _prepare last readied
        self._refs: OrderedDict[str, dict] = OrderedDict()  # _article_ref's, of _refs_of
        self._refs_of: Generation | None = None
        self._refs_lock = threading.Lock()

    # -- generations

    @property
    def switch_wait(self) -> float:
        return self.generations.switch_wait

    @switch_wait.setter
    def switch_wait(self, seconds: float) -> None:
        self.generations.switch_wait = seconds

    def generation(self) -> Generation:
        """The served generation (see ``service.generations.Generations.current``)."""
        gen = self.generations.current()
        if gen is not self._prepared:
            self._prepare(gen)
        return gen

    def _prepare(self, gen: Generation) -> None:
        """What the first queries on a generation would otherwise pay: Whoosh's searcher, the
        modules it imports and its stored-field reader (tens of milliseconds, once), and the
        scores of the commonest terms (``Scorer.warm_terms``: a few hundred microseconds per
        term, for most of a fresh worker's first queries). Done by the call that first sees
        the generation: a worker's start-up (``create_app``), or the request after a switch."""
        searcher = gen.searcher()
        live = np.flatnonzero(gen.scorer.live[:1024])
        if len(live):
            searcher.stored_fields(int(live[0]))
        gen.scorer.warm_terms()
        self._prepared = gen

    def plan(self, gen: Generation, q: str, correct: bool = True) -> Plan:
        return plan(gen, q, correct)

    # -- results

    def _url(self, path: str) -> str:
        return f"{self.site_url}{path}" if self.site_url else path

    def _article_ref(self, gen: Generation, slug: str) -> dict:
        """An article's slug, title and URL. Every result names its article, and the catalog
        keeps only a few hundred whole rows (``service.catalog``): these three fields of the
        articles last shown are kept here (``ARTICLE_REFS`` of them: under a megabyte)."""
        with self._refs_lock:
            if self._refs_of is not gen:
                self._refs, self._refs_of = OrderedDict(), gen
            ref = self._refs.get(slug)
            if ref is not None:
                self._refs.move_to_end(slug)
                return dict(ref)
        art = gen.articles.get(slug)
        if art is None:
            ref = {"slug": slug, "title": slug, "url": self._url(f"/{slug}/")}
        else:
            ref = {"slug": slug, "title": art["title"], "url": self._url(art["url"])}
        with self._refs_lock:
            if self._refs_of is gen:
                self._refs[slug] = ref
                while len(self._refs) > ARTICLE_REFS:
                    self._refs.popitem(last=False)
        return dict(ref)

    def _snippets(self, gen: Generation, terms: frozenset[str] | None,
                  docnums: list[int]) -> Callable[[int, str], str] | None:
        """(docnum, answer) → the result's snippet for a query's ``terms``, for the results
        ``docnums``; None: no snippets.

        From the spans the build recorded (``indexer.derived``) where the generation has
        them: no answer is analysed on the request path. The plain path, and a generation
        without them, analyse the answer (``make_snippet``); tests hold the two equal.
        """
        if terms is None:
            return None
        table = gen.derived.snippets if gen.derived is not None else None
        if table is None or not terms or self.plain:
            return lambda docnum, answer: make_snippet(answer, terms)
        found = dict(zip(docnums, table.matches(docnums, table.wanted(terms), MAX_MATCHES), strict=True))
        return lambda docnum, answer: snippet_from_matches(answer, *found[docnum])

    def _shown(self, gen: Generation, docnums: list[int]) -> list[dict]:
        """What results show of ``docnums``: id, question, answer, slug, url, breadcrumbs and
        related slugs. From the build's document table where the generation has one (slices
        of a shared map); else, and on the plain path, from Whoosh's stored fields (a
        compressed pickle per document). Tests hold the two equal."""
        documents = gen.derived.documents if gen.derived is not None else None
        if documents is None or self.plain or "shown" not in documents.column_index:
            searcher = gen.searcher()
            out = []
            for d in docnums:
                stored = searcher.stored_fields(d)
                meta = stored["meta"]
                out.append({"id": stored["id"], "question": stored["question"], "answer": stored["answer"],
                            "slug": stored["slug"], "url": meta["url"], "breadcrumbs": meta["breadcrumbs"],
                            "related": [r["slug"] for r in meta["related"]]})
            return out
        return [dict(zip(SHOWN, orjson.loads(raw), strict=True)) for raw in documents.raw("shown", docnums)]

    def _results(self, gen: Generation, hits: list[tuple[int, float, float]],
                 snippet: Callable[[int, str], str] | None) -> list[dict]:
        """The API's results for ``hits`` (docnum, score, …); ``snippet`` None leaves
        snippets empty (evaluation only)."""
        docnums = [d for d, _, _ in hits]
        return [self._result(gen, d, row, score, snippet)
                for (d, score, _), row in zip(hits, self._shown(gen, docnums), strict=True)]

    def _result(self, gen: Generation, docnum: int, row: dict, score: float,
                snippet: Callable[[int, str], str] | None) -> dict:
        """A section as the API shows it, from its ``_shown`` row."""
        return {
            "id": row["id"],
            "question": row["question"],
            "answer": row["answer"],
            "snippet": snippet(docnum, row["answer"]) if snippet is not None else "",
            "score": round(float(score), 4),
            "url": self._url(row["url"]),
            "breadcrumbs": row["breadcrumbs"],
            "article": self._article_ref(gen, row["slug"]),
            "related": [self._article_ref(gen, slug) for slug in row["related"]],
        }

    def _scores(self, gen: Generation, plan: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(docs, scores, coverage) of the documents the query's terms occur in."""
        if not self.plain:
            return gen.scorer.score_sparse(plan.clauses, plan.weights, plan.unknown_weight, plan.factors,
                                           plan.boosts)
        plain = gen.scorer.score_plain(plan.clauses, plan.weights, plan.unknown_weight, plan.factors, plan.boosts)
        docs = np.asarray(sorted(plain), dtype=np.int64)
        scores = np.asarray([plain[d][0] for d in docs.tolist()], dtype=np.float64)
        coverage = np.asarray([plain[d][1] for d in docs.tolist()], dtype=np.float64)
        return docs, scores, coverage

    def _ranked(self, gen: Generation, plan: Plan, limit: int, offset: int = 0,
                article: str | None = None) -> tuple[list[tuple[int, float, float]], int]:
        """(docnum, score, coverage) of the requested page, and the number of matches.

        With duplicate collapsing, sections whose answers are identical count once, in
        ``total`` too; the candidates are deepened until the page is full of distinct ones.
        """
        if not plan.clauses:
            return [], 0
        docs, scores, coverage = self._scores(gen, plan)
        if article is not None:
            keep = np.isin(docs, gen.docs_by_slug.get(article, np.empty(0, dtype=np.int64)))
            scores = np.where(keep, scores, 0.0)
        # Positions into docs; docs ascend, so ordering positions orders document numbers.
        matched = np.flatnonzero(scores > 0)
        if not len(matched):
            return [], 0
        collapse = self.ranking.collapse_duplicates
        total = distinct_count(gen.answer_ids[docs[matched]], gen.answer_id_count) if collapse else len(matched)
        want = offset + limit
        rerank = self.ranking.rerank_depth
        depth = max(rerank, want * 2 + 10)
        factor_of: dict[int, float] = {}  # the head's proximity factors, by position into docs
        while True:
            ranked = top_k(matched, scores, depth)  # by (-score, docnum): the same on every page
            head = ranked[:rerank].tolist()
            new = [i for i in head if i not in factor_of]
            factor_of.update(zip(new, self._phrase_factors(gen, plan, docs[new].tolist()), strict=True))
            final = {i: float(scores[i]) * factor_of[i] for i in head}
            # The proximity factor only raises scores, so the re-ranked head stays above the rest.
            order = sorted(head, key=lambda i: (-final[i], i)) + ranked[rerank:].tolist()
            hits, seen = [], set()
            for i in order:
                d = int(docs[i])
                if collapse:
                    key = int(gen.answer_ids[d])
                    if key in seen:
                        continue
                    seen.add(key)
                hits.append((d, final.get(i, float(scores[i])), float(coverage[i])))
                if len(hits) >= want:
                    break
            if len(hits) >= want or len(ranked) >= len(matched):
                return hits[offset:want], total
            depth *= 4

    def _phrase_factors(self, gen: Generation, plan: Plan, docnums: list[int]) -> list[float]:
        """Proximity: reward questions in which the query's words stand next to each other.
        Each document's factor is 1 + boost × (the query's adjacent word pairs, counted with
        repeats, that are adjacent in its question) / (the query's pairs)."""
        tokens = plan.tokens
        boost = self.ranking.phrase_boost
        if not boost or len(tokens) < 2:
            return [1.0] * len(docnums)
        documents = gen.derived.documents if gen.derived is not None else None
        out = []
        if documents is not None and "qterms" in documents.column_index:
            # A pair is adjacent in the question when " a b " occurs in its space-joined terms
            # (terms hold no spaces): tested on the table's bytes, nothing decoded or split.
            keys = [f" {a} {b} ".encode("utf-8", "surrogatepass") for a, b in zip(tokens, tokens[1:], strict=False)]
            live = gen.derived.live[np.asarray(docnums, dtype=np.int64)].tolist()
            for alive, text in zip(live, documents.raw("qterms", docnums), strict=True):
                adjacent = sum(map((b" " + text + b" ").__contains__, keys)) if alive else 0
                out.append(1.0 + boost * adjacent / (len(tokens) - 1))
            return out
        wanted = Counter(zip(tokens, tokens[1:], strict=False))
        for docnum in docnums:
            q = gen.question_terms.get(docnum, ())
            adjacent = sum(wanted[pair] for pair in set(zip(q, q[1:], strict=False)) if pair in wanted)
            out.append(1.0 + boost * adjacent / (len(tokens) - 1))
        return out

    def search(self, q: str, limit: int = 10, offset: int = 0, article: str | None = None, *,
               snippets: bool = True) -> dict:
        """A page of ranked sections; ``snippets=False`` leaves snippets empty and changes
        nothing else (the evaluation ranks thousands of questions and reads only ids)."""
        gen = self.generation()
        if article is not None and article not in gen.articles:
            raise NotFound(f"no article with slug {article!r}")
        plan = self.plan(gen, q)
        hits, total = self._ranked(gen, plan, limit, offset, article)
        snippet = self._snippets(gen, plan.terms if snippets else None, [d for d, _, _ in hits])
        return {
            "query": q,
            "total": total,
            "did_you_mean": plan.did_you_mean,
            "results": self._results(gen, hits, snippet),
        }

    def answer(self, q: str, alternatives: int = 3, *, snippets: bool = True) -> dict:
        """The best section, if it covers enough of the question; ``confidence`` is that cover.

        Confidence is the share of the question's information (idf-weighted words and
        synonym groups) found in the top section; words found nowhere in the corpus count
        fully against it, so an off-topic question scores near 0 whatever it matched.
        """
        gen = self.generation()
        plan = self.plan(gen, q)
        hits, _ = self._ranked(gen, plan, 1 + alternatives)
        if not hits:
            return {"query": q, "answer": None, "confidence": 0.0, "alternatives": []}
        confidence = hits[0][2]
        snippet = self._snippets(gen, plan.terms if snippets else None, [d for d, _, _ in hits])
        results = self._results(gen, hits, snippet)
        best = results[0] if confidence >= self.config.answer_threshold else None
        return {
            "query": q,
            "answer": best,
            "confidence": round(confidence, 4),
            "alternatives": results[1:] if best else results,
        }

    def suggest(self, q: str, limit: int = 8) -> dict:
        gen = self.generation()
        typed = words(q)
        entries = gen.suggester.suggest(q, limit)
        return {
            "query": q,
            "suggestions": [
                {"id": e["id"], "text": e["text"], "url": self._url(e["url"]),
                 "highlight": mark_prefixes(e["text"], typed),
                 **({"alternate": e["alternate"]} if "alternate" in e else {})}
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
                for a in sorted(gen.articles.rows(), key=lambda a: a["title"].lower())
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
        return self._results(gen, [(docnum, 0.0, 0.0)], self._snippets(gen, frozenset(), [docnum]))[0]

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
            for s, score in similar(gen, slug, limit + len(seen)):
                if s in seen:
                    continue
                seen.add(s)
                out.append({**self._article_ref(gen, s), "reason": "similar", "score": round(score, 4)})
        return {"slug": slug, "related": out[:limit]}

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


__all__ = ["Engine", "Generation", "NoIndex", "NotFound", "Ranking"]
