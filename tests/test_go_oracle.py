"""Go itself as the oracle: what Go 1.19's strconv and encoding/json write for the seed's types.

``tests/go_oracle/go_output.json`` was produced by ``go run .`` in ``tests/go_oracle`` (the
program is committed beside it). These tests need no Go toolchain; the last one, when Go is
installed (the ``[go]`` extra), checks that the recorded output is still what Go writes.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.errors import go_quote
from aether_conformance.schemas import validate
from tests.go_toolchain import go_binary, run_go

ORACLE_DIR = Path(__file__).parent / "go_oracle"
ORACLE = json.loads((ORACLE_DIR / "go_output.json").read_text(encoding="utf-8"))


def _code_points(ranges: list[list[int]]) -> set[int]:
    # The recorded ranges may span the surrogates, which no Go (or UTF-8) string can hold.
    return {cp for first, last in ranges for cp in range(first, last + 1) if not 0xD800 <= cp <= 0xDFFF}


def _escaped_by_go() -> set[int]:
    return _code_points(ORACLE["quoteEscaped"])


def _escaped_by_us() -> set[int]:
    return {
        cp for cp in range(0x110000)
        if not 0xD800 <= cp <= 0xDFFF and go_quote(chr(cp)) != f'"{chr(cp)}"'
    }


def test_quote_escapes_exactly_what_go_escapes():
    go, ours = _escaped_by_go(), _escaped_by_us()
    if ORACLE["unicode"] == unicodedata.unidata_version:
        assert ours == go
        return
    # Unicode tables of different versions disagree on characters assigned in between: the side
    # that does not know a character escapes it. Any other difference is a quoting bug.
    unknown_to_go = _code_points(ORACLE["quoteEscapedUnassigned"])
    we_escape_go_prints = {cp for cp in ours - go if unicodedata.category(chr(cp)) != "Cn"}
    go_escapes_we_print = (go - ours) - unknown_to_go
    assert not we_escape_go_prints, [hex(cp) for cp in sorted(we_escape_go_prints)[:20]]
    assert not go_escapes_we_print, [hex(cp) for cp in sorted(go_escapes_we_print)[:20]]


@pytest.mark.parametrize("case", ORACLE["quoteSamples"], ids=lambda c: repr(c["input"])[:30])
def test_quote_matches_go_exactly(case):
    assert go_quote(case["input"]) == case["go"]


@pytest.mark.parametrize("case", ORACLE["conflicts"], ids=lambda c: repr(c["actorId"])[:30])
def test_conflict_text_matches_the_seeds_go_error(case):
    error = VersionConflictError(actor_id=case["actorId"], attempted_version=case["attemptedVersion"],
                                 current_version=case["currentVersion"])
    assert str(error) == case["message"]
    assert VersionConflictError.from_dict(case).to_dict() == case


@pytest.mark.parametrize("text", ORACLE["eventJSON"], ids=lambda t: t[:40])
def test_go_written_events_validate_and_round_trip_unchanged(text):
    written = json.loads(text)
    validate("event", written)
    again = Event.from_dict(written).to_dict()
    assert again == written
    assert list(again) == list(written)  # Go's field order, commandId omitted when empty


@pytest.mark.parametrize("text", ORACLE["snapshotJSON"], ids=lambda t: t[:40])
def test_go_written_snapshots_validate_and_round_trip_unchanged(text):
    written = json.loads(text)
    validate("actor-snapshot", written)
    again = ActorSnapshot.from_dict(written).to_dict()
    assert again == written and list(again) == list(written)


@pytest.mark.skipif(go_binary() is None, reason="no Go toolchain (install the [go] extra); the recorded output is used")
def test_the_recorded_output_is_what_go_writes(tmp_path):
    completed = run_go(["run", "."], ORACLE_DIR, tmp_path)
    assert completed.returncode == 0, completed.stderr
    fresh = json.loads(completed.stdout)
    if fresh["go"] != ORACLE["go"]:
        pytest.skip(f"recorded with {ORACLE['go']}, this is {fresh['go']}: its Unicode tables may differ")
    assert fresh == ORACLE
