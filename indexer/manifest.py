"""The integrity manifest of a generation: every file's size and SHA-256, written at build.

A generation is write-once, so what it should hold is known the moment it is built. The
manifest (``MANIFEST.json``, the one file it does not list) lets a worker refuse a damaged
generation before serving it — sizes at open, which costs a ``stat`` per file and catches
truncation, hashes in the background — lets ``update`` check the files it would hard-link
into the next generation (or damage spreads to every later one), lets ``ship`` check what
it copies, and lets ``faq-index verify`` answer "is the served index intact?" on demand.

A generation built before manifests has none: ``read_manifest`` returns None and callers
treat it as unverified rather than damaged.

Hashing every file before each ``update`` made an update cost as much as the index is large,
though most files are the same write-once files (hard links) from one generation to the
next. ``HashRecords`` (``VERIFIED.json`` in the index folder) remembers which file — device
and inode — was hashed when, with its size and modification time then. ``update`` skips
reading a file whose record still holds: same size and mtime, the SHA-256 the manifest
expects, an mtime older than the hash by more than a clock tick (``racy_window_ns``: else
a write in the same tick would go unseen) and a hash younger than ``REHASH_AFTER_SECONDS``. Damage that changes
neither size nor mtime (a failing disk, a deliberate ``touch -d``) is thus found by the next
hash: at the latest a day later, by every worker's background check of each new generation,
by ``faq-index verify``, or at once by ``faq-index update --rehash``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "MANIFEST.json"
FORMAT = 1
CHUNK = 1 << 20
VERIFIED = "VERIFIED.json"  # the index folder's HashRecords, beside CURRENT
#: How much older than a look at a file its timestamps must be for that look to be trusted
#: later: a write in the same clock tick would keep them. File systems that keep whole seconds
#: (ext3, HFS+, FAT's 2 s) need up to 2 s; those that keep fractions (ext4, xfs, btrfs, tmpfs)
#: stamp from the kernel's coarse clock, whose tick is at most 10 ms.
RACY_SECONDS = 2.0
RACY_FINE_SECONDS = 0.1
REHASH_AFTER_SECONDS = 24 * 3600.0


def _now_ns() -> int:
    return time.time_ns()


def racy_window_ns(*stamps_ns: int) -> int:
    """``RACY_FINE_SECONDS`` for timestamps with a fraction of a second, else ``RACY_SECONDS``
    (a whole second is what a coarse file system stores, or one chance in a billion)."""
    fine = all(t % 1_000_000_000 for t in stamps_ns)
    return int((RACY_FINE_SECONDS if fine else RACY_SECONDS) * 1e9)


class ManifestError(Exception):
    """The manifest itself is unreadable or malformed (the generation cannot be trusted)."""


@dataclass(frozen=True)
class Damage:
    """One file of a generation that does not match its manifest."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashRecords:
    """SHA-256s of files already read, by device and inode, with the file's size and mtime
    and the time the reading started; trusted while the file's ``stat`` still says the same
    (module docstring). Saved by a build under its lock; unreadable or foreign records are
    simply not trusted."""

    def __init__(self, entries: dict[str, list] | None = None, now_ns: int | None = None):
        self.entries: dict[str, list] = entries or {}  # "dev:ino" -> [size, mtime_ns, sha256, hashed_ns]
        self.now_ns = now_ns if now_ns is not None else _now_ns()

    @staticmethod
    def _key(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}"

    @classmethod
    def load(cls, path: Path) -> HashRecords:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            entries = data["files"] if data.get("format") == FORMAT else {}
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            entries = {}
        return cls({k: v for k, v in entries.items() if isinstance(v, list) and len(v) == 4})

    def trusted(self, st: os.stat_result, sha256: str) -> bool:
        """Whether the file ``st`` describes was hashed to ``sha256`` and cannot have changed."""
        entry = self.entries.get(self._key(st))
        if entry is None:
            return False
        size, mtime_ns, digest, hashed_ns = entry
        return (size == st.st_size and mtime_ns == st.st_mtime_ns and digest == sha256
                and mtime_ns < hashed_ns - racy_window_ns(mtime_ns)
                and self.now_ns - hashed_ns < int(REHASH_AFTER_SECONDS * 1e9))

    def hash(self, path: Path) -> str:
        """The file's SHA-256, recorded when the file did not change while it was read."""
        before = os.stat(path)
        started = _now_ns()
        digest = file_sha256(path)
        after = os.stat(path)
        if (before.st_ino, before.st_size, before.st_mtime_ns) == (after.st_ino, after.st_size, after.st_mtime_ns):
            self.entries[self._key(after)] = [after.st_size, after.st_mtime_ns, digest, started]
        return digest

    def save(self, path: Path, files: Iterable[Path]) -> None:
        """Write the records of ``files`` (the others are dropped), atomically."""
        keep = {}
        for file in files:
            with contextlib.suppress(OSError):
                key = self._key(os.stat(file))
                if key in self.entries:
                    keep[key] = self.entries[key]
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "files": keep}), encoding="utf-8")
        os.replace(tmp, path)


