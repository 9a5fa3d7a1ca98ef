"""``faq-index``: build, update, inspect and lint the search index from the command line.

Exit codes are ``indexer.exitcodes.ExitCode``: 0 success; 1 failed (or, for ``validate``,
problems found); 2 usage error; 3 another build holds the lock; 4 refused by the section-loss
safety check.
"""

from __future__ import annotations

import argparse
import errno
import json
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from indexer.corpus import Issue, LinkMap, resolve_links
from indexer.exitcodes import ExitCode
from indexer.publish import (
    CATALOG,
    BuildError,
    BuildReport,
    build,
    current_generation,
    drop_duplicate_slugs,
    load_generation_info,
    parse_all,
    read_catalog,
    read_corpus,
)
from indexer.settings import load_config


def _progress(label: str):
    def wrap(items, total=None):
        return tqdm(items, desc=label, unit="page", total=total, disable=None, leave=False, file=sys.stderr)

    return wrap


def _print_issues(issues: list[Issue], limit: int = 50) -> None:
    for issue in issues[:limit]:
        print(f"  {issue}", file=sys.stderr)
    if len(issues) > limit:
        print(f"  … and {len(issues) - limit} more", file=sys.stderr)


def _summary(report: BuildReport) -> str:
    counts = (
        f"{report.articles} articles, {report.sections} sections, {report.links} links, "
        f"{len(report.warnings)} warnings, {len(report.errors)} errors, {report.seconds:.2f} s"
    )
    if report.mode == "update":
        counts += (
            f"; added {len(report.added)}, changed {len(report.changed)}, removed {len(report.removed)}, "
            f"rewritten {len(report.rewritten)}"
        )
    return counts


def cmd_build(args, config, mode: str) -> int:
    report = build(config, mode=mode, force=args.force, wait=args.wait, progress=_progress("parsing"))
    _print_issues(report.issues)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    elif not report.published:
        print(f"nothing changed; generation {report.generation} is still served: {_summary(report)}")
    else:
        print(f"published generation {report.generation}: {_summary(report)}")
        if mode == "update":
            for label, items in (("rewritten", report.rewritten), ("removed", report.removed)):
                if items:
                    print(f"  {label}: {', '.join(items)}")
    return ExitCode.OK


def cmd_stats(args, config) -> int:
    index_dir = Path(config.index_dir)
    current = current_generation(index_dir)
    if current is None:
        print(f"no generation has been published in {index_dir}; run `faq-index build`", file=sys.stderr)
        return ExitCode.FAILED
    info = load_generation_info(current[1])
    catalog = read_catalog(current[1] / CATALOG)
    size = sum(p.stat().st_size for p in current[1].iterdir() if p.is_file())
    stats = {
        "generation": current[0],
        "created": info.get("created"),
        "articles": len(catalog),
        "sections": sum(r["sections"] for r in catalog.values()),
        "links": Counter(lk["kind"] for r in catalog.values() for lk in r["links"]),
        "size_bytes": size,
        "per_article": {r["slug"]: r["sections"] for r in catalog.values()},
    }
    if args.json:
        print(json.dumps(stats, indent=2))
        return ExitCode.OK
    print(f"generation {stats['generation']} (created {stats['created']}), {size / 1e6:.2f} MB")
    links = stats["links"]
    print(
        f"{stats['articles']} articles, {stats['sections']} sections; links: "
        f"{links.get('internal', 0)} internal, {links.get('external', 0)} external, {links.get('broken', 0)} broken"
    )
    for slug, n in sorted(stats["per_article"].items()):
        print(f"  {slug}: {n} sections")
    return ExitCode.OK


def validate_corpus(config) -> tuple[list[Issue], int]:
    """Lint every file without writing anything: the reading, parsing and slug rules of a build."""
    report = BuildReport(mode="validate")
    datas = read_corpus(Path(config.corpus_dir), report, config.max_file_bytes)
    parsed = parse_all(sorted(datas), datas, config, report, progress=None)
    drop_duplicate_slugs(parsed, {}, report)
    issues, kept = report.issues, list(parsed.values())
    link_map = LinkMap([(a.slug, a.url, a.canonical, a.source) for a in kept], config.site_url)
    for article in kept:
        resolve_links(article, link_map)
        issues += [i for i in article.issues if i.code == "broken-link"]
        anchors = Counter(s.anchor for s in article.sections)
        for anchor, n in anchors.items():
            if n > 1:
                issues.append(Issue(article.source, f"anchor #{anchor} is used by {n} sections", "error", "duplicate-anchor"))
    return issues, len(kept)


# Problems that make `validate` fail: what an editor must fix before publishing.
LINT_FAILURES = {"no-title", "duplicate-slug", "duplicate-anchor", "broken-link", "not-html", "empty",
                 "binary", "too-large", "unreadable", "encoding"}


def cmd_validate(args, config) -> int:
    started = time.perf_counter()
    issues, n = validate_corpus(config)
    failures = [i for i in issues if i.level == "error" or i.code in LINT_FAILURES or "no text of its own" in i.message]
    if args.json:
        print(json.dumps({"articles": n, "issues": [i.__dict__ for i in issues], "failures": len(failures)}, indent=2))
    else:
        for issue in issues:
            print(f"  {issue}")
        print(f"{n} articles checked in {time.perf_counter() - started:.2f} s: "
              f"{len(failures)} problem(s) to fix, {len(issues) - len(failures)} other warning(s)")
    return ExitCode.FAILED if failures else ExitCode.OK


_WRITE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def describe_os_error(exc: OSError) -> str:
    """One line for an I/O failure: what could not be done, to which path, and why."""
    what = "cannot write" if exc.errno in _WRITE_ERRORS else "cannot access"
    cause = exc.strerror or str(exc)
    if exc.filename is None:
        return f"{what} a file: {cause}"
    target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
    return f"{what} {target}: {cause}"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faq-index", description=__doc__.splitlines()[0],
                                     epilog="Exit codes: 0 ok, 1 failed/problems found, 2 usage, "
                                            "3 another build is running, 4 refused by the section-loss check.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", type=Path, help="corpus folder (default: $FAQ_CORPUS_DIR or corpus/)")
    common.add_argument("--index", type=Path, help="index folder (default: $FAQ_INDEX_DIR or var/index)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("build", "full rebuild into a new generation, then publish it"),
                        ("update", "rewrite only added, changed and removed articles, then publish")):
        p = sub.add_parser(name, parents=[common], help=help_)
        p.add_argument("--force", action="store_true", help="publish even if many sections were lost")
        p.add_argument("--wait", action="store_true", help="wait for a running build instead of failing")
    sub.add_parser("stats", parents=[common], help="describe the served generation")
    sub.add_parser("validate", parents=[common], help="lint the corpus without writing anything")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    overrides = {}
    if args.corpus:
        overrides["corpus_dir"] = args.corpus
    if args.index:
        overrides["index_dir"] = args.index
    try:
        config = load_config(**overrides)
    except ValueError as exc:
        print(f"faq-index: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        if args.command in ("build", "update"):
            return cmd_build(args, config, "full" if args.command == "build" else "update")
        if args.command == "stats":
            return cmd_stats(args, config)
        return cmd_validate(args, config)
    except BuildError as exc:
        print(f"faq-index: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"faq-index: {describe_os_error(exc)}", file=sys.stderr)
        return ExitCode.FAILED
    except sqlite3.Error as exc:
        print(f"faq-index: cannot use the index catalog in {config.index_dir}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print("faq-index: interrupted; the served generation is unchanged", file=sys.stderr)
        return ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
