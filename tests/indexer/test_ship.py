"""Shipping a generation to replicas' index folders (``indexer.ship``, ``faq-index ship``): the
copy is complete and identical, the pointer moves last, a failed copy leaves nothing visible,
and the destination's lock and pruning rules hold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from indexer import ship as ship_module
from indexer.cli import main
from indexer.exitcodes import ExitCode
from indexer.manifest import MANIFEST
from indexer.publish import CURRENT, GENERATIONS, BuildLocked, build, build_lock, current_generation
from indexer.ship import ShipError, ship_to, source_generation

pytestmark = pytest.mark.usefixtures("clean_env")


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def builder(small_corpus, make_config, tmp_path):
    """A builder index folder with one published generation of a small corpus."""
    corpus = small_corpus()
    config = make_config(corpus, tmp_path / "builder")
    build(config)
    return config


def test_ship_copies_the_served_generation_byte_for_byte_and_switches_the_pointer(builder, tmp_path):
    source = source_generation(builder.index_dir)
    dest = tmp_path / "replica"
    result = ship_to(source, dest, keep=3)

    assert current_generation(dest) == (source[0], dest / GENERATIONS / source[0])
    assert files_of(dest / GENERATIONS / source[0]) == files_of(source[1])
    assert result.copied_bytes == sum(p.stat().st_size for p in source[1].iterdir())
    assert not result.already_served
    assert not list((dest / GENERATIONS).glob(".tmp-*"))


def test_shipping_the_same_generation_again_copies_nothing(builder, tmp_path):
    source = source_generation(builder.index_dir)
    ship_to(source, tmp_path / "replica", keep=3)
    again = ship_to(source, tmp_path / "replica", keep=3)
    assert again.copied_bytes == 0 and again.already_served


def test_a_copy_that_fails_halfway_leaves_the_old_generation_served_and_no_new_folder(
    builder, small_corpus, tmp_path, monkeypatch
):
    first = source_generation(builder.index_dir)
    dest = tmp_path / "replica"
    ship_to(first, dest, keep=3)
    pointer_before = (dest / CURRENT).read_bytes()

    (builder.corpus_dir / "grief.html").unlink()
    second = build(builder, force=True).generation
    copied = []
    real_copy = ship_module.copy_file

    def copy_then_fail(src, dst, sha256=None):
        if copied:
            raise OSError(28, "No space left on device", str(dst))
        copied.append(src.name)
        return real_copy(src, dst, sha256)

    monkeypatch.setattr(ship_module, "copy_file", copy_then_fail)
    with pytest.raises(OSError):
        ship_to(source_generation(builder.index_dir), dest, keep=3)

    assert (dest / CURRENT).read_bytes() == pointer_before
    assert current_generation(dest)[0] == first[0]
    assert sorted(p.name for p in (dest / GENERATIONS).iterdir()) == [first[0]]  # no second, no .tmp
    assert second != first[0]


def test_the_pointer_is_switched_only_after_the_folder_has_its_final_name(builder, tmp_path, monkeypatch):
    dest = tmp_path / "replica"
    seen = []
    real_publish = ship_module.publish_pointer

    def publish_and_look(index_dir, name):
        seen.append(sorted(p.name for p in (index_dir / GENERATIONS).iterdir()))
        real_publish(index_dir, name)

    monkeypatch.setattr(ship_module, "publish_pointer", publish_and_look)
    source = source_generation(builder.index_dir)
    ship_to(source, dest, keep=3)
    assert seen == [[source[0]]]


def test_a_copy_that_reads_back_differently_is_refused(tmp_path, monkeypatch):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"segment bytes" * 1000)
    real_open = open

    def damaging_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        if Path(path) == dst and mode == "xb":  # the write goes to disk short by one byte
            real_write = fh.write
            fh.write = lambda chunk: real_write(chunk[:-1])
        return fh

    monkeypatch.setattr("builtins.open", damaging_open)
    with pytest.raises(ShipError, match="does not read back"):
        ship_module.copy_file(src, dst)


def test_an_existing_folder_of_that_name_with_other_files_is_not_served(builder, tmp_path):
    source = source_generation(builder.index_dir)
    dest = tmp_path / "replica"
    (dest / GENERATIONS / source[0]).mkdir(parents=True)
    (dest / GENERATIONS / source[0] / "_MAIN_1.toc").write_bytes(b"half")
    with pytest.raises(ShipError, match="different files"):
        ship_to(source, dest, keep=3)
    assert current_generation(dest) is None


def test_ship_waits_for_no_one_a_build_running_at_the_destination_makes_it_fail(builder, tmp_path):
    dest = tmp_path / "replica"
    with build_lock(dest), pytest.raises(BuildLocked) as caught:
        ship_to(source_generation(builder.index_dir), dest, keep=3)
    assert caught.value.exit_code == ExitCode.LOCKED
    assert current_generation(dest) is None


def test_ship_prunes_the_destination_like_a_build_and_removes_leftovers_of_a_killed_ship(
    builder, tmp_path
):
    dest = tmp_path / "replica"
    leftover = dest / GENERATIONS / ".tmp-ship-000001-x-99999"
    leftover.mkdir(parents=True)
    names = []
    for n in range(3):
        (builder.corpus_dir / f"extra{n}.html").write_text(
            f"<html><head><title>Extra {n}</title></head><body><main><h1>Extra {n}</h1>"
            f"<h2 id='q'>Question {n}?</h2><p>Answer number {n} about therapy.</p></main></body></html>",
            encoding="utf-8")
        names.append(build(builder).generation)
        ship_to(source_generation(builder.index_dir), dest, keep=2)
    assert sorted(p.name for p in (dest / GENERATIONS).iterdir()) == names[1:]
    assert current_generation(dest)[0] == names[-1]


def test_source_generation_names_a_published_generation_or_refuses(builder, tmp_path):
    name, _ = source_generation(builder.index_dir)
    assert source_generation(builder.index_dir, name)[0] == name
    for bad in ("../x", ".tmp-1", "999999-none"):
        with pytest.raises(ShipError):
            source_generation(builder.index_dir, bad)
    with pytest.raises(ShipError, match="faq-index build"):
        source_generation(tmp_path / "empty")


def test_shipping_into_the_source_folder_itself_is_refused(builder):
    with pytest.raises(ShipError, match="source index folder"):
        ship_to(source_generation(builder.index_dir), builder.index_dir, keep=3)


def test_cli_ship_to_two_replicas_reports_each_and_exits_0(builder, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    code = main(["ship", "--index", str(builder.index_dir), "--json", str(a), str(b)])
    out = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    name = current_generation(builder.index_dir)[0]
    assert out["generation"] == name
    assert [d["destination"] for d in out["destinations"]] == [str(a), str(b)]
    assert current_generation(a)[0] == current_generation(b)[0] == name


def test_cli_ship_goes_on_after_a_failed_destination_and_exits_non_zero(builder, tmp_path, capsys):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    good = tmp_path / "good"
    code = main(["ship", "--index", str(builder.index_dir), str(blocked), str(good)])
    captured = capsys.readouterr()
    assert code != ExitCode.OK
    assert f"ship to {blocked}" in captured.err
    assert current_generation(good) is not None
    assert f"to {good}" in captured.out


def test_a_shipped_generation_keeps_its_name_so_replicas_report_the_same_generation(builder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    source = source_generation(builder.index_dir)
    for dest in (a, b):
        ship_to(source, dest, keep=3)
    assert (a / CURRENT).read_text() == (b / CURRENT).read_text() == source[0] + "\n"
    shutil.rmtree(builder.index_dir)  # the replicas do not depend on the builder's folder
    assert os.path.isdir(a / GENERATIONS / source[0])


# --------------------------------------------------------------------------- integrity


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_source_is_not_shipped_and_the_error_names_the_file(builder, tmp_path):
    source = source_generation(builder.index_dir)
    segment = next(source[1].glob("MAIN_*.pst"))
    flip_a_byte(segment)
    with pytest.raises(ShipError, match=f"{source[0]} is damaged.*{segment.name}"):
        ship_to(source, tmp_path / "replica", keep=3)
    assert current_generation(tmp_path / "replica") is None
    assert not list((tmp_path / "replica" / GENERATIONS).glob("*"))


def test_a_file_that_changes_after_the_check_is_caught_by_the_manifest_while_copying(
        builder, tmp_path, monkeypatch):
    source = source_generation(builder.index_dir)
    real_check = ship_module.check_source

    def check_then_damage(src):
        manifest = real_check(src)
        flip_a_byte(next(src[1].glob("MAIN_*.pst")))  # same size: only the hash shows it
        return manifest

    monkeypatch.setattr(ship_module, "check_source", check_then_damage)
    with pytest.raises(ShipError, match="differs from the manifest"):
        ship_to(source, tmp_path / "replica", keep=3)
    assert current_generation(tmp_path / "replica") is None
    assert not list((tmp_path / "replica" / GENERATIONS).glob("*"))


def test_a_damaged_copy_already_at_the_destination_is_not_served(builder, tmp_path):
    source = source_generation(builder.index_dir)
    dest = tmp_path / "replica"
    shutil.copytree(source[1], dest / GENERATIONS / source[0])
    flip_a_byte(next((dest / GENERATIONS / source[0]).glob("MAIN_*.pst")))
    with pytest.raises(ShipError, match="already exists but is damaged"):
        ship_to(source, dest, keep=3)
    assert current_generation(dest) is None


def test_a_generation_built_before_manifests_still_ships(builder, tmp_path):
    source = source_generation(builder.index_dir)
    (source[1] / MANIFEST).unlink()
    ship_to(source, tmp_path / "replica", keep=3)
    assert files_of(tmp_path / "replica" / GENERATIONS / source[0]) == files_of(source[1])
