"""The build phase: MedQuAD rendered as HTML pages, then ``faq-index build`` and ``update``
timed end to end in subprocesses (as an operator runs them), the index size, and a
cProfile of a small in-process build."""

from __future__ import annotations

import cProfile
import json
import re
import shutil
import time
from pathlib import Path

import benchlib as bl
from common import bl_config, log
from profiling import profile_tables


def render_corpus(data_dir: Path, corpus: Path) -> dict:
    """MedQuAD written as HTML pages into ``corpus`` (untimed: not part of a build)."""
    from eval import datasets

    started = time.perf_counter()
    docs = datasets.load_medquad(data_dir)
    mapping = datasets.render_medquad(corpus, docs)
    files = sorted(corpus.glob("*.html"))
    return {"documents": len(docs), "pairs": len(mapping), "pages": len(files),
            "bytes": sum(p.stat().st_size for p in files), "seconds": time.perf_counter() - started}


def cli_build(mode: str, corpus: Path, index: Path) -> dict:
    """``faq-index build|update --json`` in a subprocess, timed end to end with its peak RSS."""
    argv = [bl.PYTHON, "-m", "indexer.cli", "build" if mode == "full" else "update",
            "--corpus", str(corpus), "--index", str(index), "--json", "--force"]
    run = bl.run_child(argv, env=bl.project_env())
    if run.returncode != 0:
        raise RuntimeError(f"`faq-index {argv[3]}` failed with status {run.returncode}:\n{run.stderr[-3000:]}")
    m = re.search(r"^\{", run.stdout, re.M)
    report = json.loads(run.stdout[m.start():]) if m else {}
    return {
        "mode": mode, "ran_as": report.get("mode", mode), "wall_s": run.wall_s, "cpu_s": run.user_s + run.sys_s, "inside_s": report.get("seconds"),
        "peak_rss_mb": run.max_rss_mb, "sections": report.get("sections", 0), "articles": report.get("articles", 0),
        "rewritten": len(report.get("rewritten", [])), "published": report.get("published"),
        "generation": report.get("generation"), "warnings": report.get("warnings", 0),
        "errors": report.get("errors", 0),
    }


def edit_articles(corpus: Path, files: list[Path], tag: str) -> None:
    """Change each file's text (one answer paragraph gets a sentence), as an editor would."""
    for path in files:
        text = path.read_text(encoding="utf-8")
        marker = f" Reviewed for the benchmark ({tag})."
        new = text.replace("</p>", marker + "</p>", 1) if "</p>" in text else text.replace(
            "</article>", f"<p>{marker}</p></article>", 1)
        path.write_text(new, encoding="utf-8")


def generation_size(index: Path) -> dict:
    """Size of the current generation and of the whole index folder (hard links once)."""
    from indexer.publish import current_generation

    current = current_generation(index)
    gen_bytes = sum(p.stat().st_size for p in current[1].iterdir() if p.is_file()) if current else 0
    seen: set[tuple[int, int]] = set()
    disk = 0
    for p in index.rglob("*"):
        st = p.lstat()
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            disk += st.st_blocks * 512
    return {"generation_mb": gen_bytes / 1e6, "folder_disk_mb": disk / 1e6,
            "generations": len([p for p in (index / "generations").iterdir() if p.name[:1].isdigit()])}


def run_build_phase(work: Path, data_dir: Path, results: dict) -> None:
    """Render, full build, then updates with 0, 1 and 50 changed articles; fills ``results``."""
    corpus, index = work / "corpus", work / "index"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    log("rendering MedQuAD as HTML pages ...")
    results["corpus"] = render_corpus(data_dir, corpus)
    c = results["corpus"]
    log(f"  {c['pages']} pages, {c['pairs']} QA pairs, {c['bytes'] / 1e6:.1f} MB in {c['seconds']:.1f} s")
    builds = results["builds"] = []
    log("full build (faq-index build, subprocess) ...")
    full = cli_build("full", corpus, index)
    full["label"] = "full build"
    full.update(generation_size(index))
    builds.append(full)
    log(f"  {full['wall_s']:.1f} s, {full['sections']} sections, peak RSS {full['peak_rss_mb']:.0f} MB")
    pages = sorted(corpus.glob("*.html"))
    for label, changed in (("update, nothing changed", []), ("update, 1 article changed", pages[:1]),
                           ("update, 50 articles changed", pages[1:51])):
        edit_articles(corpus, changed, label)
        log(f"{label} ...")
        up = cli_build("update", corpus, index)
        up["label"] = label
        up["changed"] = len(changed)
        builds.append(up)
        log(f"  {up['wall_s']:.2f} s end to end ({up['inside_s'] or 0:.2f} s inside build()), "
            f"{up['rewritten']} rewritten" + (f" (ran as {up['ran_as']})" if up["ran_as"] != "update" else ""))
    results["index_after_updates"] = generation_size(index)


def profile_build(work: Path, data_dir: Path, pages: int, results: dict) -> None:
    """cProfile of ``indexer.publish.build`` in-process on the first ``pages`` pages."""
    from indexer.publish import build
    from indexer.settings import load_config

    src = work / "corpus"
    sub, sub_index = work / "profile-corpus", work / "profile-index"
    shutil.rmtree(sub, ignore_errors=True)
    shutil.rmtree(sub_index, ignore_errors=True)
    sub.mkdir(parents=True)
    for p in sorted(src.glob("*.html"))[:pages]:
        shutil.copy2(p, sub / p.name)
    config = bl_config(corpus_dir=sub, index_dir=sub_index, load_config=load_config)
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    report = build(config, mode="full", force=True)
    prof.disable()
    results["build_profile"] = {"pages": pages, "sections": report.sections,
                                "seconds": time.perf_counter() - started,
                                **profile_tables(prof, "build", "indexer/publish.py")}
    shutil.rmtree(sub, ignore_errors=True)
    shutil.rmtree(sub_index, ignore_errors=True)
