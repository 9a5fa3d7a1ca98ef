"""The exit codes of ``faq-index``, in one table.

The CLI returns them and the service turns them into job messages, so both must read the
same numbers and words; neither defines its own.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a ``faq-index`` run ended with."""

    OK = 0
    FAILED = 1  # the run failed, or ``validate`` found problems to fix
    USAGE = 2  # bad arguments, settings or corpus folder
    LOCKED = 3  # another build holds the index lock
    REFUSED = 4  # publish refused by the section-loss safety check


#: A short human message per exit code, for logs and job status pages.
MESSAGES: dict[ExitCode, str] = {
    ExitCode.OK: "ok",
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "usage error (bad arguments, settings or corpus folder)",
    ExitCode.LOCKED: "another build holds the index lock",
    ExitCode.REFUSED: "refused by the section-loss safety check",
}
