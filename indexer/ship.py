"""Ship a published generation to other index folders (replicas), pointer last.

Build once, serve many: the builder's served generation is copied into each destination's
``generations/`` under a ``.tmp-ship-…`` name (which no worker ever opens, and which the
next build or ship there removes if this one was killed), every file fsync'd and compared
with the source by SHA-256, then renamed to its real name, and only then is the
destination's ``CURRENT`` switched with ``publish_pointer`` (temp file, fsync, ``os.replace``).
A replica therefore sees either its old generation or the complete new one. The source is
checked against its manifest (``indexer.manifest``) before anything is copied, and every
copied file's read-back hash against the manifest's, so a damaged generation is never
shipped (one built before manifests is shipped unverified). Each destination
is shipped under its own build lock, so a ship never races a local build there, and old
generations are pruned there like after a build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from indexer.manifest import check_sizes, read_manifest, verify, verify_folder
from indexer.publish import (
    GENERATIONS,
    BuildError,
    build_lock,
    current_generation,
    fsync_dir,
    prune,
    publish_pointer,
)

CHUNK = 1 << 20


class ShipError(BuildError):
    """A ship that cannot go on; the destination's served generation is unchanged."""


@dataclass
class ShipResult:
    destination: str
    generation: str
    copied_bytes: int = 0  # 0 when the destination already held the generation
    already_served: bool = False
    pruned: tuple[str, ...] = ()


def source_generation(index_dir: Path, name: str | None = None) -> tuple[str, Path]:
    """The generation to ship: ``name`` in ``index_dir``, or the one it serves."""
    if name is None:
        current = current_generation(index_dir)
        if current is None:
            raise ShipError(f"no generation has been published in {index_dir}; run `faq-index build` first")
        return current
    if name.startswith(".") or "/" in name:
        raise ShipError(f"{name!r} is not a generation name")
    path = index_dir / GENERATIONS / name
    if not path.is_dir():
        raise ShipError(f"there is no generation {name} in {index_dir / GENERATIONS}")
    return name, path


def generation_files(folder: Path) -> dict[str, int]:
    """A generation's files and their sizes (generations are flat folders)."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir() or p.is_symlink():
            raise ShipError(f"{p} is not a regular file; a generation holds only files")
        out[p.name] = p.stat().st_size
    return out


def check_source(source: tuple[str, Path]) -> dict | None:
    """The manifest of the generation to ship once its files match it; None when it has none
    (built before manifests). A damaged generation is a ``ShipError`` naming each file."""
    name, folder = source
    damage = verify_folder(folder)
    if damage:
        raise ShipError(f"generation {name} is damaged, not shipped: " + "; ".join(map(str, damage)))
    return read_manifest(folder) if damage is not None else None


def copy_file(src: Path, dst: Path, sha256: str | None = None) -> int:
    """Copy ``src`` to a new ``dst``, fsync it, and check the copy reads back identical (and,
    given the manifest's ``sha256``, that both what was read and what was written match it)."""
    written = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(CHUNK):
            written.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    read_back = hashlib.sha256()
    with open(dst, "rb") as fh:
        while chunk := fh.read(CHUNK):
            read_back.update(chunk)
    if read_back.digest() != written.digest():
        raise ShipError(f"the copy {dst} does not read back as {src} was read")
    if sha256 is not None and written.hexdigest() != sha256:
        raise ShipError(f"{src} changed or was damaged: its content differs from the manifest (SHA-256)")
    return dst.stat().st_size


def ship_to(source: tuple[str, Path], dest_index: Path, keep: int) -> ShipResult:
    """Copy generation ``source`` into ``dest_index`` and switch its pointer (see the module)."""
    name, src = source
    dest_index = Path(dest_index)
    if dest_index.resolve() == src.parent.parent.resolve():
        raise ShipError(f"{dest_index} is the source index folder itself")
    manifest = check_source(source)
    expected = manifest["files"] if manifest else {}
    files = generation_files(src)
    result = ShipResult(str(dest_index), name)
    with build_lock(dest_index):
        gens = dest_index / GENERATIONS
        gens.mkdir(parents=True, exist_ok=True)
        final = gens / name
        if final.is_dir():
            if generation_files(final) != files:
                raise ShipError(f"{final} already exists with different files; remove it and ship again")
            damage = verify(final, manifest) if manifest else []
            if damage:
                raise ShipError(f"{final} already exists but is damaged ({damage[0]}); remove it and ship again")
        else:
            tmp = gens / f".tmp-ship-{name}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                for file in files:
                    sha = expected[file]["sha256"] if file in expected else None
                    result.copied_bytes += copy_file(src / file, tmp / file, sha)
                if generation_files(tmp) != files or (manifest and check_sizes(tmp, manifest)):
                    raise ShipError(f"the source {src} changed while it was being shipped")
                fsync_dir(tmp)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            fsync_dir(gens)
        current = current_generation(dest_index)
        result.already_served = current is not None and current[0] == name
        if not result.already_served:
            publish_pointer(dest_index, name)
        result.pruned = tuple(prune(dest_index, keep))
    return result
