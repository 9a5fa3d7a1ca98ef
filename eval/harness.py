"""Building and querying a corpus through the same code path as the API.

Every figure of the evaluation must describe what runs in production, so corpora are built
with the real indexer (``indexer.publish.build``) and queried with the real
``service.search.Engine`` after the API's own query normalisation; this module is that
path, shared by every evaluation.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.metrics import K

if TYPE_CHECKING:
    from indexer.publish import BuildReport
    from indexer.settings import Config
    from service.scoring import Ranking
    from service.search import Engine


def build_index(corpus_dir: Path, index_dir: Path, **overrides: Any) -> tuple[Config, BuildReport]:
    """Build ``corpus_dir`` with the real indexer; return (Config, BuildReport)."""
    from indexer.publish import build
    from indexer.settings import load_config

    config = load_config(env={}, corpus_dir=Path(corpus_dir), index_dir=Path(index_dir), **overrides)
    report = build(config, force=True)
    return config, report


def prepared_corpus(work: Path, name: str, reuse: bool,
                    render: Callable[[Path], dict]) -> tuple[Config, dict, str]:
    """Render a data set into ``work/<name>`` and build its index — or, with ``--reuse``,
    take an earlier run's. Returns the config, the id mapping ``render`` gave, and a note."""
    corpus, index, mapping_file = work / name, work / f"{name}-index", work / f"{name}.json"
    if reuse and (index / "CURRENT").exists() and mapping_file.exists():
        return open_config(corpus, index), json.loads(mapping_file.read_text()), "index reused from an earlier run (--reuse)"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    mapping = render(corpus)
    mapping_file.write_text(json.dumps(mapping))
    t0 = time.perf_counter()
    config, built = build_index(corpus, index)
    return config, mapping, f"built in {time.perf_counter() - t0:.0f} s ({built.sections} sections)"


def open_config(corpus_dir: Path, index_dir: Path, **overrides: Any) -> Config:
    """The Config of an already built index (the process environment ignored)."""
    from indexer.settings import load_config

    return load_config(env={}, corpus_dir=Path(corpus_dir), index_dir=Path(index_dir), **overrides)


def make_engine(config: Config, ranking: Ranking | None = None) -> Engine:
    """The API's engine on ``config``, with ``ranking`` or the shipped default."""
    from service.scoring import DEFAULT_RANKING
    from service.search import Engine

    return Engine(config, ranking=ranking or DEFAULT_RANKING)


def normalise(q: str) -> str:
    """The API's own normalisation of ``q`` (``service.query.normalise_query``)."""
    from service.query import normalise_query

    return normalise_query(q)


def ranked_ids(engine: Engine, q: str, k: int = K) -> list[str]:
    """Section ids of ``engine.search`` for ``q`` (normalised), best first, no snippets."""
    return [r["id"] for r in engine.search(normalise(q), limit=k, snippets=False)["results"]]


def top_hit(answer: dict) -> str | None:
    """The section an answer response would show first (the answer, or the first alternative)."""
    if answer.get("answer"):
        return answer["answer"]["id"]
    alts = answer.get("alternatives") or []
    return alts[0]["id"] if alts else None
