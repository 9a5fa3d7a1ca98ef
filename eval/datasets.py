"""Loaders and HTML renderers for the third-party evaluation data in ``../shared/data``.

The quality evaluation (``eval.quality``) and the benchmarks import this module, so its
interface is kept stable:

- ``shared_data_dir()``: the data folder (``$FAQ_SHARED_DATA``, else the repository's
  sibling ``shared/data``), or ``None`` when it is absent;
- ``load_medquad``, ``load_liveqa_queries``, ``load_qrels``, ``load_counselchat``: the data
  as plain dicts and lists (see each function);
- ``render_medquad`` and ``render_counselchat``: write the data as whole HTML pages into a
  folder, so that the real indexer (extraction, splitting, indexing) runs on them, and
  return how the data's ids map to the section ids the index will use
  (``<slug>#<anchor>``).

Nothing here imports the indexer or the service; it only reads the data and writes HTML.
See ``/work/shared/data/README.md`` for the data and the evaluation protocols.
"""

from __future__ import annotations

import csv
import gzip
import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

ENV_VAR = "FAQ_SHARED_DATA"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

MEDQUAD_DOCS = Path("medquad") / "documents.jsonl.gz"
LIVEQA_QUERIES = Path("medquad") / "liveqa_test_queries.jsonl"
LIVEQA_QRELS = Path("medquad") / "liveqa_qrels.tsv"
COUNSELCHAT_CSV = Path("counselchat") / "counselchat.csv"

#: Grades 3 (Incomplete) and 4 (Excellent) are relevant in protocol (a).
RELEVANT_GRADE = 3

__all__ = [
    "COUNSELCHAT_CSV",
    "DEFAULT_DIR",
    "ENV_VAR",
    "LIVEQA_QRELS",
    "LIVEQA_QUERIES",
    "MEDQUAD_DOCS",
    "RELEVANT_GRADE",
    "counselchat_anchor",
    "evaluated_liveqa",
    "load_counselchat",
    "load_liveqa_queries",
    "load_medquad",
    "load_qrels",
    "medquad_anchor",
    "render_counselchat",
    "render_medquad",
    "shared_data_dir",
    "split_questions",
]


# --------------------------------------------------------------------------- location


def shared_data_dir() -> Path | None:
    """The evaluation data folder, or None when it is not there.

    ``$FAQ_SHARED_DATA`` wins when set (an empty or missing folder then means "absent");
    otherwise ``<parent of the repository>/shared/data``.
    """
    env = os.environ.get(ENV_VAR)
    path = Path(env) if env else DEFAULT_DIR
    if (path / MEDQUAD_DOCS).is_file() or (path / COUNSELCHAT_CSV).is_file():
        return path
    return None


# --------------------------------------------------------------------------- loaders


def load_medquad(data_dir: Path | str) -> list[dict]:
    """MedQuAD documents in file order: ``{doc_id, focus, synonyms, cuis, url, qa: [...]}``
    (every field of ``documents.jsonl.gz``; ``qa`` items have ``qa_id``, ``question``,
    ``answer``, ``qtype``, ``xml_qid``)."""
    path = Path(data_dir) / MEDQUAD_DOCS
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_liveqa_queries(data_dir: Path | str) -> list[dict]:
    """The 104 LiveQA questions: ``{qid, subject, message, summary, ...}`` (qid a string)."""
    path = Path(data_dir) / LIVEQA_QUERIES
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_qrels(data_dir: Path | str) -> dict[str, dict[str, int]]:
    """``{qid: {qa_id: grade}}`` from ``liveqa_qrels.tsv`` (grades 1-4, as judged)."""
    qrels: dict[str, dict[str, int]] = {}
    path = Path(data_dir) / LIVEQA_QRELS
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 4:
                continue
            qid, _, qa_id, grade = parts
            qrels.setdefault(qid, {})[qa_id] = int(grade)
    return qrels


def evaluated_liveqa(queries: list[dict], qrels: dict[str, dict[str, int]]) -> list[dict]:
    """The questions of protocol (a): those with at least one grade-3 or grade-4 answer."""
    return [q for q in queries if any(g >= RELEVANT_GRADE for g in qrels.get(q["qid"], {}).values())]


def load_counselchat(data_dir: Path | str) -> list[dict]:
    """CounselChat grouped as protocol (b): one question per ``questionLink``.

    Each item: ``{link, title, text, topic, topics, answers, splits, question_ids}`` where
    ``topic`` is the topic of the question's first row (``topics`` lists them all, for the
    nine cross-posted questions), ``answers`` are the distinct answer texts in file order
    and ``splits`` the set of splits its rows belong to. Order: first appearance.
    """
    path = Path(data_dir) / COUNSELCHAT_CSV
    questions: dict[str, dict] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            link = row["questionLink"]
            q = questions.get(link)
            if q is None:
                q = questions[link] = {
                    "link": link,
                    "title": row["questionTitle"],
                    "text": row["questionText"],
                    "topic": row["topic"],
                    "topics": [],
                    "answers": [],
                    "splits": set(),
                    "question_ids": [],
                }
            if row["topic"] not in q["topics"]:
                q["topics"].append(row["topic"])
            if row["questionID"] not in q["question_ids"]:
                q["question_ids"].append(row["questionID"])
            if row["answerText"] not in q["answers"]:
                q["answers"].append(row["answerText"])
            q["splits"].add(row["split"])
    return list(questions.values())


