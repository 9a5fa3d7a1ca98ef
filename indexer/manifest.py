"""The integrity manifest of a generation: every file's size and SHA-256, written at build.

A generation is write-once, so what it should hold is known the moment it is built. The
manifest (``MANIFEST.json``, the one file it does not list) lets a worker refuse a damaged
generation before serving it — sizes at open, which costs a ``stat`` per file and catches
truncation, hashes in the background — lets ``update`` check the files it would hard-link
into the next generation (or damage spreads to every later one), lets ``ship`` check what
it copies, and lets ``faq-index verify`` answer "is the served index intact?" on demand.

A generation built before manifests has none: ``read_manifest`` returns None and callers
treat it as unverified rather than damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "MANIFEST.json"
FORMAT = 1
CHUNK = 1 << 20


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


def _listed_files(folder: Path) -> list[str]:
    """The names a manifest covers: every entry of the (flat) folder but the manifest."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name != MANIFEST and p.name != MANIFEST + ".tmp")


def compute_manifest(folder: Path, known: Callable[[Path], dict | None] | None = None) -> dict:
    """The manifest of ``folder`` as it is now. ``known(path)`` may return an entry already
    verified for that very file (a hard link to a checked file), which is then not re-read."""
    files = {}
    for name in _listed_files(folder):
        path = Path(folder) / name
        entry = known(path) if known else None
        if entry is None:
            entry = {"size": path.stat().st_size, "sha256": file_sha256(path)}
        files[name] = {"size": int(entry["size"]), "sha256": entry["sha256"]}
    return {"format": FORMAT, "algorithm": "sha256", "files": files}


def write_manifest(folder: Path, known: Callable[[Path], dict | None] | None = None) -> dict:
    """Compute and write ``folder``'s manifest (temp file, fsync, rename); returns it."""
    manifest = compute_manifest(folder, known)
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


def verify(folder: Path, manifest: dict, names: list[str] | None = None) -> list[Damage]:
    """Sizes, then the SHA-256 of every listed file (or of ``names`` only); [] when intact."""
    damage = check_sizes(folder, manifest)
    if names is not None:
        damage = [d for d in damage if d.file in names]
    bad = {d.file for d in damage}
    for name, entry in sorted(manifest["files"].items()):
        if name in bad or (names is not None and name not in names):
            continue
        try:
            digest = file_sha256(Path(folder) / name)
        except OSError as exc:
            damage.append(Damage(name, f"cannot be read ({exc.strerror})"))
            continue
        if digest != entry["sha256"]:
            damage.append(Damage(name, "content differs from the manifest (SHA-256)"))
    return damage


def verify_folder(folder: Path) -> list[Damage] | None:
    """The full check of a generation folder: its damage ([] when intact), or None when it
    has no manifest. An unreadable manifest is reported as damage of the manifest."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        return [Damage(MANIFEST, str(exc).split(": ", 1)[1])]
    if manifest is None:
        return None
    return verify(folder, manifest)
