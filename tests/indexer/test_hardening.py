"""Hostile or broken input reaching a build: long words, odd anchors, huge files, symlinks,
missing corpora and I/O failures. Each one is reported, none publishes what it should not."""

from __future__ import annotations

import errno
import os
import tracemalloc
from pathlib import Path

import pytest
from whoosh import index as whoosh_index

import indexer.publish as publish
from indexer.cli import main
from indexer.exitcodes import ExitCode
from indexer.publish import BuildError, BuildReport, build, current_generation, read_corpus

pytestmark = pytest.mark.usefixtures("clean_env")


def documents(index_dir: Path) -> dict[str, dict]:
    current = current_generation(Path(index_dir))
    assert current is not None
    with whoosh_index.open_dir(str(current[1])).searcher() as searcher:
        return {doc["id"]: doc for doc in searcher.all_stored_fields()}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- analysis, anchors


def test_a_page_with_a_sixty_thousand_letter_word_builds_and_its_other_words_are_searchable(
        small_corpus, write_page, make_config):
    corpus = small_corpus()
    write_page(corpus, "long.html", "Long Word Page",
               f"<h2 id='q'>Why so long?</h2><p>Insomnia help {'x' * 60_000} and more insomnia.</p>")
    report = build(make_config(corpus))
    assert report.published
    with whoosh_index.open_dir(str(current_generation(Path(make_config(corpus).index_dir))[1])).searcher() as s:
        terms = [t.decode() for t in s.reader().lexicon("answer")]
        assert "insomnia" in terms
        assert max(map(len, terms)) <= 60


def test_heading_ids_are_percent_encoded_in_urls_and_raw_in_ids(small_corpus, write_page, make_config):
    corpus = small_corpus()
    write_page(corpus, "odd.html", "Odd Anchors Page",
               '<h2 id="&quot;&gt;&lt;script&gt;x">First?</h2><p>One answer here.</p>'
               '<h2 id="part-1/2">Second?</h2><p>Two answer here.</p>'
               '<h2 id="caf\u00e9 menu">Third?</h2><p>Three answer here.</p>')
    config = make_config(corpus)
    build(config)
    docs = documents(config.index_dir)
    first = docs['odd#"><script>x']
    assert first["meta"]["url"] == "/odd/#%22%3E%3Cscript%3Ex"
    assert first["meta"]["anchor"] == '"><script>x'
    assert docs["odd#part-1/2"]["meta"]["url"] == "/odd/#part-1%2F2"
    assert docs["odd#caf\u00e9 menu"]["meta"]["url"] == "/odd/#caf%C3%A9%20menu"


# --------------------------------------------------------------------------- files


