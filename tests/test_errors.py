"""VersionConflictError: the seed's exact text, Go's %q quoting, pickling, JSON form.

The go_quote table is derived from Go's documented rules for strconv.Quote:
``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"`` get short escapes; other bytes below
U+0020 and U+007F become ``\\xNN``; runes that ``unicode.IsPrint`` rejects
(everything outside letters, marks, numbers, punctuation, symbols and the
ASCII space) become ``\\uNNNN`` or ``\\UNNNNNNNN``; invalid UTF-8 bytes become
``\\xNN`` each; everything else, the single quote included, is kept.
"""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aether_conformance.errors import VersionConflictError, go_quote
from aether_conformance.model import INT64_MAX, INT64_MIN
from aether_conformance.schemas import SchemaValidationError, validate


class StoreSpecificConflict(VersionConflictError):
    """A store's own subclass: must survive pickling as itself (module level, so pickle finds it)."""


def conflict(cls=VersionConflictError, actor_id="A", attempted_version=2, current_version=3):
    return cls(actor_id=actor_id, attempted_version=attempted_version, current_version=current_version)


# --- the text ------------------------------------------------------------------------


def test_message_is_the_seeds():
    error = conflict()
    assert str(error) == 'version conflict: actor "A" has version 3, cannot save version 2'
    assert error.message == str(error)
    assert error.args == (str(error),)


def test_message_formats_negative_and_int64_versions_as_go_d():
    error = conflict(actor_id="", attempted_version=INT64_MIN, current_version=INT64_MAX)
    assert str(error) == (
        'version conflict: actor "" has version 9223372036854775807, cannot save version -9223372036854775808'
    )


def test_message_quotes_the_actor_id():
    assert str(conflict(actor_id='a"b\n')) == r'version conflict: actor "a\"b\n" has version 3, cannot save version 2'


def test_fields_and_repr():
    error = conflict(actor_id="order-1", attempted_version=5, current_version=7)
    assert (error.actor_id, error.attempted_version, error.current_version) == ("order-1", 5, 7)
    assert repr(error) == "VersionConflictError(actor_id='order-1', attempted_version=5, current_version=7)"
    assert repr(conflict(StoreSpecificConflict)).startswith("StoreSpecificConflict(")


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        VersionConflictError("A", 2, 3)  # type: ignore[misc]


def test_is_an_exception_that_callers_catch_by_class():
    with pytest.raises(VersionConflictError):
        raise conflict(StoreSpecificConflict)


# --- Go's %q ---------------------------------------------------------------------------

GO_QUOTE_TABLE = [
    ("", '""'),
    ("A", '"A"'),
    ("order-42", '"order-42"'),
    ('say "hi"', r'"say \"hi\""'),
    ("a\\b", r'"a\\b"'),
    ("it's", '"it\'s"'),  # %q of a string leaves single quotes alone
    (" ", '" "'),  # the ASCII space is printable
    ("\a\b\f\n\r\t\v", r'"\a\b\f\n\r\t\v"'),
    ("\x00", r'"\x00"'),
    ("\x1b[0m", r'"\x1b[0m"'),
    ("\x7f", r'"\x7f"'),
    ("\x80", r'"\u0080"'),  # C1 control: not printable, above U+007F so \u
    ("\u00a0", r'"\u00a0"'),  # no-break space: IsPrint accepts only the ASCII space
    ("\u3000", r'"\u3000"'),  # ideographic space, likewise
    ("\u00ad", r'"\u00ad"'),  # soft hyphen, a format character
    ("\u200b", r'"\u200b"'),  # zero-width space, a format character
    ("\ufeff", r'"\ufeff"'),  # byte order mark
    ("\u2028\u2029", r'"\u2028\u2029"'),  # line and paragraph separators
    ("\ue000", r'"\ue000"'),  # private use
    ("\u0378", r'"\u0378"'),  # unassigned
    ("\U000e0001", r'"\U000e0001"'),  # language tag, a format character beyond the BMP
    ("\U0010ffff", r'"\U0010ffff"'),  # noncharacter
    ("é", '"é"'),
    ("e\u0301", '"e\u0301"'),  # combining mark: printable
    ("日本語", '"日本語"'),
    ("🎉", '"🎉"'),
    ("\ufffd", '"\ufffd"'),  # the replacement character is a symbol, printable
    ("\ud800", r'"\xed\xa0\x80"'),  # lone surrogate: Go holds its bytes as invalid UTF-8
    ("a\udc80b", r'"a\xed\xb2\x80b"'),
]


