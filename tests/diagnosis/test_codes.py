"""The diagnosis code type and the catalogue agree, and a bug in Postroom is diagnosed as a
transient ``unknown`` by diagnosis itself (no reply code made up for it)."""

from __future__ import annotations

from postroom.codes import ALL_CODES
from postroom.diagnosis.catalogue import CODES, diagnose, diagnose_unexpected, entry_of


def test_the_code_type_names_every_catalogue_code_in_order() -> None:
    assert tuple(CODES) == ALL_CODES


def test_a_bug_is_a_transient_unknown_without_a_reply() -> None:
    diagnosis = diagnose_unexpected(RuntimeError("boom"))
    assert diagnosis.code == "unknown" and diagnosis.transient
    assert diagnosis.reply is None and "boom" in diagnosis.cause
    # The same code from a transport without a reply is not retried: only a bug is.
    assert not diagnose("unknown").transient


def test_a_stored_code_that_left_the_vocabulary_has_no_entry() -> None:
    assert entry_of("greylisted") is CODES["greylisted"]
    assert entry_of("no_such_code") is None
