"""indexer.manifest and ``faq-index verify``: every file of a generation is listed with its size
and SHA-256; truncation shows in sizes alone, other damage in the hashes; a generation built
before manifests is unverified, not damaged."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

import indexer.manifest as manifest_module
from indexer.cli import main
from indexer.exitcodes import ExitCode
from indexer.manifest import (
    MANIFEST,
    RACY_FINE_SECONDS,
    RACY_SECONDS,
    REHASH_AFTER_SECONDS,
    VERIFIED,
    Damage,
    HashRecords,
    check_sizes,
    compute_manifest,
    racy_window_ns,
    read_manifest,
    verify,
    verify_folder,
    write_manifest,
)
from indexer.publish import build, current_generation

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def generation(small_corpus, make_config, tmp_path) -> tuple[str, Path]:
    corpus = small_corpus()
    (corpus / "synonyms.txt").write_text("therapy, counselling\n", encoding="utf-8")
    config = make_config(corpus, tmp_path / "index")
    build(config)
    return current_generation(config.index_dir)


def segment_file(folder: Path) -> Path:
    return next(folder.glob("MAIN_*.pst"))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_built_generation_lists_every_file_but_the_manifest_with_size_and_sha256(generation):
    _, folder = generation
    manifest = read_manifest(folder)
    on_disk = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    assert sorted(manifest["files"]) == on_disk
    assert {"catalog.sqlite", "GENERATION.json", "synonyms.txt", "derived.json", "derived.live.npy"} <= set(on_disk)
    assert any(n.startswith("derived.") and n.endswith(".npy") for n in on_disk)
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert verify(folder, manifest) == []


def test_a_truncated_file_is_found_by_sizes_alone(generation):
    _, folder = generation
    seg = segment_file(folder)
    size = seg.stat().st_size
    with open(seg, "r+b") as fh:
        fh.truncate(size // 2)
    damage = check_sizes(folder, read_manifest(folder))
    assert damage == [Damage(seg.name, f"{size // 2:,} bytes, the manifest says {size:,}")]


def test_damage_that_keeps_the_size_is_found_by_the_hashes_only(generation):
    _, folder = generation
    seg = segment_file(folder)
    flip_a_byte(seg)
    manifest = read_manifest(folder)
    assert check_sizes(folder, manifest) == []
    assert verify(folder, manifest) == [Damage(seg.name, "content differs from the manifest (SHA-256)")]


def test_a_missing_file_and_a_file_not_listed_are_damage(generation):
    _, folder = generation
    (folder / "catalog.sqlite").unlink()
    (folder / "_MAIN_9.toc").write_bytes(b"another table of contents")
    assert verify_folder(folder) == [Damage("catalog.sqlite", "missing"),
                                     Damage("_MAIN_9.toc", "not listed in the manifest")]


def test_a_generation_without_a_manifest_is_unverified_not_damaged(generation):
    _, folder = generation
    (folder / MANIFEST).unlink()
    assert verify_folder(folder) is None


def test_a_malformed_manifest_is_damage_of_the_manifest_itself(generation):
    _, folder = generation
    (folder / MANIFEST).write_text('{"format": 1, "files": {"x": {"size": "big"}}}', encoding="utf-8")
    [damage] = verify_folder(folder)
    assert damage.file == MANIFEST and "malformed" in damage.problem


def test_known_entries_are_taken_without_reading_the_file(tmp_path):
    (tmp_path / "a").write_bytes(b"alpha")
    (tmp_path / "b").write_bytes(b"beta")
    known = {"size": 5, "sha256": "0" * 64}
    manifest = write_manifest(tmp_path, lambda p: known if p.name == "a" else None)
    assert manifest["files"]["a"] == known
    assert manifest["files"]["b"]["sha256"] == hashlib.sha256(b"beta").hexdigest()
    assert json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8")) == manifest
    assert compute_manifest(tmp_path)["files"]["a"]["sha256"] == hashlib.sha256(b"alpha").hexdigest()


# --------------------------------------------------------------------------- faq-index verify


def test_cli_verify_exits_0_for_an_intact_served_generation(generation, tmp_path, capsys):
    name, _ = generation
    assert main(["verify", "--index", str(tmp_path / "index")]) == ExitCode.OK
    assert f"generation {name} is intact" in capsys.readouterr().out


def test_cli_verify_prints_one_line_per_damaged_file_and_exits_1(generation, tmp_path, capsys):
    name, folder = generation
    seg = segment_file(folder)
    flip_a_byte(seg)
    with open(folder / "catalog.sqlite", "r+b") as fh:
        fh.truncate(100)
    assert main(["verify", "--index", str(tmp_path / "index")]) == ExitCode.FAILED
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        f"damaged: {name}/catalog.sqlite: 100 bytes, the manifest says "
        f"{read_manifest(folder)['files']['catalog.sqlite']['size']:,}",
        f"damaged: {name}/{seg.name}: content differs from the manifest (SHA-256)",
    ]
    assert "2 of" in out.err


def test_cli_verify_exits_1_when_the_generation_has_no_manifest_to_check(generation, tmp_path, capsys):
    _, folder = generation
    (folder / MANIFEST).unlink()
    assert main(["verify", "--index", str(tmp_path / "index")]) == ExitCode.FAILED
    assert "cannot be verified" in capsys.readouterr().err


def test_cli_verify_without_an_index_exits_1(tmp_path, capsys):
    assert main(["verify", "--index", str(tmp_path / "nothing")]) == ExitCode.FAILED
    assert "no generation has been published" in capsys.readouterr().err


def test_cli_verify_json_names_the_damaged_files(generation, tmp_path, capsys):
    _, folder = generation
    seg = segment_file(folder)
    seg.unlink()
    assert main(["verify", "--json", "--index", str(tmp_path / "index")]) == ExitCode.FAILED
    report = json.loads(capsys.readouterr().out)
    assert report["intact"] is False
    assert report["damaged"] == [{"file": seg.name, "problem": "missing"}]


# --------------------------------------------------------------------------- hash records


@pytest.fixture
def hour_later(monkeypatch):
    """A clock an hour ahead: the files look written long before they were hashed."""
    monkeypatch.setattr(manifest_module, "_now_ns", lambda: time.time_ns() + 3600 * 10**9)


def counting_hashes(monkeypatch) -> list[str]:
    read: list[str] = []
    real = manifest_module.file_sha256

    def spy(path):
        read.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(manifest_module, "file_sha256", spy)
    return read


def test_hash_records_spare_reading_the_files_they_vouch_for(generation, tmp_path, hour_later, monkeypatch):
    _, folder = generation
    read = counting_hashes(monkeypatch)
    records = HashRecords()
    assert verify(folder, read_manifest(folder), records=records) == []
    assert sorted(read) == sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    records.save(tmp_path / VERIFIED, folder.iterdir())
    read.clear()
    assert verify_folder(folder, HashRecords.load(tmp_path / VERIFIED)) == []
    assert read == []


def test_hash_records_do_not_hide_a_change_of_size_or_mtime(generation, tmp_path, hour_later):
    _, folder = generation
    records = HashRecords()
    verify(folder, read_manifest(folder), records=records)
    records.save(tmp_path / VERIFIED, folder.iterdir())
    seg = segment_file(folder)
    flip_a_byte(seg)  # rewritten in place: same size, a new mtime
    assert verify_folder(folder, HashRecords.load(tmp_path / VERIFIED)) == [
        Damage(seg.name, "content differs from the manifest (SHA-256)")]


def test_hash_records_vouch_only_for_the_hash_the_manifest_expects(generation):
    _, folder = generation
    seg = segment_file(folder)
    later = time.time_ns() + 3600 * 10**9
    st = seg.stat()
    records = HashRecords({f"{st.st_dev}:{st.st_ino}": [st.st_size, st.st_mtime_ns, "0" * 64, later]}, now_ns=later)
    assert not records.trusted(st, read_manifest(folder)["files"][seg.name]["sha256"])
    assert records.trusted(st, "0" * 64)


def test_hash_records_older_than_the_rehash_period_or_within_the_racy_window_are_not_trusted(generation):
    _, folder = generation
    seg = segment_file(folder)
    st = seg.stat()
    digest = read_manifest(folder)["files"][seg.name]["sha256"]
    key = f"{st.st_dev}:{st.st_ino}"
    hashed = st.st_mtime_ns + racy_window_ns(st.st_mtime_ns) + 1
    assert HashRecords({key: [st.st_size, st.st_mtime_ns, digest, hashed]}, now_ns=hashed).trusted(st, digest)
    # A write later in the same clock tick as the hashed one would keep the mtime: not trusted.
    racy = st.st_mtime_ns + racy_window_ns(st.st_mtime_ns) - 1
    assert not HashRecords({key: [st.st_size, st.st_mtime_ns, digest, racy]}, now_ns=racy).trusted(st, digest)
    stale = hashed + int(REHASH_AFTER_SECONDS * 1e9)
    assert not HashRecords({key: [st.st_size, st.st_mtime_ns, digest, hashed]}, now_ns=stale).trusted(st, digest)


def test_the_racy_window_is_a_clock_tick_unless_the_file_system_keeps_whole_seconds():
    assert racy_window_ns(1_700_000_000_123_456_789) == int(RACY_FINE_SECONDS * 1e9)
    assert racy_window_ns(1_700_000_000_000_000_000) == int(RACY_SECONDS * 1e9)  # ext3, HFS+, FAT
    assert racy_window_ns(1_700_000_000_123_456_789, 1_700_000_001_000_000_000) == int(RACY_SECONDS * 1e9)
    assert RACY_FINE_SECONDS >= 0.01  # the coarse kernel clock's tick at HZ=100


def test_unreadable_hash_records_trust_nothing(tmp_path):
    for text in ("{not json", '{"format": 1, "files": []}', '{"format": 99, "files": {}}', '[]'):
        (tmp_path / VERIFIED).write_text(text, encoding="utf-8")
        assert HashRecords.load(tmp_path / VERIFIED).entries == {}
    assert HashRecords.load(tmp_path / "missing.json").entries == {}


def test_a_manifest_written_with_records_records_the_files_it_read(tmp_path, hour_later):
    (tmp_path / "a").write_bytes(b"alpha")
    records = HashRecords()
    manifest = write_manifest(tmp_path, records=records)
    st = (tmp_path / "a").stat()
    assert records.trusted(st, manifest["files"]["a"]["sha256"])