def split_questions(questions: Iterable[dict], split: str) -> list[dict]:
    """The questions with at least one row in ``split`` ("train", "val" or "test")."""
    return [q for q in questions if split in q["splits"]]


# --------------------------------------------------------------------------- rendering

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} | {site}</title>
<meta name="description" content="{description}">
</head>
<body>
<header><nav><a href="/">Home</a> <a href="/topics/">Topics</a> <a href="/about/">About</a></nav></header>
<main>
<article>
<h1>{title}</h1>
{body}
</article>
</main>
<footer><p>{footer}</p></footer>
</body>
</html>
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _paragraphs(text: str) -> str:
    """Text as ``<p>`` elements, one per non-blank line."""
    parts = [p.strip() for p in re.split(r"\n+", text) if p.strip()]
    return "\n".join(f"<p>{_esc(p)}</p>" for p in parts)


def _page(title: str, body: str, site: str, description: str = "", footer: str = "") -> str:
    return _PAGE.format(title=_esc(title), site=_esc(site), description=_esc(description[:200]),
                        body=body, footer=footer)


_SEC = re.compile(r"_Sec(\d+)\.txt$")


def medquad_anchor(qa_id: str) -> str:
    """The heading id of a MedQuAD QA pair: ``sec<N>`` from ``<doc_id>_Sec<N>.txt``."""
    m = _SEC.search(qa_id)
    if not m:
        raise ValueError(f"not a MedQuAD qa_id: {qa_id!r}")
    return f"sec{m.group(1)}"


def render_medquad(dest: Path | str, docs: Iterable[dict]) -> dict[str, str]:
    """Write one page per MedQuAD document into ``dest``; return ``{qa_id: section_id}``.

    Page ``<doc_id>.html`` (slug = doc_id lower-cased): ``<title>`` and ``<h1>`` = focus,
    each QA pair an ``<h2 id="sec<N>">`` with its question, the answer as a paragraph.
    The page's source URL sits in the footer (site chrome the extractor must drop).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    mapping: dict[str, str] = {}
    for doc in docs:
        slug = doc["doc_id"].lower()
        parts = []
        for qa in doc["qa"]:
            anchor = medquad_anchor(qa["qa_id"])
            parts.append(f'<h2 id="{anchor}">{_esc(qa["question"])}</h2>\n{_paragraphs(qa["answer"])}')
            mapping[qa["qa_id"]] = f"{slug}#{anchor}"
        url = doc.get("url") or ""
        footer = f'Source: <a href="{_esc(url)}">{_esc(doc.get("source_name", ""))}</a>' if url else ""
        text = _page(doc["focus"] or doc["doc_id"], "\n".join(parts), "MedQuAD",
                     description=doc["qa"][0]["answer"] if doc["qa"] else "", footer=footer)
        (dest / f"{doc['doc_id']}.html").write_text(text, encoding="utf-8")
    return mapping


def counselchat_anchor(link: str) -> str:
    """The heading id of a CounselChat question: its link's last path segment, cleaned."""
    segment = link.rstrip("/").rsplit("/", 1)[-1].lower()
    segment = re.sub(r"[^a-z0-9]+", "-", segment).strip("-")
    return segment or "question"


def render_counselchat(dest: Path | str, questions: Iterable[dict]) -> dict[str, str]:
    """Write one page per topic into ``dest``; return ``{questionLink: section_id}``.

    Page ``<topic>.html``: title and ``<h1>`` = the topic, each question an ``<h2>`` with
    its title and its distinct answers as paragraphs. ``questionText`` is not written: it
    is the query of protocol (b). A cross-posted question is placed under its first topic.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    by_topic: dict[str, list[dict]] = {}
    for q in questions:
        by_topic.setdefault(q["topic"], []).append(q)
    mapping: dict[str, str] = {}
    for topic, items in by_topic.items():
        slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-") or "topic"
        used: set[str] = set()
        parts = []
        for q in items:
            anchor = base = counselchat_anchor(q["link"])
            n = 2
            while anchor in used:
                anchor, n = f"{base}-{n}", n + 1
            used.add(anchor)
            answers = "\n".join(_paragraphs(a) for a in q["answers"])
            parts.append(f'<h2 id="{anchor}">{_esc(q["title"])}</h2>\n{answers}')
            mapping[q["link"]] = f"{slug}#{anchor}"
        text = _page(topic, "\n".join(parts), "CounselChat", description=f"Questions about {topic}",
                     footer="Answers by therapists on counselchat.com")
        (dest / f"{slug}.html").write_text(text, encoding="utf-8")
    return mapping
