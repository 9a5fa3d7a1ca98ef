"""``faq-index``: build, update, inspect and lint the search index from the command line.

Exit codes are ``indexer.exitcodes.ExitCode``: 0 success; 1 failed (or, for ``validate``,
problems found; for ``verify``, a damaged or unverifiable generation); 2 usage error; 3 another build holds the lock; 4 refused by the section-loss
safety check.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

from indexer.alternates import load_alternates, read_side_file, unknown_sections
from indexer.corpus import Issue, LinkMap, resolve_links, site_link_notes
from indexer.exitcodes import ExitCode
from indexer.manifest import MANIFEST, verify_folder
from indexer.publish import (
    CATALOG,
    MAX_SYNONYMS_BYTES,
    SYNONYMS,
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
from indexer.report import render_report
from indexer.settings import load_config
from indexer.ship import ship_to, source_generation


def _progress(label: str):
    """A progress bar on a terminal. tqdm, like the crawler (httpx, lxml), is imported only
    where it runs: an update publishing one article should not spend a fifth of a second
    loading what it never uses."""

    def wrap(items, total=None):
        if not sys.stderr.isatty():  # what tqdm's disable=None decides, without importing it
            return items
        from tqdm import tqdm

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
    report = build(config, mode=mode, force=args.force, wait=args.wait, progress=_progress("parsing"),
                   rehash=getattr(args, "rehash", False))
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
    """Lint every file without writing anything: the reading, parsing and slug rules of a
    build, and ``alternates.txt``'s lines against the sections found."""
    report = BuildReport(mode="validate")
    datas = read_corpus(Path(config.corpus_dir), report, config.max_file_bytes)
    parsed = parse_all(sorted(datas), datas, config, report, progress=None)
    drop_duplicate_slugs(parsed, {}, report)
    issues, kept = report.issues, list(parsed.values())
    link_map = LinkMap([(a.slug, a.url, a.canonical, a.source) for a in kept], config.site_url)
    for article in kept:
        resolve_links(article, link_map)
        issues += [i for i in article.issues if i.code == "broken-link"] + site_link_notes(article)
        anchors = Counter(s.anchor for s in article.sections)
        for anchor, n in anchors.items():
            if n > 1:
                issues.append(Issue(article.source, f"anchor #{anchor} is used by {n} sections", "error", "duplicate-anchor"))
    alternates = load_alternates(Path(config.corpus_dir))
    issues += alternates.issues + read_side_file(Path(config.corpus_dir), SYNONYMS, MAX_SYNONYMS_BYTES)[1]
    issues += unknown_sections(alternates, (f"{a.slug}#{s.anchor}" for a in kept for s in a.sections))
    return issues, len(kept)


# Problems that make `validate` fail: what an editor must fix before publishing.
LINT_FAILURES = {"no-title", "duplicate-slug", "duplicate-anchor", "broken-link", "not-html", "empty",
                 "binary", "too-large", "unreadable", "encoding"}


def _lint_label(issue: Issue) -> str:
    """How ``validate`` counts an issue: ``error`` (a problem to fix), ``warning`` or ``info``."""
    if issue.level == "info":
        return "info"
    if issue.level == "error" or issue.code in LINT_FAILURES or "no text of its own" in issue.message:
        return "error"
    return "warning"


