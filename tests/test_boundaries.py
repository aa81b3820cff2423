"""The boundary catalog (aether_conformance.boundaries) says what it claims: every case is well-formed."""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aether_conformance.boundaries import (
    COLLIDING_ACTOR_IDS,
    NORMALISATION_SENSITIVE_TEXT,
    QUOTE_ESCAPE_CLASSES,
    TIMESTAMPS,
    TIMESTAMPS_BEYOND_UTC_YEARS,
    VERSION_RUNS,
    IdPair,
)
from aether_conformance.errors import go_quote
from aether_conformance.model import INT64_MAX, Timestamp
from aether_conformance.timestamps import utc_microseconds
from aether_conformance.suite.test_actors import WHOLE_ID_PAIRS
from tests.zoo.escapes6b import murmur2

ORACLE = json.loads((Path(__file__).parent / "go_oracle" / "go_output.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(VERSION_RUNS))
def test_version_runs_increase_within_int64(name):
    run = VERSION_RUNS[name].versions
    assert list(run) == sorted(set(run)) and 0 < run[0] and run[-1] <= INT64_MAX


def test_version_runs_cross_the_boundaries_they_name():
    crossed = {v for run in VERSION_RUNS.values() for v in run.versions}
    for boundary in (2**31, 2**32, 2**53 + 1, INT64_MAX, 10, 100, 10_000_000_000):
        assert boundary in crossed


@pytest.mark.parametrize("name", sorted(COLLIDING_ACTOR_IDS))
def test_pairs_are_distinct_ids_within_the_256_every_store_accepts(name):
    left, right = COLLIDING_ACTOR_IDS[name].build("tok-12345678901234567890")
    assert left != right and 0 < len(left) <= 256 and 0 < len(right) <= 256


@pytest.mark.parametrize("length", [64, 128, 255])
def test_shared_prefix_pairs_differ_only_after_the_prefix(length):
    left, right = COLLIDING_ACTOR_IDS[f"shared-prefix-{length}"].build("token")
    assert left[:length] == right[:length] and left[length] != right[length] and len(left) == length + 1


def test_a_pair_refuses_a_token_longer_than_its_prefix_and_a_pair_that_is_one_id():
    with pytest.raises(ValueError, match="longer than the shared prefix"):
        COLLIDING_ACTOR_IDS["shared-prefix-64"].build("t" * 64)
    with pytest.raises(ValueError, match="both ids are"):
        IdPair("same", "{}-a", "{}-a", "nothing").build("x")


def test_the_lossy_keyings_the_pairs_target_do_merge_them():
    def merged(name, key):
        left, right = COLLIDING_ACTOR_IDS[name].build("tok")
        return key(left) == key(right)

    assert merged("nfc-vs-nfd", lambda s: unicodedata.normalize("NFC", s))
    assert merged("angstrom-sign", lambda s: unicodedata.normalize("NFC", s))
    assert merged("ligature", lambda s: unicodedata.normalize("NFKC", s))
    assert merged("case", str.lower) and merged("case-sharp-s", str.casefold)
    assert merged("trailing-space", str.strip) and merged("trailing-newline", str.strip)
    assert merged("after-nul", lambda s: s.split("\0")[0]) and merged("shared-prefix-255", lambda s: s[:255])
    assert merged("dot-vs-underscore", lambda s: s.replace(".", "_"))
    assert merged("trailing-cr", lambda s: s.rstrip("\r\n"))
    invisible = lambda s: "".join(c for c in s if unicodedata.category(c) != "Cf")  # noqa: E731
    assert merged("zero-width-space", invisible) and merged("soft-hyphen", invisible)


@pytest.mark.parametrize("token", ["tok", "", "🦀-Zoë.x/y", "t" * 200])
def test_the_hash_pairs_hash_alike_after_any_prefix(token):
    def java_hash_code(text):
        units = text.encode("utf-16-be", "surrogatepass")
        h = 0
        for i in range(0, len(units), 2):
            h = (31 * h + int.from_bytes(units[i:i + 2], "big")) % 2**32
        return h

    left, right = COLLIDING_ACTOR_IDS["java-hashcode"].build(token)
    assert java_hash_code(left) == java_hash_code(right)
    left, right = COLLIDING_ACTOR_IDS["crc32"].build(token)
    assert zlib.crc32(left.encode()) == zlib.crc32(right.encode())


@pytest.mark.parametrize("name", sorted(NORMALISATION_SENSITIVE_TEXT))
def test_normalisation_sensitive_text_is_changed_by_some_normaliser_or_trimmer(name):
    text = NORMALISATION_SENSITIVE_TEXT[name]
    changed = {unicodedata.normalize(form, text) for form in ("NFC", "NFD", "NFKC")} | {text.strip(), " ".join(text.split())}
    assert changed - {text} or name == "zero-width-joiner"  # ZWJ: stripped by "invisible character" filters


@pytest.mark.parametrize("name", sorted(TIMESTAMPS))
def test_timestamps_parse_and_convert_to_utc(name):
    stamp = Timestamp.parse(TIMESTAMPS[name])
    assert stamp.astimezone(timezone.utc).year >= 1


@pytest.mark.parametrize("name", sorted(TIMESTAMPS_BEYOND_UTC_YEARS))
def test_timestamps_beyond_utc_years_have_an_instant_outside_them(name):
    stamp = Timestamp.parse(TIMESTAMPS_BEYOND_UTC_YEARS[name])
    with pytest.raises(OverflowError):
        stamp.astimezone(timezone.utc)
    first, last = (utc_microseconds(moment.replace(tzinfo=timezone.utc)) for moment in (datetime.min, datetime.max))
    assert not first <= utc_microseconds(stamp) <= last


@pytest.mark.parametrize("name", sorted(QUOTE_ESCAPE_CLASSES))
def test_escape_classes_are_quoted_as_go_quotes_them_in_every_unicode_version(name):
    characters, escaped = QUOTE_ESCAPE_CLASSES[name]
    assert go_quote(characters) == f'"{escaped}"'
    go_escapes = {cp for first, last in ORACLE["quoteEscaped"] for cp in range(first, last + 1)}
    # Escaped by the Go that wrote the oracle, and by us whatever our tables: assigned long ago to a
    # class (control, format, separator, private use) or a noncharacter, never to a printable one.
    for char in characters:
        assert ord(char) in go_escapes
        assert unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn")


def _fnv1a_32(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


WHOLE_ID_KEYINGS = {
    "unicode-digits": int,
    "base64-case": lambda text: base64.urlsafe_b64encode(text.encode()).decode().lower(),
    "sha1-prefix-32": lambda text: hashlib.sha1(text.encode()).hexdigest()[:8],
    "md5-prefix-32": lambda text: hashlib.md5(text.encode()).hexdigest()[:8],
    "sha256-prefix-32": lambda text: hashlib.sha256(text.encode()).hexdigest()[:8],
    "fnv1a-32": _fnv1a_32,
    "murmur2-32": lambda text: murmur2(text.encode()),
    "name-cut-to-63": lambda text: text[:54] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8],
}


@pytest.mark.parametrize("kind", sorted(WHOLE_ID_PAIRS))
def test_whole_id_pairs_collide_under_their_keying(kind):
    left, right, _ = WHOLE_ID_PAIRS[kind]
    keying = WHOLE_ID_KEYINGS[kind]
    assert left != right and keying(left) == keying(right)
