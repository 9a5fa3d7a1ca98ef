"""What every phase of ``bench/run.py`` shares: the progress line it prints and the Config
of a benchmark index, so the phases stay independent modules without repeating either."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchlib as bl

if TYPE_CHECKING:
    from indexer.settings import Config

ROOT = bl.ROOT


def log(msg: str) -> None:
    """One timestamped progress line on stdout."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bl_config(corpus_dir: Path, index_dir: Path, load_config: Any = None) -> Config:
    """The Config of a benchmark index (settings from the environment, folders given)."""
    if load_config is None:
        from indexer.settings import load_config
    return load_config(corpus_dir=Path(corpus_dir), index_dir=Path(index_dir))