def test_a_file_over_the_cap_is_rejected_without_being_read(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.html").write_text("<p>ok</p>")
    with open(corpus / "huge.html", "wb") as fh:
        fh.truncate(100_000_000)  # sparse: costs no disk
    report = BuildReport()
    tracemalloc.start()
    try:
        datas = read_corpus(corpus, report, max_bytes=5_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sorted(datas) == ["ok.html"]
    assert peak < 10_000_000
    assert [(i.source, i.code, i.level) for i in report.issues] == [("huge.html", "too-large", "error")]


def test_a_symlink_out_of_the_corpus_is_neither_built_nor_validated(small_corpus, make_config, tmp_path, capsys):
    corpus = small_corpus()
    secret = tmp_path / "secret.html"
    secret.write_text("<html><head><title>Secret Page Title</title></head><body><article><h2 id='s'>Secret?</h2>"
                      "<p>Private text never to be published anywhere.</p></article></body></html>")
    (corpus / "x.html").symlink_to(secret)
    config = make_config(corpus)
    report = build(config)
    assert not any(doc_id.startswith(("x#", "secret#")) for doc_id in documents(config.index_dir))
    assert any(i.source == "x.html" and i.code == "outside-corpus" for i in report.issues)
    code, out, _ = run(capsys, "validate", "--corpus", corpus, "--index", tmp_path / "index2")
    assert "x.html" in out and "outside the corpus folder" in out
    code, out, _ = run(capsys, "update", "--corpus", corpus, "--index", config.index_dir)
    assert code == ExitCode.OK


# --------------------------------------------------------------------------- missing or empty corpus


@pytest.mark.parametrize("command", ["validate", "build", "update"])
def test_a_missing_corpus_folder_exits_2_with_one_line_naming_it(command, tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    code, _, err = run(capsys, command, "--corpus", missing, "--index", tmp_path / "index")
    assert code == ExitCode.USAGE
    line = one_line(err)
    assert line.startswith("faq-index: ") and str(missing) in line and "does not exist" in line
    assert current_generation(tmp_path / "index") is None


@pytest.mark.parametrize("command", ["validate", "build", "update"])
def test_a_corpus_without_html_files_fails_and_publishes_nothing(command, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "README.md").write_text("# nothing\n")
    (corpus / "notes.txt").write_text("nothing\n")
    code, _, err = run(capsys, command, "--corpus", corpus, "--index", tmp_path / "index")
    assert code == ExitCode.FAILED
    assert "no .html" in one_line(err) and str(corpus) in err
    assert current_generation(tmp_path / "index") is None


def test_a_corpus_path_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "corpus.html"
    path.write_text("<p>x</p>")
    code, _, err = run(capsys, "validate", "--corpus", path)
    assert code == ExitCode.USAGE and "is not a folder" in one_line(err)


def test_build_of_a_missing_corpus_raises_a_usage_build_error(tmp_path, make_config):
    with pytest.raises(BuildError, match="does not exist") as info:
        build(make_config(tmp_path / "nowhere"))
    assert info.value.exit_code == ExitCode.USAGE


# --------------------------------------------------------------------------- I/O errors


def test_an_index_path_under_a_regular_file_is_one_line_not_a_traceback(small_corpus, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "build", "--corpus", small_corpus(), "--index", blocker / "index")
    assert code in (ExitCode.FAILED, ExitCode.USAGE)
    line = one_line(err)
    assert line.startswith("faq-index: ") and str(blocker) in line


def test_an_index_path_under_a_file_in_build_itself_is_a_build_error(small_corpus, make_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = make_config(small_corpus()).replace(index_dir=blocker / "index")
    with pytest.raises(BuildError, match=str(blocker)):
        build(config)


def test_a_corrupt_catalog_is_one_line_naming_it(small_corpus, tmp_path, capsys):
    corpus, index = small_corpus(), tmp_path / "index"
    assert run(capsys, "build", "--corpus", corpus, "--index", index)[0] == ExitCode.OK
    catalog = current_generation(index)[1] / publish.CATALOG
    catalog.write_bytes(b"this is not a database" * 100)
    code, _, err = run(capsys, "stats", "--corpus", corpus, "--index", index)
    assert code == ExitCode.FAILED
    line = one_line(err)
    assert line.startswith("faq-index: ") and str(catalog) in line


def test_update_over_a_corrupt_catalog_builds_in_full_and_says_why_in_one_line(small_corpus, tmp_path, capsys):
    corpus, index = small_corpus(), tmp_path / "index"
    assert run(capsys, "build", "--corpus", corpus, "--index", index)[0] == ExitCode.OK
    damaged = current_generation(index)[1]
    (damaged / publish.CATALOG).write_bytes(b"this is not a database" * 100)
    code, out, err = run(capsys, "update", "--corpus", corpus, "--index", index)
    assert code == ExitCode.OK and out.startswith("published generation ")
    line = one_line(err)
    assert "warning: " in line and damaged.name in line and publish.CATALOG in line and "built in full" in line


def test_a_full_disk_is_one_line_naming_the_path(small_corpus, tmp_path, capsys, monkeypatch):
    def full(tmp, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "catalog.sqlite"))

    monkeypatch.setattr(publish, "_build_into", full)
    code, _, err = run(capsys, "build", "--corpus", small_corpus(), "--index", tmp_path / "index")
    assert code == ExitCode.FAILED
    line = one_line(err)
    assert "No space left on device" in line and "catalog.sqlite" in line
    assert line.startswith("faq-index: cannot write ")


def test_a_settings_error_from_the_environment_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAQ_MAX_SECTION_LOSS", "nan")
    code, _, err = run(capsys, "validate", "--corpus", tmp_path)
    assert code == ExitCode.USAGE and "FAQ_MAX_SECTION_LOSS" in one_line(err)


def test_max_sections_per_article_reaches_the_build(small_corpus, write_page, make_config):
    corpus = small_corpus()
    write_page(corpus, "many.html", "Many Questions Page",
               "".join(f"<h2 id='q{i}'>Question {i}?</h2><p>Answer {i}.</p>" for i in range(6)))
    config = make_config(corpus, max_sections_per_article=3)
    report = build(config)
    assert sorted(d for d in documents(config.index_dir) if d.startswith("many#")) == ["many#q0", "many#q1", "many#q2"]
    assert any(i.code == "too-many-sections" for i in report.issues)