def cmd_validate(args, config) -> int:
    started = time.perf_counter()
    issues, n = validate_corpus(config)
    labels = [_lint_label(i) for i in issues]
    failures = labels.count("error")
    if args.json:
        print(json.dumps({"articles": n, "issues": [{**i.__dict__, "level": label} for i, label in zip(issues, labels, strict=True)],
                          "failures": failures}, indent=2))
    else:
        for issue, label in zip(issues, labels, strict=True):
            print(f"  {label}: {issue.source}: {issue.message}")
        print(f"{n} articles checked in {time.perf_counter() - started:.2f} s: "
              f"{failures} problem(s) to fix, {labels.count('warning')} other warning(s), {labels.count('info')} note(s)")
    if n == 0:
        print(f"faq-index: no article could be read from {config.corpus_dir}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.FAILED if failures else ExitCode.OK


def cmd_crawl(args, config) -> int:
    """Mirror the site into the corpus folder; with ``--update``, publish it too."""
    from tqdm import tqdm

    from indexer.crawl import check_start_url, crawl

    problem = check_start_url(args.url)
    if problem:
        print(f"faq-index: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    with tqdm(desc="crawling", unit="page", disable=None, leave=False, file=sys.stderr) as bar:
        report = crawl(args.url, Path(config.corpus_dir), config, max_pages=args.max_pages,
                       max_depth=args.max_depth, progress=lambda: bar.update(1))
    for line in report.problems[:50]:
        print(f"  {line}", file=sys.stderr)
    if args.json and not args.update:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
    if not (report.fetched or report.not_modified):
        return ExitCode.FAILED  # nothing of the site could be read: there is nothing to publish
    return cmd_build(args, config, "update") if args.update else ExitCode.OK


def cmd_ship(args, config) -> int:
    """Copy the served (or named) generation to each DEST index folder, its pointer switched last."""
    source = source_generation(Path(config.index_dir), args.generation)
    worst, results = ExitCode.OK, []
    for dest in args.dest:
        try:
            result = ship_to(source, dest, config.keep_generations)
        except (BuildError, OSError) as exc:
            message = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            print(f"faq-index: ship to {dest}: {message}", file=sys.stderr)
            worst = worst or getattr(exc, "exit_code", ExitCode.FAILED)
            results.append({"destination": str(dest), "error": message})
            continue
        results.append(result.__dict__)
        if not args.json:
            done = "already served there" if result.already_served else "now served there"
            print(f"shipped {result.generation} to {dest} ({result.copied_bytes / 1e6:.2f} MB copied), {done}")
    if args.json:
        print(json.dumps({"generation": source[0], "destinations": results}, indent=2))
    return worst


def cmd_verify(args, config) -> int:
    """Check the served (or named) generation's files against its manifest: sizes and SHA-256.
    One line per damaged file; exit 1 when any is damaged or there is no manifest to check."""
    name, folder = source_generation(Path(config.index_dir), args.generation)
    damage = verify_folder(folder)
    files = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    if args.json:
        print(json.dumps({"generation": name, "intact": None if damage is None else not damage,
                          "files": len(files), "damaged": [d.__dict__ for d in damage or []]}, indent=2))
    elif damage is None:
        print(f"faq-index: generation {name} has no {MANIFEST} (built before manifests), so it cannot be "
              "verified; `faq-index build` publishes one that can", file=sys.stderr)
    elif damage:
        for d in damage:
            print(f"damaged: {name}/{d.file}: {d.problem}")
        print(f"faq-index: generation {name} is damaged ({len(damage)} of {len(files)} files); "
              "run `faq-index build` to publish an intact one", file=sys.stderr)
    else:
        size = sum((folder / f).stat().st_size for f in files)
        print(f"generation {name} is intact: {len(files)} files, {size / 1e6:.2f} MB match {MANIFEST}")
    return ExitCode.OK if damage == [] else ExitCode.FAILED


def cmd_report(args, config) -> int:
    """Search analytics for editors. The service's modules are imported here only: every other
    command runs without them."""
    from service.analytics import Analytics
    from service.search import Engine

    report = Analytics(config).report(Engine(config), days=args.days, limit=args.limit)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else render_report(report))
    return ExitCode.OK


def _count(low: int, high: int):
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}")
        return int(text)
    return parse


class _TaggedStream:
    """Writes through to ``stream`` with ``[request <id>] `` at the start of every line, so a
    reindex job's output names the HTTP request that started it (``FAQ_REQUEST_ID``)."""

    def __init__(self, stream, request_id: str):
        self.stream, self.tag, self.at_line_start = stream, f"[request {request_id}] ", True

    def write(self, text: str) -> int:
        for part in text.splitlines(keepends=True):
            self.stream.write(self.tag + part if self.at_line_start else part)
            self.at_line_start = part.endswith("\n")
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


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
        if name == "update":
            p.add_argument("--rehash", action="store_true",
                           help="read every page and hash every served file, trusting no recorded file stat")
    sub.add_parser("stats", parents=[common], help="describe the served generation")
    sub.add_parser("validate", parents=[common], help="lint the corpus without writing anything")
    p = sub.add_parser("crawl", parents=[common], help="mirror the live site (a start page or a sitemap) into the corpus")
    p.add_argument("url", help="a start page (same-origin links are followed) or a sitemap.xml[.gz]")
    p.add_argument("--max-pages", type=_count(1, 1_000_000), help="pages to request at most (default: $FAQ_CRAWL_MAX_PAGES)")
    p.add_argument("--max-depth", type=_count(0, 100), help="link hops from the start page (default: $FAQ_CRAWL_MAX_DEPTH)")
    p.add_argument("--update", action="store_true", help="then publish the changes (as `faq-index update`)")
    p.add_argument("--force", action="store_true", help="with --update: publish even if many sections were lost")
    p.add_argument("--wait", action="store_true", help="with --update: wait for a running build instead of failing")
    p = sub.add_parser("ship", parents=[common], help="copy the served generation to replicas' index folders")
    p.add_argument("dest", nargs="+", type=Path, metavar="DEST", help="a replica's index folder")
    p.add_argument("--generation", help="ship this generation instead of the served one")
    p = sub.add_parser("verify", parents=[common], help="check the served generation's files against its manifest")
    p.add_argument("--generation", help="check this generation instead of the served one")
    p = sub.add_parser("report", parents=[common], help="search analytics: top, zero-result and unanswered queries")
    p.add_argument("--days", type=_count(1, 3650), default=30, help="how many UTC days back, today included (default 30)")
    p.add_argument("--limit", type=_count(1, 1000), default=20, help="queries per list (default 20)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    request_id = os.environ.get("FAQ_REQUEST_ID", "")
    if re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id) and not isinstance(sys.stderr, _TaggedStream):
        sys.stderr = _TaggedStream(sys.stderr, request_id)
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
        if args.command == "crawl":
            return cmd_crawl(args, config)
        if args.command == "ship":
            return cmd_ship(args, config)
        if args.command == "report":
            return cmd_report(args, config)
        if args.command == "verify":
            return cmd_verify(args, config)
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