@pytest.mark.parametrize(("text", "quoted"), GO_QUOTE_TABLE)
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted


# --- pickling -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [VersionConflictError, StoreSpecificConflict])
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_fields_and_class(cls, protocol):
    # Errors cross process boundaries (multiprocess writers report back through pickles).
    error = conflict(cls, actor_id="Zoë\n", attempted_version=INT64_MIN, current_version=INT64_MAX)
    back = pickle.loads(pickle.dumps(error, protocol))
    assert type(back) is cls
    assert (back.actor_id, back.attempted_version, back.current_version) == ("Zoë\n", INT64_MIN, INT64_MAX)
    assert str(back) == str(error)


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy])
def test_copy_keeps_fields_and_class(clone):
    back = clone(conflict(StoreSpecificConflict))
    assert type(back) is StoreSpecificConflict and back.to_dict() == conflict().to_dict()


# --- JSON form ----------------------------------------------------------------------


def test_to_dict():
    assert conflict().to_dict() == {
        "actorId": "A",
        "attemptedVersion": 2,
        "currentVersion": 3,
        "message": 'version conflict: actor "A" has version 3, cannot save version 2',
    }


@pytest.mark.parametrize("actor_id", [text for text, _ in GO_QUOTE_TABLE])
def test_to_dict_validates_against_the_schema(actor_id):
    validate("version-conflict", conflict(actor_id=actor_id).to_dict())


@settings(deadline=None)  # the machine is shared; speed is not what this tests
@given(st.text(), st.integers(INT64_MIN, INT64_MAX), st.integers(INT64_MIN, INT64_MAX))
def test_json_round_trip_property(actor_id, attempted, current):
    error = conflict(actor_id=actor_id, attempted_version=attempted, current_version=current)
    wire = error.to_dict()
    validate("version-conflict", wire)
    back = VersionConflictError.from_dict(wire)
    assert back.to_dict() == wire


def test_from_dict_builds_the_calling_class():
    back = StoreSpecificConflict.from_dict(conflict().to_dict())
    assert type(back) is StoreSpecificConflict and str(back) == str(conflict())


@pytest.mark.parametrize(
    "message",
    [
        'version conflict: actor "A" has version 2, cannot save version 3',  # versions swapped
        'version conflict: actor "B" has version 3, cannot save version 2',  # another actor
        'version conflict: actor "A" has version 3, cannot save version 02',  # not Go's %d
    ],
)
def test_from_dict_rejects_a_mismatched_message(message):
    # Same rule name as the schema's errors: the schema cannot relate message to the
    # other fields, so from_dict checks it and reports it the same way.
    with pytest.raises(ValueError, match=r"^version-conflict\.message: must equal the text derived from the other"):
        VersionConflictError.from_dict(conflict().to_dict() | {"message": message})


@pytest.mark.parametrize(
    "message",
    [
        "version conflict: actor 'a\"b' has version 3, cannot save version 2",  # Python's repr quoting
        'version conflict: actor a"b has version 3, cannot save version 2',  # unquoted
        'version conflict: actor "a"b" has version 3, cannot save version 2',  # quoted, not escaped
    ],
)
def test_from_dict_rejects_quoting_that_is_not_gos(message):
    # The schema's pattern refuses these already, naming the field.
    wire = conflict(actor_id='a"b').to_dict() | {"message": message}
    with pytest.raises(SchemaValidationError, match=r"^version-conflict\.message: .*\(rule: pattern\)$"):
        VersionConflictError.from_dict(wire)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attemptedVersion": 2.5}, r"^version-conflict\.attemptedVersion: "),
        ({"currentVersion": 2**63}, r"^version-conflict\.currentVersion: .*\(rule: maximum\)"),
        ({"actorId": None}, r"^version-conflict\.actorId: "),
        ({"extra": 1}, r"^version-conflict: .*'extra'"),
    ],
)
def test_from_dict_errors_name_the_field(change, message):
    with pytest.raises(SchemaValidationError, match=message):
        VersionConflictError.from_dict(conflict().to_dict() | change)
