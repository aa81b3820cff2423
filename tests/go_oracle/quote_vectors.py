"""Derive the shipped %q test vectors from what Go recorded (``go_output.json``).

    python -m tests.go_oracle.quote_vectors     rewrites aether_conformance/go_quote_vectors.json

Go's ``strconv.Quote`` keeps a printable rune and escapes any other by a fixed
rule; the oracle records which code points Go escapes (as ranges).  The data
file gives that table, the rule, and per range its first and last code point and
the first one after it with Go's output, so an author in any language can
unit-test their quoting without Go or Python.  tests/test_node_store.py checks
that the shipped file is exactly what this derives.
"""

from __future__ import annotations

import json
from pathlib import Path

ORACLE = Path(__file__).parent / "go_output.json"
SHIPPED = Path(__file__).resolve().parents[2] / "aether_conformance" / "go_quote_vectors.json"
_SPECIAL = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v",
            0x5C: "\\\\", 0x22: '\\"'}


def _go_output(code_point: int, escaped: bool) -> str:
    """What Go writes inside the quotes for one code point, given whether it is printable to Go."""
    if code_point in _SPECIAL:
        return _SPECIAL[code_point]
    if not escaped:
        return chr(code_point)
    if code_point < 0x20 or code_point == 0x7F:
        return f"\\x{code_point:02x}"
    return f"\\u{code_point:04x}" if code_point < 0x10000 else f"\\U{code_point:08x}"


def vectors() -> dict:
    oracle = json.loads(ORACLE.read_text(encoding="utf-8"))
    ranges = [[first, last] for first, last in oracle["quoteEscaped"]]
    escaped = lambda cp: any(first <= cp <= last for first, last in ranges)  # noqa: E731
    points = set(range(0x80))
    for first, last in ranges:
        points |= {first, last, last + 1}
    points = sorted(cp for cp in points if cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF)
    return {
        "description": "Go's %q (strconv.Quote) of single code points, recorded from Go by tests/go_oracle: a "
                       "version conflict's message quotes the actor id this way (ES-ERR-002). Inside the quotes, "
                       "Go writes \\a \\b \\f \\n \\r \\t \\v \\\\ \\\" for those nine characters, keeps every other "
                       "code point outside 'escaped' as it is, and writes one inside 'escaped' as \\xHH when below "
                       "U+0020 or U+007F, \\uHHHH when below U+10000, \\UHHHHHHHH otherwise (lower-case hex). "
                       "'escaped' ranges may span the surrogates U+D800-U+DFFF, which no UTF-8 string holds. "
                       "'vectors' pairs code points with the quoted output; 'samples' pairs whole strings.",
        "go": oracle["go"],
        "unicode": oracle["unicode"],
        "escaped": ranges,
        "vectors": [[cp, '"' + _go_output(cp, escaped(cp)) + '"'] for cp in points],
        "samples": oracle["quoteSamples"],
    }


def render() -> str:
    return json.dumps(vectors(), ensure_ascii=False, indent=None, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    SHIPPED.write_text(render(), encoding="utf-8")
