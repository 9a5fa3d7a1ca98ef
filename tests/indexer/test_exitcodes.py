"""indexer.exitcodes: one table of exit codes and their messages."""

from __future__ import annotations

from indexer.exitcodes import MESSAGES, ExitCode


def test_exit_codes_have_their_documented_numbers():
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0), ("FAILED", 1), ("USAGE", 2), ("LOCKED", 3), ("REFUSED", 4)]


def test_every_exit_code_has_a_message_and_messages_are_found_by_plain_int():
    assert set(MESSAGES) == set(ExitCode)
    assert MESSAGES[3] == "another build holds the index lock"
    assert MESSAGES[4] == "refused by the section-loss safety check"
