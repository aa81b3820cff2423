"""Go itself as the oracle: what Go 1.19's strconv and encoding/json write for the seed's types.

``tests/go_oracle/go_output.json`` was produced by ``go run ./tests/go_oracle`` (the program
is committed beside it). These tests need no Go toolchain; the last one, when ``go`` is on
PATH, checks that the recorded output is still what Go writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.errors import go_quote
from aether_conformance.schemas import validate

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


def test_quote_escapes_every_code_point_go_prints_as_is_and_no_other():
    go, ours = _escaped_by_go(), _escaped_by_us()
    assert not ours - go, f"we escape code points Go prints as they are: {sorted(ours - go)[:20]}"
    missing = sorted(go - ours)
    if ORACLE["unicode"] == unicodedata.unidata_version:
        assert not missing
    else:
        # Python's Unicode tables differ from the recording Go's: the only difference allowed is a
        # character that Go's tables do not assign at all (so Go escapes it) and ours call printable.
        unassigned_in_go = _code_points(ORACLE["quoteEscapedUnassigned"])
        assert not set(missing) - unassigned_in_go, sorted(set(missing) - unassigned_in_go)[:20]


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


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain here; the recorded output is used")
def test_the_recorded_output_is_what_go_writes(tmp_path):
    completed = subprocess.run(["go", "run", "."], cwd=ORACLE_DIR, capture_output=True, text=True, timeout=600,
                               env={"GOCACHE": str(tmp_path / "gocache"), "HOME": str(tmp_path),
                                    "PATH": "/usr/bin:/bin:/usr/local/bin:/usr/local/go/bin"})
    assert completed.returncode == 0, completed.stderr
    fresh = json.loads(completed.stdout)
    if fresh["go"] != ORACLE["go"]:
        pytest.skip(f"recorded with {ORACLE['go']}, this is {fresh['go']}: Unicode tables may differ")
    assert fresh == ORACLE
