"""The fixed choices of the evaluation protocol, in one place so the evaluation, the BM25
baseline run and the report cannot disagree: the random seed, the sample sizes, the
as-you-type prefix lengths and how a LiveQA question is turned into a query."""

from __future__ import annotations

from collections.abc import Callable

#: Seed of every sample drawn by the evaluation (CounselChat train, MedQuAD related).
SEED = 20250101
#: Title prefixes, in characters, typed through the suggester (and given to the baseline).
PREFIX_CHARS = (3, 5, 10, 15, 20)
#: MedQuAD documents sampled for the related-documents precision.
RELATED_SAMPLE = 200

#: Protocol (a)'s three LiveQA query variants, in report order.
LIVEQA_VARIANTS: dict[str, Callable[[dict], str]] = {
    "summary": lambda q: q["summary"],
    "message": lambda q: q["message"],
    "subject+message": lambda q: (q["subject"] + " " + q["message"]).strip(),
}
