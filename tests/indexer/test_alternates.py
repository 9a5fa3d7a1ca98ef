"""indexer.alternates: editors' alternate phrasings, parsed, checked, indexed and updated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from indexer.alternates import (
    MAX_FILE_BYTES,
    MAX_PER_SECTION,
    MAX_PHRASING_CHARS,
    load_alternates,
    parse_alternates,
    unknown_sections,
)
from indexer.publish import SYNONYMS, build, current_generation
from service.search import Engine
from tests.indexer.test_publish import assert_same_as_full_rebuild, documents, served

SHRINK = "goals-of-psychotherapy#what-is-psychotherapy: what does a shrink do\n"


def codes(alternates) -> list[str]:
    return [i.code for i in alternates.issues]


def test_lines_name_a_section_and_a_phrasing_with_comments_and_blank_lines_ignored():
    parsed = parse_alternates("# a comment\n\n" + SHRINK + "  notes#who-sees-them :  who reads   my file \n")
    assert [(p.section, p.text, p.line) for p in parsed.phrasings] == [
        ("goals-of-psychotherapy#what-is-psychotherapy", "what does a shrink do", 3),
        ("notes#who-sees-them", "who reads my file", 4),
    ]
    assert parsed.issues == []


def test_an_anchor_may_be_percent_encoded_or_hold_a_colon():
    parsed = parse_alternates("a#part-1%2F2: first half\nb#step:one: the first step\nc#x:tight\n")
    assert [(p.section, p.text) for p in parsed.phrasings] == [
        ("a#part-1%2F2", "first half"), ("b#step:one", "the first step"), ("c#x", "tight")]
    assert parsed.by_section() == {"a#part-1%2F2": ["first half"], "a#part-1/2": ["first half"],
                                   "b#step:one": ["the first step"], "c#x": ["tight"]}


def test_an_id_holding_a_literal_percent_sequence_is_found_as_written_or_decoded():
    parsed = parse_alternates("w#a%41b: literal\nw#x%2Fy: encoded\n")
    assert unknown_sections(parsed, ["w#a%41b", "w#x/y"]) == []  # as the API shows each id
    assert ["w#x%2Fy" in i.message for i in unknown_sections(parsed, ["w#aAb"])] == [True]  # decoded, a%41b is aAb


def test_a_byte_order_mark_control_characters_and_unicode_line_breaks_do_not_split_or_leak():
    parsed = parse_alternates("\ufeff# saved by Notepad\r\na#b: null\x00byte\x1b[31m red\u2028still one\r\n")
    assert parsed.issues == []
    assert [(p.section, p.text, p.line) for p in parsed.phrasings] == [("a#b", "null byte [31m red still one", 2)]


def test_malformed_lines_are_errors_naming_their_line():
    parsed = parse_alternates("no id here\nslug-only: text\na#b:\n" + "a#c: " + "x" * (MAX_PHRASING_CHARS + 1))
    assert codes(parsed) == ["alternates-syntax"] * 4
    assert [i.message.split(":")[0] for i in parsed.issues] == ["line 1", "line 2", "line 3", "line 4"]
    assert parsed.phrasings == []


def test_a_section_keeps_a_bounded_number_of_phrasings_and_no_repeats():
    lines = "".join(f"a#b: phrasing number {i}\n" for i in range(MAX_PER_SECTION + 2)) + "a#b: Phrasing  NUMBER 0\n"
    parsed = parse_alternates(lines)
    assert len(parsed.by_section()["a#b"]) == MAX_PER_SECTION
    assert codes(parsed) == ["alternates-syntax"] * 3  # the two over the cap and the repeat beyond it


def test_a_repeated_phrasing_is_indexed_once_and_sections_group_by_article():
    parsed = parse_alternates("a#b: Same words\na#b: same  words\na#c: other\nz#y: more\n")
    assert parsed.by_section() == {"a#b": ["Same words"], "a#c": ["other"], "z#y": ["more"]}
    assert parsed.slugs() == {"a": {"a#b": ["Same words"], "a#c": ["other"]}, "z": {"z#y": ["more"]}}


def folder(tmp_path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


def test_a_missing_file_is_empty_and_an_unreadable_one_an_issue(tmp_path):
    assert load_alternates(folder(tmp_path, "none")).phrasings == []
    (folder(tmp_path, "latin1") / "alternates.txt").write_bytes("a#b: caf\xe9\n".encode("latin-1"))
    assert codes(load_alternates(tmp_path / "latin1")) == ["encoding"]
    (folder(tmp_path, "big") / "alternates.txt").write_bytes(b"# x\n" * (MAX_FILE_BYTES // 4 + 1))
    assert codes(load_alternates(tmp_path / "big")) == ["too-large"]
    (folder(tmp_path, "dir") / "alternates.txt").mkdir()
    assert codes(load_alternates(tmp_path / "dir")) == ["not-a-file"]


def test_a_link_out_of_the_corpus_is_refused_and_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root#x: the secret line\n", encoding="utf-8")
    corpus = folder(tmp_path, "corpus")
    (corpus / "alternates.txt").symlink_to(secret)
    parsed = load_alternates(corpus)
    assert codes(parsed) == ["outside-corpus"] and parsed.phrasings == [] and parsed.data is None
    assert "secret line" not in " ".join(i.message for i in parsed.issues)
    (corpus / "alternates.txt").unlink()
    (corpus / "alternates.txt").symlink_to("/proc/self/status")  # reports 0 bytes: capped while read
    assert codes(load_alternates(corpus)) == ["outside-corpus"]
    inside = corpus / "editors" / "phrasings.txt"
    inside.parent.mkdir()
    inside.write_text("a#b: kept\n", encoding="utf-8")
    (corpus / "alternates.txt").unlink()
    (corpus / "alternates.txt").symlink_to(inside)  # a link within the corpus is fine
    assert [p.text for p in load_alternates(corpus).phrasings] == ["kept"]


def test_unknown_section_ids_are_errors():
    parsed = parse_alternates(SHRINK + "nope#x: hello\n")
    issues = unknown_sections(parsed, ["goals-of-psychotherapy#what-is-psychotherapy"])
    assert [(i.level, i.code) for i in issues] == [("error", "unknown-section")]
    assert "line 2" in issues[0].message and "nope#x" in issues[0].message


# --------------------------------------------------------------------------- in a build


def top_ids(config, q: str, n: int = 3) -> list[str]:
    return [r["id"] for r in Engine(config).search(q, limit=n)["results"]]


def test_adding_a_phrasing_and_updating_makes_its_section_the_first_result(config):
    """The issue's done-when: "what does a shrink do" finds nothing in the articles' words."""
    build(config)
    assert top_ids(config, "what does a shrink do") == []
    (Path(config.corpus_dir) / "alternates.txt").write_text(SHRINK, encoding="utf-8")
    report = build(config, mode="update")
    assert report.published and report.rewritten == ["goals-of-psychotherapy.html"]
    assert top_ids(config, "what does a shrink do")[0] == "goals-of-psychotherapy#what-is-psychotherapy"
    answer = Engine(config).answer("what does a shrink do")
    assert answer["answer"]["id"] == "goals-of-psychotherapy#what-is-psychotherapy"


def test_a_phrasing_is_never_shown_as_the_answer_text(config):
    (Path(config.corpus_dir) / "alternates.txt").write_text(SHRINK, encoding="utf-8")
    build(config)
    engine = Engine(config)
    hit = engine.search("what does a shrink do", limit=1)["results"][0]
    assert "shrink" not in json.dumps(hit).lower()
    best = engine.answer("what does a shrink do")["answer"]
    assert "shrink" not in json.dumps(best).lower()


def test_typing_a_phrasing_suggests_its_section_once_by_its_own_question(config):
    (Path(config.corpus_dir) / "alternates.txt").write_text(
        SHRINK + "goals-of-psychotherapy#what-is-psychotherapy: what is a shrink for\n", encoding="utf-8")
    build(config)
    got = Engine(config).suggest("what does a shr", limit=8)["suggestions"]
    assert [(s["id"], s["text"], s["alternate"]) for s in got] == [
        ("goals-of-psychotherapy#what-is-psychotherapy", "What Is Psychotherapy?", "what does a shrink do")]
    ids = [s["id"] for s in Engine(config).suggest("what is", limit=20)["suggestions"]]
    assert len(ids) == len(set(ids))  # the question and its phrasing match: listed once
    plain = [s for s in Engine(config).suggest("what is psychotherapy", limit=3)["suggestions"]]
    assert plain[0]["id"] == "goals-of-psychotherapy#what-is-psychotherapy" and "alternate" not in plain[0]


def test_an_update_after_phrasings_change_equals_a_full_build(config, make_config, tmp_path):
    build(config)
    alternates = Path(config.corpus_dir) / "alternates.txt"
    alternates.write_text(SHRINK + "how-long-does-psychoanalysis-take#how-often-are-sessions: sessions a week\n",
                          encoding="utf-8")
    report = build(config, mode="update")
    assert sorted(report.rewritten) == ["goals-of-psychotherapy.html", "how-long-does-psychoanalysis-take.html"]
    assert_same_as_full_rebuild(config, make_config, tmp_path / "one", report)
    alternates.write_text(SHRINK, encoding="utf-8")  # one removed: only its article changes
    report = build(config, mode="update")
    assert report.rewritten == ["how-long-does-psychoanalysis-take.html"]
    assert documents(served(config.index_dir))[
        "how-long-does-psychoanalysis-take#how-often-are-sessions"]["alternates"] == ""
    assert_same_as_full_rebuild(config, make_config, tmp_path / "two", report)


def test_an_unchanged_phrasings_file_publishes_nothing_new(config):
    (Path(config.corpus_dir) / "alternates.txt").write_text(SHRINK, encoding="utf-8")
    first = build(config)
    again = build(config, mode="update")
    assert not again.published and again.generation == first.generation
    assert (served(config.index_dir) / "alternates.txt").read_text(encoding="utf-8") == SHRINK


def test_a_build_reports_unknown_sections_and_still_indexes_the_known_ones(config):
    (Path(config.corpus_dir) / "alternates.txt").write_text(SHRINK + "nope#x: hello\nbad line\n", encoding="utf-8")
    report = build(config)
    assert report.published
    assert sorted(i.code for i in report.errors) == ["alternates-syntax", "unknown-section"]
    assert current_generation(Path(config.index_dir)) is not None
    assert top_ids(config, "what does a shrink do")[0] == "goals-of-psychotherapy#what-is-psychotherapy"


def test_validate_fails_on_an_unknown_section_and_names_it(config):
    (Path(config.corpus_dir) / "alternates.txt").write_text(SHRINK + "nope#x: hello\n", encoding="utf-8")
    env = {"FAQ_CORPUS_DIR": str(config.corpus_dir), "FAQ_INDEX_DIR": str(config.index_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "indexer.cli", "validate"], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 1
    assert "error: alternates.txt: line 2: no section nope#x in the corpus" in done.stdout
    (Path(config.corpus_dir) / "alternates.txt").write_text(SHRINK, encoding="utf-8")
    ok = subprocess.run([sys.executable, "-m", "indexer.cli", "validate"], capture_output=True, text=True,
                        env=env, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert ok.returncode == 0, ok.stdout


def test_a_build_keeps_the_phrasings_it_parsed_even_if_the_file_is_saved_meanwhile(config, monkeypatch):
    """The file was parsed at one step and copied at another: an edit in between left the
    generation holding a file its documents did not match, and later updates saw no change."""
    import indexer.publish as publish

    alternates = Path(config.corpus_dir) / "alternates.txt"
    alternates.write_text(SHRINK, encoding="utf-8")
    real = publish.write_derived

    def edited_during_the_build(folder, ix):
        alternates.write_text("goals-of-psychotherapy#coping-skills: giraffe two\n", encoding="utf-8")
        return real(folder, ix)

    monkeypatch.setattr(publish, "write_derived", edited_during_the_build)
    build(config)
    monkeypatch.setattr(publish, "write_derived", real)
    assert (served(config.index_dir) / "alternates.txt").read_text(encoding="utf-8") == SHRINK
    report = build(config, mode="update")  # the saved edit is seen as a change
    assert report.published and top_ids(config, "giraffe two")[0] == "goals-of-psychotherapy#coping-skills"
    assert top_ids(config, "what does a shrink do") == []


def test_synonyms_linked_from_outside_the_corpus_are_refused(config, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("root, secret\n", encoding="utf-8")
    synonyms = Path(config.corpus_dir) / SYNONYMS
    synonyms.unlink()
    synonyms.symlink_to(outside)
    report = build(config)
    assert [i.code for i in report.errors] == ["outside-corpus"]
    assert not (served(config.index_dir) / SYNONYMS).exists()

