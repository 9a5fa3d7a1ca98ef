"""Candidate general-English equivalences from WordNet 3.0, for review before shipping.

``python -m eval.equivalences WORD...`` prints, for each word, the single-word lemmas of its
most frequent sense (WordNet's first synset, per part of speech) that are themselves common
(tagged in WordNet's sense-tagged corpus). The reviewed groups are shipped as
``service/equivalences.txt``; the runtime never reads WordNet. Needs Debian's
``wordnet-base`` (``/usr/share/wordnet``).
"""

from __future__ import annotations

import sys
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def _index(pos: str) -> dict[str, tuple[int, list[int]]]:
    """lemma → (tagged sense count, synset offsets, most frequent first)."""
    out: dict[str, tuple[int, list[int]]] = {}
    with open(WORDNET / f"index.{POS[pos]}", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            parts = line.split()
            lemma, synsets, pointers = parts[0], int(parts[2]), int(parts[3])
            tagged = int(parts[5 + pointers])
            offsets = [int(o) for o in parts[6 + pointers:6 + pointers + synsets]]
            out[lemma] = (tagged, offsets)
    return out


def _synset(pos: str, offset: int) -> list[str]:
    with open(WORDNET / f"data.{POS[pos]}", encoding="latin-1") as fh:
        fh.seek(offset)
        parts = fh.readline().split()
    count = int(parts[3], 16)
    return [parts[4 + 2 * i].lower() for i in range(count)]


def candidates(word: str, indexes: dict[str, dict]) -> dict[str, list[str]]:
    """Per part of speech: common single-word lemmas sharing ``word``'s first sense."""
    found = {}
    for pos, index in indexes.items():
        entry = index.get(word)
        if not entry:
            continue
        lemmas = [w for w in _synset(pos, entry[1][0]) if w != word and "_" not in w
                  and index.get(w, (0, []))[0] > 0]
        if lemmas:
            found[POS[pos]] = lemmas
    return found


def main(argv: list[str]) -> int:
    if not WORDNET.is_dir():
        print("WordNet is not installed: apt-get install wordnet-base", file=sys.stderr)
        return 2
    indexes = {pos: _index(pos) for pos in POS}
    for word in argv:
        for pos, lemmas in candidates(word.lower(), indexes).items():
            print(f"{word} ({pos}): {', '.join(lemmas)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
