"""Named, fixed inputs that real backends get wrong: the suite's boundary cases, for your own tests too.

Each catalog entry says which lossy representation it catches.  The suite
runs every entry as a fixed test case (never left to hypothesis's luck);
a store author can import the same cases into a unit test of a backend::

    from aether_conformance.boundaries import COLLIDING_ACTOR_IDS, VERSION_RUNS

* :data:`VERSION_RUNS` - version sequences around integer widths, float64
  exactness and powers of ten (string-ordered keys).
* :data:`COLLIDING_ACTOR_IDS` - pairs of distinct actor ids that common lossy
  keyings (truncation, sanitising, case folding, normalising, trimming,
  prefix scans, SQL ``LIKE``) map to one key.
* :data:`NORMALISATION_SENSITIVE_TEXT` - strings a normaliser or trimmer changes.
* :data:`TIMESTAMPS` - instants around DST transitions, the epoch, the far
  future, leap days, and every offset form.
* :data:`QUOTE_ESCAPE_CLASSES` - characters Go's ``%q`` escapes, one per class,
  chosen so that the escape is the same in every Unicode version.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .model import INT64_MAX

__all__ = [
    "VersionRun",
    "VERSION_RUNS",
    "IdPair",
    "COLLIDING_ACTOR_IDS",
    "NORMALISATION_SENSITIVE_TEXT",
    "TIMESTAMPS",
    "TIMESTAMPS_BEYOND_UTC_YEARS",
    "QUOTE_ESCAPE_CLASSES",
]


@dataclass(frozen=True)
class VersionRun:
    """Versions saved in this order to one actor (all accepted: each is above the one before)."""

    name: str
    versions: tuple[int, ...]
    catches: str


VERSION_RUNS: dict[str, VersionRun] = {
    run.name: run
    for run in (
        VersionRun("int32-max", (2**31 - 2, 2**31 - 1, 2**31, 2**31 + 1), "a version column or field of 32 bits"),
        VersionRun("uint32-max", (2**32 - 2, 2**32 - 1, 2**32, 2**32 + 1), "an unsigned 32-bit version"),
        VersionRun("equal-modulo-2^32", (1, 2, 2**32 + 1, 2**32 + 2),
                   "a key of the version's low 32 bits: 2^32+1 overwrites version 1"),
        VersionRun("float32-exact", (2**24 - 1, 2**24, 2**24 + 1, 2**24 + 2), "versions held as float32"),
        VersionRun("float64-exact", (2**53 - 1, 2**53, 2**53 + 1, 2**53 + 2),
                   "versions held as float64 (JSON numbers, Redis sorted-set scores, JavaScript): 2^53+1 "
                   "reads as 2^53 and is refused as not above it"),
        VersionRun("int64-max", (2**63 - 3, 2**63 - 2, INT64_MAX),
                   "an off-by-one at the top of int64, or a signed/unsigned mix-up"),
        VersionRun("one-digit-to-two", (8, 9, 10, 11), "versions compared or ordered as strings ('10' < '9')"),
        VersionRun("two-digits-to-three", (98, 99, 100, 101), "versions compared or ordered as strings"),
        VersionRun("ten-to-eleven-digits", (9_999_999_998, 9_999_999_999, 10_000_000_000, 10_000_000_001),
                   "string-ordered keys (zero-padded to 10 digits, then overflowing the padding)"),
        VersionRun("gap-over-a-power-of-ten", (7, 10, 100, 1000, 99_999, 100_000),
                   "gapped versions ordered or compared as strings"),
        # 10^16 - 1 and 10^16 are one float64: a sorted set scored by version falls back to its
        # members' byte order, in which "9999999999999999:..." sorts after "10000000000000000:...".
        VersionRun("float64-tie-over-a-power-of-ten", (10**16 - 1, 10**16, 10**16 + 2),
                   "versions scored as float64, ties broken by text"),
    )
}


@dataclass(frozen=True)
class IdPair:
    """Two actor ids that must stay two actors; ``{}`` in each template is replaced by a fresh token."""

    name: str
    left: str
    right: str
    catches: str
    # When set, the token is padded to this many characters, so both ids share exactly this prefix.
    shared_length: int | None = None
    # The padding character: a multi-byte one makes the prefix long in bytes or UTF-16 units too.
    pad: str = "p"

    def build(self, token: str) -> tuple[str, str]:
        if self.shared_length is not None:
            if len(token) + 1 > self.shared_length:
                raise ValueError(f"IdPair {self.name}: token {token!r} is longer than the shared prefix")
            token = (token + "-").ljust(self.shared_length, self.pad)
        left, right = self.left.replace("{}", token), self.right.replace("{}", token)
        if left == right:  # a catalog bug, not a store's
            raise ValueError(f"IdPair {self.name}: both ids are {left!r}")
        return left, right


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def _shared_prefix(length: int, pad: str = "p", name: str = "") -> IdPair:
    # length + 1 characters: within the 256 every store must accept (ES-ACTOR-002).
    units = "" if pad == "p" else (f", padded with {pad!r} ({len(pad.encode())} UTF-8 bytes, "
                                   f"{len(pad.encode('utf-16-le')) // 2} UTF-16 units each)")
    return IdPair(name or f"shared-prefix-{length}", "{}L", "{}R",
                  f"keys truncated to {length} characters{units} (VARCHAR, a hashed prefix)", length, pad)


COLLIDING_ACTOR_IDS: dict[str, IdPair] = {
    pair.name: pair
    for pair in (
        _shared_prefix(64),
        _shared_prefix(128),
        _shared_prefix(255),
        # Characters, not bytes or UTF-16 units: a key cut at 255 bytes, or sliced at 256 by a
        # JavaScript string index, joins these (each id is 201 characters).
        _shared_prefix(200, "\U0001f980", "astral-prefix-200"),
        _shared_prefix(200, "\u4e2d", "three-byte-prefix-200"),
        IdPair("after-nul", "{}-a\x00left", "{}-a\x00right", "C strings: the id ends at the NUL"),
        IdPair("trailing-nul", "{}-a", "{}-a\x00", "C strings, or NULs stripped"),
        IdPair("dot-vs-underscore", "{}-a.b", "{}-a_b", "NATS subjects or file names sanitised to '_'"),
        IdPair("dot-vs-space", "{}-a.b", "{}-a b", "subjects or keys sanitising separators"),
        IdPair("dot-vs-slash", "{}-a.b", "{}-a/b", "paths turned into subjects (or back)"),
        IdPair("underscore-vs-space", "{}-a_b", "{}-a b", "spaces replaced by '_'"),
        IdPair("slash-vs-underscore", "{}-a/b", "{}-a_b", "path separators replaced by '_'"),
        IdPair("colon-vs-dash", "{}-a:b", "{}-a-b", "key separators replaced by '-'"),
        IdPair("empty-token-vs-underscore", "{}.a..b", "{}.a._.b", "empty subject tokens filled with '_'"),
        IdPair("trailing-dot-vs-underscore", "{}.a.", "{}.a._", "a trailing empty token filled with '_'"),
        IdPair("prefix-slash", "{}x", "{}x/y", "reads by key prefix (a directory or a range scan)"),
        IdPair("prefix-star", "{}x", "{}x*", "reads by a glob or a subject wildcard"),
        IdPair("prefix-dot", "{}x", "{}x.", "reads by subject prefix ('x.>' or 'x.*')"),
        IdPair("prefix-hash", "{}x", "{}x#y", "a single-table sort key 'EVT#<actor>#<version>' read by begins_with"),
        IdPair("prefix-colon", "{}x", "{}x:y", "Redis-style keys '<actor>:<version>' read by prefix"),
        IdPair("prefix-pipe", "{}x", "{}x|y", "composite keys joined with '|' read by prefix"),
        IdPair("suffix", "{}-account", "{}-account-1", "reads by key prefix without a separator"),
        IdPair("dot-token", "{}.orders", "{}.orders.eu", "subject wildcards ('orders.>')"),
        IdPair("star-wildcard", "{}.orders.*", "{}.orders.eu", "subject wildcards taken from the id"),
        IdPair("gt-wildcard", "{}.orders.>", "{}.orders.eu.1", "subject wildcards taken from the id"),
        IdPair("like-underscore", "{}-order_1", "{}-orderA1", "SQL LIKE without escaping: '_' matches any one character"),
        IdPair("like-percent", "{}-order%", "{}-order-42", "SQL LIKE without escaping: '%' matches anything"),
        IdPair("like-backslash", "{}-a\\_b", "{}-a_b", "SQL LIKE escapes applied to the stored id"),
        IdPair("percent-encoding", "{}/a/b", "{}/a%2Fb", "URL-decoded keys"),
        IdPair("percent-unreserved", "{}-x%41", "{}-xA", "RFC 3986 normalisation (%41 is an unreserved 'A'), "
                                                          "as proxies normalising paths do"),
        IdPair("double-slash", "{}/tenant//order", "{}/tenant/order", "path normalisation (pathlib, an S3 "
                                                                      "prefix mirror) merging slashes"),
        IdPair("dot-segment", "{}/a/./b", "{}/a/b", "path normalisation removing '.' segments"),
        IdPair("dot-dot-segment", "{}/x/../b", "{}/b", "path normalisation resolving '..' segments"),
        IdPair("trailing-slash", "{}/a/", "{}/a", "path normalisation dropping a trailing '/'"),
        IdPair("case", "Order-{}", "order-{}", "case-insensitive collation or lower-cased keys"),
        # Long ids take another path in many keyings (escaped rather than encoded file names, a
        # hashed overflow column): case must still tell them apart there (each id is 205 characters).
        IdPair("long-case", "{}ORDER", "{}order", "long ids kept with their case on a case-insensitive "
                                                  "file system or collation", 200),
        IdPair("case-sharp-s", "{}-straße", "{}-STRASSE", "case folding (ß folds to ss)"),
        IdPair("nfc-vs-nfd", "café-{}", _nfd("café") + "-{}", "NFC or NFD normalisation of keys"),
        IdPair("angstrom-sign", "\u212b-{}", "\u00c5-{}", "NFC normalisation (U+212B is canonically U+00C5)"),
        IdPair("ligature", "\ufb01le-{}", "file-{}", "NFKC or NFKD normalisation (the fi ligature)"),
        IdPair("full-width", "ＡＢＣ-{}", "ABC-{}", "NFKC normalisation (full-width forms)"),
        IdPair("accent", "café-{}", "cafe-{}", "accent-insensitive collations (MariaDB's _ai, SQL Server's AI)"),
        IdPair("kana", "あ-{}", "ア-{}", "kana-insensitive collations (SQL Server without _KS)"),
        IdPair("trailing-space", "{}-account", "{}-account ", "trimmed keys, or PAD SPACE collations"),
        IdPair("leading-space", "account-{}", " account-{}", "trimmed keys"),
        IdPair("trailing-tab", "{}-account", "{}-account\t", "whitespace-trimmed keys"),
        IdPair("trailing-newline", "{}-account", "{}-account\n", "whitespace-trimmed keys"),
        IdPair("nbsp-vs-space", "{}-a b", "{}-a\u00a0b", "Unicode whitespace folded to a space"),
        IdPair("trailing-cr", "{}-account", "{}-account\r", "ids read from a CRLF line protocol with rstrip('\\r\\n')"),
        IdPair("zero-width-space", "{}-ab", "{}-a\u200bb", "invisible (format) characters stripped from keys"),
        IdPair("soft-hyphen", "{}-ab", "{}-a\u00adb", "invisible (format) characters stripped from keys, or a "
                                                      "collation that ignores them"),
        # Equal hashes after any common prefix: keys trusted to a hash without an equality check.
        IdPair("java-hashcode", "{}Aa", "{}BB", "a map keyed by Java's String.hashCode ('Aa' and 'BB' hash alike)"),
        IdPair("crc32", "{}plumless", "{}buckeroo", "an integer key computed as CRC-32 of the id (equal CRCs "
                                                    "stay equal after a common prefix)"),
        # The same after a long prefix: keys that keep the id's head and hash only long ids.
        IdPair("long-crc32", "{}plumless", "{}buckeroo", "long ids keyed as a prefix plus a CRC-32", 200),
        IdPair("long-java-hashcode", "{}Aa", "{}BB", "long ids keyed as a prefix plus String.hashCode", 250),
        # Separators and escapes other layers rewrite.
        IdPair("tab-vs-space", "{}-a\tb", "{}-a b", "XML attribute normalisation (tab, CR, LF become spaces)"),
        IdPair("newline-vs-space", "{}-a\nb", "{}-a b", "XML attribute normalisation, or line-based key files"),
        IdPair("plus-vs-space", "{}-a+b", "{}-a b", "form decoding ('+' is a space in URL queries and Java's "
                                                   "URLDecoder)"),
        IdPair("backslash-vs-slash", "{}-a\\b", "{}-a/b", "file names on Windows, where '\\' is a separator"),
        # Characters beyond the Basic Multilingual Plane: MySQL's utf8mb3 writes each as '?'.
        IdPair("astral-vs-astral", "{}-acct-\U0001f980", "{}-acct-\U0001f389", "a 3-byte UTF-8 charset that "
                                                                              "replaces 4-byte characters with '?'"),
        IdPair("astral-vs-question-mark", "{}-acct-\U0001f980", "{}-acct-?", "a 3-byte UTF-8 charset that "
                                                                             "replaces 4-byte characters with '?'"),
    )
}

# Strings a normaliser, case folder or trimmer changes; event types and data must keep them exactly.
NORMALISATION_SENSITIVE_TEXT: dict[str, str] = {
    "nfc": "café",
    "nfd": _nfd("café"),
    "angstrom-sign": "\u212b",
    "ligature": "\ufb01",
    "full-width": "ＡＢＣ",
    "kelvin-sign": "\u212a",
    "combining-sequence": "a\u0301\u0327",  # NFC reorders and composes it
    "hangul-jamo": "\u1100\u1161",  # NFC composes it to U+AC00
    "surrounding-space": " padded ",
    "nbsp": "a\u00a0b",
    "zero-width-joiner": "👩\u200d💻",
}

# RFC 3339 instants real backends get wrong: local-time conversions around DST changes (in the
# offset the zone has on each side), negative Unix times, int32 and int64-nanosecond overflow,
# leap days, and offsets of every shape.
TIMESTAMPS: dict[str, str] = {
    "new-york-before-spring-forward": "2024-03-10T01:59:59.999999999-05:00",
    "new-york-after-spring-forward": "2024-03-10T03:00:00.000000001-04:00",
    "new-york-fall-back-first": "2024-11-03T01:30:00-04:00",
    "new-york-fall-back-second": "2024-11-03T01:30:00-05:00",
    "berlin-spring-gap-utc": "2024-03-31T01:30:00Z",
    "berlin-fall-back-first": "2024-10-27T02:30:00+02:00",
    "berlin-fall-back-second": "2024-10-27T02:30:00+01:00",
    "sydney-fall-back-first": "2024-04-07T02:30:00+11:00",
    "sydney-fall-back-second": "2024-04-07T02:30:00+10:00",
    # The second of the repeated hour in more zones a server's local time is set to (a DATETIME in
    # local time reads it back as the first, an hour early); each is another zone's first too.
    "chicago-fall-back-second": "2024-11-03T01:30:00-06:00",
    "denver-fall-back-second": "2024-11-03T01:30:00-07:00",
    "los-angeles-fall-back-second": "2024-11-03T01:30:00-08:00",
    "london-fall-back-second": "2024-10-27T01:30:00+00:00",
    "adelaide-fall-back-second": "2024-04-07T02:30:00+09:30",
    "auckland-fall-back-second": "2024-04-07T02:30:00+12:00",
    "santiago-fall-back-second": "2024-04-06T23:30:00-04:00",
    "just-before-the-epoch": "1969-12-31T23:59:59.999999Z",
    "epoch": "1970-01-01T00:00:00Z",
    "year-1900": "1900-01-01T00:00:00.5+01:00",
    "year-1": "0001-01-02T00:00:00Z",
    "int32-seconds-overflow": "2038-01-19T03:14:08Z",
    "int64-nanoseconds-overflow": "2262-04-11T23:47:16.854775808Z",
    "year-9999": "9999-12-30T23:59:59.999999999Z",
    "leap-day": "2024-02-29T23:59:59.999999Z",
    "leap-day-2000": "2000-02-29T12:00:00Z",
    "leap-day-1904": "1904-02-29T00:00:00-03:00",
    "offset-z": "2024-06-01T12:00:00Z",
    "offset-plus-zero": "2024-06-01T12:00:00+00:00",
    "offset-half-hour": "2024-06-01T12:00:00+05:30",
    "offset-quarter-hour": "2024-06-01T12:00:00+05:45",
    "offset-chatham": "2024-06-01T12:00:00+12:45",
    "offset-marquesas": "2024-06-01T12:00:00-09:30",
    "offset-plus-14": "2024-06-01T12:00:00+14:00",
    "offset-minus-12": "2024-06-01T12:00:00-12:00",
    "offset-newfoundland": "2024-06-01T12:00:00.123-03:30",
    # Negative with zero hours: a parser that takes the sign from the hours field reads +00:30.
    "offset-minus-half-hour": "2024-06-01T12:00:00-00:30",
    "offset-minus-quarter-hour": "2024-06-01T12:00:00.5-00:45",
}

# Valid where they are written, but in UTC the year is 0 or 10000: Go keeps them, a store that
# keeps the offset keeps them, and one that converts to UTC first (allowed by ES-READ-003, which asks
# for the instant only) cannot hold them in a Python datetime; so they are ES-READ-004's (a SHOULD).
TIMESTAMPS_BEYOND_UTC_YEARS: dict[str, str] = {
    "year-1-ahead-of-utc": "0001-01-01T00:30:00+01:00",
    "year-9999-behind-utc": "9999-12-31T23:30:00.5-01:00",
}

# One character of each class Go's strconv.Quote (%q) escapes, with its escape.  All were assigned
# (or reserved) by Unicode 3.2 and their general categories never changed, so Go and Python agree
# on them whatever Unicode tables each carries.
QUOTE_ESCAPE_CLASSES: dict[str, tuple[str, str]] = {
    "c0-named": ("\a\b\f\v", "\\a\\b\\f\\v"),
    "c0-hex": ("\x01\x1b\x1f", "\\x01\\x1b\\x1f"),
    "delete": ("\x7f", "\\x7f"),
    "c1-control": ("\x80\x85\x9f", "\\u0080\\u0085\\u009f"),
    "zero-width-joiner": ("\u200d", "\\u200d"),
    "zero-width-space": ("\u200b", "\\u200b"),
    "byte-order-mark": ("\ufeff", "\\ufeff"),
    "soft-hyphen": ("\u00ad", "\\u00ad"),
    "bidi-override": ("\u202e", "\\u202e"),
    "no-break-space": ("\u00a0", "\\u00a0"),
    "em-space": ("\u2003", "\\u2003"),
    "ideographic-space": ("\u3000", "\\u3000"),
    "line-separator": ("\u2028\u2029", "\\u2028\\u2029"),
    "private-use": ("\ue000\uf8ff", "\\ue000\\uf8ff"),
    "supplementary-private-use": ("\U000f0000\U0010fffd", "\\U000f0000\\U0010fffd"),
    "noncharacter": ("\ufffe\uffff", "\\ufffe\\uffff"),
}