def _listed_files(folder: Path) -> list[str]:
    """The names a manifest covers: every entry of the (flat) folder but the manifest."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name != MANIFEST and p.name != MANIFEST + ".tmp")


def compute_manifest(folder: Path, known: Callable[[Path], dict | None] | None = None,
                     records: HashRecords | None = None) -> dict:
    """The manifest of ``folder`` as it is now. ``known(path)`` may return an entry already
    verified for that very file (a hard link to a checked file), which is then not re-read;
    ``records`` receives the hashes of the files read."""
    files = {}
    for name in _listed_files(folder):
        path = Path(folder) / name
        entry = known(path) if known else None
        if entry is None:
            size = path.stat().st_size
            entry = {"size": size, "sha256": records.hash(path) if records is not None else file_sha256(path)}
        files[name] = {"size": int(entry["size"]), "sha256": entry["sha256"]}
    return {"format": FORMAT, "algorithm": "sha256", "files": files}


def write_manifest(folder: Path, known: Callable[[Path], dict | None] | None = None,
                   records: HashRecords | None = None) -> dict:
    """Compute and write ``folder``'s manifest (temp file, fsync, rename); returns it."""
    manifest = compute_manifest(folder, known, records)
    tmp = Path(folder) / (MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, Path(folder) / MANIFEST)
    return manifest


def read_manifest(folder: Path) -> dict | None:
    """The manifest of ``folder``; None when it has none (built before manifests).

    Raises ``ManifestError`` when the manifest exists but cannot be read or is malformed.
    """
    try:
        text = (Path(folder) / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{MANIFEST}: cannot be read ({exc})") from None
    try:
        manifest = json.loads(text)
        files = manifest["files"]
        ok = manifest.get("format") == FORMAT and isinstance(files, dict) and all(
            isinstance(e, dict) and isinstance(e.get("size"), int) and isinstance(e.get("sha256"), str)
            for e in files.values()
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ManifestError(f"{MANIFEST}: malformed or of an unknown format")
    return manifest


def check_sizes(folder: Path, manifest: dict) -> list[Damage]:
    """Files missing, of the wrong size, or not listed: a ``stat`` per file, no reading."""
    folder = Path(folder)
    damage = []
    files = manifest["files"]
    for name, entry in sorted(files.items()):
        try:
            size = os.stat(folder / name).st_size
        except FileNotFoundError:
            damage.append(Damage(name, "missing"))
            continue
        except OSError as exc:
            damage.append(Damage(name, f"cannot be read ({exc.strerror})"))
            continue
        if size != entry["size"]:
            damage.append(Damage(name, f"{size:,} bytes, the manifest says {entry['size']:,}"))
    try:
        extra = [n for n in _listed_files(folder) if n not in files]
    except OSError as exc:
        return [*damage, Damage(".", f"the folder cannot be listed ({exc.strerror})")]
    damage += [Damage(name, "not listed in the manifest") for name in extra]
    return damage


def verify(folder: Path, manifest: dict, names: list[str] | None = None,
           records: HashRecords | None = None) -> list[Damage]:
    """Sizes, then the SHA-256 of every listed file (or of ``names`` only); [] when intact.
    With ``records``, a file they vouch for is not read, and the hashes read are recorded."""
    damage = check_sizes(folder, manifest)
    if names is not None:
        damage = [d for d in damage if d.file in names]
    bad = {d.file for d in damage}
    for name, entry in sorted(manifest["files"].items()):
        if name in bad or (names is not None and name not in names):
            continue
        path = Path(folder) / name
        try:
            if records is None:
                digest = file_sha256(path)
            elif records.trusted(os.stat(path), entry["sha256"]):
                continue
            else:
                digest = records.hash(path)
        except OSError as exc:
            damage.append(Damage(name, f"cannot be read ({exc.strerror})"))
            continue
        if digest != entry["sha256"]:
            damage.append(Damage(name, "content differs from the manifest (SHA-256)"))
    return damage


def verify_folder(folder: Path, records: HashRecords | None = None) -> list[Damage] | None:
    """The full check of a generation folder: its damage ([] when intact), or None when it
    has no manifest. An unreadable manifest is reported as damage of the manifest. With
    ``records``, files they vouch for are not read (``HashRecords``)."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        return [Damage(MANIFEST, str(exc).split(": ", 1)[1])]
    if manifest is None:
        return None
    return verify(folder, manifest, records=records)
