"""indexer.cli: the ``faq-index`` command and its exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import indexer.cli as cli
import indexer.publish as publish
from indexer.cli import main
from indexer.exitcodes import ExitCode
from indexer.publish import build_lock, current_generation

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("clean_env")


def run(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def paths(corpus: Path, index: Path) -> tuple[str, ...]:
    return ("--corpus", str(corpus), "--index", str(index))


# --------------------------------------------------------------------------- build / update / stats


def test_build_exits_0_and_prints_a_summary(capsys, corpus_copy, tmp_path):
    code, out, _ = run(capsys, "build", *paths(corpus_copy, tmp_path / "index"))
    assert code == ExitCode.OK
    assert re.match(r"published generation 000001-\d{8}T\d{6}Z: 4 articles, 46 sections, 9 links, "
                    r"\d+ warnings, 0 errors, [\d.]+ s$", out.strip())
    assert current_generation(tmp_path / "index") is not None


def test_build_json_prints_the_report(capsys, small_corpus, tmp_path):
    code, out, _ = run(capsys, "build", *paths(small_corpus(), tmp_path / "index"), "--json")
    assert code == ExitCode.OK
    report = json.loads(out)
    assert report["published"] is True and report["articles"] == 3 and report["errors"] == 0


def test_update_prints_what_it_rewrote_and_says_when_nothing_changed(capsys, small_corpus, tmp_path):
    corpus, index = small_corpus(), tmp_path / "index"
    run(capsys, "build", *paths(corpus, index))
    code, out, _ = run(capsys, "update", *paths(corpus, index))
    assert code == ExitCode.OK
    assert out.startswith("nothing changed; generation 000001-") and "is still served" in out
    page = corpus / "grief.html"
    page.write_text(page.read_text().replace("everyday therapy", "daily therapy"))
    code, out, _ = run(capsys, "update", *paths(corpus, index))
    assert code == ExitCode.OK
    assert out.startswith("published generation 000002-")
    assert "changed 1, removed 0, rewritten 1" in out
    assert "  rewritten: grief.html" in out


def test_update_rehash_reads_every_page_again(capsys, small_corpus, tmp_path, monkeypatch):
    corpus, index = small_corpus(), tmp_path / "index"
    run(capsys, "build", *paths(corpus, index))
    seen = []
    real = publish.build
    monkeypatch.setattr(cli, "build", lambda *a, **k: (seen.append(k.get("rehash")), real(*a, **k))[1])
    code, out, _ = run(capsys, "update", "--rehash", *paths(corpus, index))
    assert code == ExitCode.OK and out.startswith("nothing changed;")
    run(capsys, "update", *paths(corpus, index))
    assert seen == [True, False]


def test_the_cli_loads_neither_the_crawler_nor_tqdm_to_update():
    # Every update starts a process: what it imports (httpx for the crawler) and never runs is
    # paid each time.
    code = ("import sys, indexer.cli; "
            "print(sorted(m for m in ('httpx', 'tqdm', 'indexer.crawl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_stats_before_any_build_exits_1_with_a_clear_message(capsys, small_corpus, tmp_path):
    code, out, err = run(capsys, "stats", *paths(small_corpus(), tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert out == ""
    assert f"no generation has been published in {tmp_path / 'index'}; run `faq-index build`" in err


def test_stats_describes_the_served_generation(capsys, corpus_copy, tmp_path):
    index = tmp_path / "index"
    run(capsys, "build", *paths(corpus_copy, index))
    code, out, _ = run(capsys, "stats", *paths(corpus_copy, index))
    assert code == ExitCode.OK
    assert "4 articles, 46 sections; links: 9 internal, 0 external, 0 broken" in out
    assert "  goals-of-psychotherapy: 20 sections" in out
    code, out, _ = run(capsys, "stats", *paths(corpus_copy, index), "--json")
    stats = json.loads(out)
    assert stats["per_article"]["how-long-does-psychoanalysis-take"] == 8
    assert stats["links"] == {"internal": 9}


def test_build_reads_folders_from_the_environment(capsys, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("FAQ_CORPUS_DIR", str(small_corpus()))
    monkeypatch.setenv("FAQ_INDEX_DIR", str(tmp_path / "env-index"))
    code, _, _ = run(capsys, "build")
    assert code == ExitCode.OK
    assert current_generation(tmp_path / "env-index") is not None


def test_a_bad_setting_is_a_usage_error_naming_the_variable(capsys, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("FAQ_KEEP_GENERATIONS", "lots")
    code, _, err = run(capsys, "build", *paths(small_corpus(), tmp_path / "index"))
    assert code == ExitCode.USAGE
    assert "FAQ_KEEP_GENERATIONS='lots' is not valid" in err


def test_missing_command_is_an_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == ExitCode.USAGE


def test_empty_corpus_exits_1(capsys, tmp_path):
    (tmp_path / "corpus").mkdir()
    code, _, err = run(capsys, "build", *paths(tmp_path / "corpus", tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "no .html or .htm file" in err


def test_build_while_another_holds_the_lock_exits_3(capsys, small_corpus, tmp_path):
    index = tmp_path / "index"
    with build_lock(index):
        code, _, err = run(capsys, "build", *paths(small_corpus(), index))
    assert code == ExitCode.LOCKED
    assert "another build is running" in err and "--wait" in err
    assert current_generation(index) is None


def test_build_refused_by_the_section_loss_check_exits_4_and_force_publishes(capsys, corpus_copy, tmp_path):
    index = tmp_path / "index"
    run(capsys, "build", *paths(corpus_copy, index))
    served = current_generation(index)[0]
    (corpus_copy / "goals-of-psychotherapy.html").unlink()
    code, _, err = run(capsys, "build", *paths(corpus_copy, index))
    assert code == ExitCode.REFUSED
    assert "rerun with --force" in err
    assert current_generation(index)[0] == served
    code, out, _ = run(capsys, "update", *paths(corpus_copy, index), "--force")
    assert code == ExitCode.OK and "26 sections" in out


# --------------------------------------------------------------------------- validate


def test_validate_passes_on_the_real_corpus_and_writes_nothing(capsys, real_corpus, tmp_path):
    code, out, _ = run(capsys, "validate", *paths(real_corpus, tmp_path / "index"))
    assert code == ExitCode.OK
    assert re.search(r"^4 articles checked in [\d.]+ s: 0 problem\(s\) to fix", out, re.M)
    assert not (tmp_path / "index").exists()


def test_validate_passes_on_a_clean_small_corpus(capsys, small_corpus, tmp_path):
    code, _, _ = run(capsys, "validate", *paths(small_corpus(), tmp_path / "index"))
    assert code == ExitCode.OK


def test_validate_fails_on_a_broken_internal_link(capsys, small_corpus, write_page, tmp_path):
    corpus = small_corpus()
    write_page(corpus, "links.html", "Links Page",
               '<h2 id="more">More</h2><p>See <a href="/grief/">grief</a> and <a href="/no-such-page/">a page '
               "that does not exist</a>, both of which an editor linked in good faith last spring.</p>")
    code, out, _ = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "links.html: internal link '/no-such-page/'" in out
    assert "1 problem(s) to fix" in out


def test_validate_fails_on_a_duplicate_slug(capsys, small_corpus, write_page, tmp_path):
    corpus = small_corpus()
    write_page(corpus, "sleep-copy.html", "Sleep Again",
               '<h2 id="x">Copy</h2><p>A second page whose canonical URL claims the slug of the sleep page, '
               "which happens when an editor duplicates a post and forgets to change it.</p>",
               canonical="https://mypsychotherapy.example/sleep/")
    code, out, _ = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "duplicate slug 'sleep'" in out


def test_validate_fails_on_a_file_without_a_title(capsys, small_corpus, tmp_path):
    corpus = small_corpus()
    shutil.copy(FIXTURES / "no-title.html", corpus / "no-title.html")
    code, out, _ = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "no-title.html: no title" in out


def test_validate_json_lists_the_issues(capsys, small_corpus, tmp_path):
    corpus = small_corpus()
    (corpus / "empty.html").write_bytes(b"")
    code, out, _ = run(capsys, "validate", *paths(corpus, tmp_path / "index"), "--json")
    assert code == ExitCode.FAILED
    result = json.loads(out)
    assert result["articles"] == 3 and result["failures"] == 1
    assert [(i["source"], i["code"]) for i in result["issues"]] == [("empty.html", "empty")]


# --------------------------------------------------------------------------- validate: labels, notes, empty corpus


def test_validate_labels_each_line_as_the_summary_counts_it(capsys, small_corpus, write_page, tmp_path):
    corpus = small_corpus()
    write_page(corpus, "links.html", "Links Page",
               '<h2 id="more">More</h2><p>See <a href="/no-such-page/">a page that does not exist</a> and '
               '<a href="/contact/">contact us</a>, both linked by an editor in good faith last spring.</p>'
               "<h2>No Id Here</h2><p>A heading without an id gets a generated anchor and a warning.</p>")
    code, out, _ = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "  error: links.html: internal link '/no-such-page/'" in out  # a warning-level issue that fails
    assert re.search(r"^  warning: links\.html: 1 heading\(s\) have no id.*'No Id Here'", out, re.M)
    assert "  info: links.html: link '/contact/' ('contact us') goes to a page of the site that is not an article" in out
    assert "1 problem(s) to fix, 1 other warning(s), 1 note(s)" in out


def test_validate_passes_when_the_only_unknown_link_is_a_non_article_page(capsys, small_corpus, write_page, tmp_path):
    corpus = small_corpus()
    write_page(corpus, "links.html", "Links Page",
               '<h2 id="more">More</h2><p>Questions? <a href="/contact/">Contact us</a> or read the '
               '<a href="/privacy-policy/">privacy policy</a> and <a href="/files/intake.pdf">intake form</a>.</p>')
    code, out, _ = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.OK
    assert "0 problem(s) to fix, 0 other warning(s), 3 note(s)" in out


def test_validate_exits_1_on_a_corpus_without_articles(capsys, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    code, _, err = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "no .html or .htm file" in err
    (corpus / "blank.html").write_text("<html><body><h1>T</h1></body></html>", encoding="utf-8")
    code, _, err = run(capsys, "validate", *paths(corpus, tmp_path / "index"))
    assert code == ExitCode.FAILED
    assert "no article could be read" in err
