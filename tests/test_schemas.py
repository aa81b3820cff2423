"""The JSON Schemas: well-formed, self-consistent, and right about Go's wire form.

``tests/schema_corpus/`` holds cases in the style of the JSON-Schema-Test-Suite:
Go output that must be accepted and near misses that must be refused, each
with the reason.  They run through ``aether_conformance.schemas.validate``,
the function the model itself uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from aether_conformance.requirements import CAPABILITIES, REQUIREMENTS
from aether_conformance.schemas import (
    SCHEMA_NAMES,
    SchemaValidationError,
    load_schema,
    schema_dir,
    validate,
    validator_for,
)

CORPUS_DIR = Path(__file__).parent / "schema_corpus"
CORPUS_NAMES = ("event", "actor-snapshot", "version-conflict")


def _corpus(name: str) -> list[dict]:
    return json.loads((CORPUS_DIR / f"{name}.json").read_text(encoding="utf-8"))


CORPUS = [
    pytest.param(name, case, id=f"{name}: {case['description']}")
    for name in CORPUS_NAMES
    for case in _corpus(name)
]


def _without_formats(name: str) -> jsonschema.protocols.Validator:
    # The same schema with format checking off: what a validator that ignores
    # "format" (the 2020-12 default) would conclude.
    schema = load_schema(name)
    return jsonschema.validators.validator_for(schema)(schema)


# --- the schemas themselves ---------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_has_identity_and_documentation(name):
    schema = load_schema(name)
    assert schema["$id"] == f"https://aether-conformance.dev/schemas/{name}.schema.json"
    assert schema["title"].strip()
    assert schema["description"].strip()
    assert schema["examples"], f"{name}: examples must not be empty"


def test_every_schema_file_is_known():
    on_disk = {path.name.removesuffix(".schema.json") for path in schema_dir().glob("*.schema.json")}
    assert on_disk == set(SCHEMA_NAMES)


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, index) for name in SCHEMA_NAMES for index in range(len(load_schema(name)["examples"]))],
)
def test_schema_examples_validate(name, index):
    validate(name, load_schema(name)["examples"][index])


def test_timestamp_definitions_agree():
    # Each schema is self-contained (no cross-file $ref to resolve), so the
    # shared time.Time definition is written twice and must not drift.
    assert load_schema("event")["$defs"]["goTime"] == load_schema("actor-snapshot")["$defs"]["goTime"]


def test_report_capabilities_are_the_catalogs():
    items = load_schema("report")["properties"]["capabilities"]["items"]
    assert set(items["enum"]) == set(CAPABILITIES)


def test_report_requirement_id_pattern_matches_every_catalog_id():
    item = load_schema("report")["$defs"]["requirementOutcome"]
    id_validator = jsonschema.Draft202012Validator(item["properties"]["id"])
    for req in REQUIREMENTS:
        assert id_validator.is_valid(req.id), req.id
    assert set(item["properties"]["level"]["enum"]) == {req.level.value for req in REQUIREMENTS}


# --- the corpus ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "case"), CORPUS)
def test_corpus_case(name, case):
    assert set(case) == {"description", "valid", "instance", "reason"}
    if case["valid"]:
        validate(name, case["instance"])
    else:
        with pytest.raises(SchemaValidationError) as raised:
            validate(name, case["instance"])
        # Every message starts with where it failed, rooted at the schema's name.
        assert str(raised.value).startswith(name), str(raised.value)


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_corpus_has_both_kinds_and_unique_descriptions(name):
    cases = _corpus(name)
    assert {case["valid"] for case in cases} == {True, False}
    descriptions = [case["description"] for case in cases]
    assert len(descriptions) == len(set(descriptions))


# --- format checking is really on ---------------------------------------------------


def test_date_time_format_checker_is_installed():
    # jsonschema registers "date-time" only when rfc3339-validator imports;
    # without it every date-time string would pass silently.
    assert "date-time" in validator_for("event").format_checker.checkers


@pytest.mark.parametrize(
    "timestamp",
    ["2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2023-02-29T12:00:00.5+05:30", "2024-01-01T24:00:00Z"],
)
@pytest.mark.parametrize("name", ["event", "actor-snapshot"])
def test_impossible_dates_are_refused_by_format_checking(name, timestamp):
    instance = next(case["instance"] for case in _corpus(name) if case["valid"]) | {"timestamp": timestamp}
    # The pattern alone lets it through: only format checking can refuse it.
    assert _without_formats(name).is_valid(instance)
    with pytest.raises(SchemaValidationError, match=rf"^{name}\.timestamp: .*\(rule: format\)$"):
        validate(name, instance)


@pytest.mark.parametrize("name", ["event", "actor-snapshot"])
def test_corpus_relies_on_format_checking_for_some_cases(name):
    # The invalid cases a format-blind validator would accept are exactly the
    # impossible dates; each must be refused with rule "format".
    loose = _without_formats(name)
    format_only = [case for case in _corpus(name) if not case["valid"] and loose.is_valid(case["instance"])]
    assert {case["instance"]["timestamp"][:10] for case in format_only} >= {"2024-13-01", "2024-02-30"}
    for case in format_only:
        with pytest.raises(SchemaValidationError, match=r"\(rule: format\)$"):
            validate(name, case["instance"])


# --- error messages name the field and the rule -------------------------------------

_EVENT = _corpus("event")[0]["instance"]


@pytest.mark.parametrize(
    ("name", "instance", "expected"),
    [
        ("event", _EVENT | {"version": "1"}, r"^event\.version: .*\(rule: type\)$"),
        ("event", _EVENT | {"version": 0}, r"^event\.version: .*\(rule: minimum\)$"),
        ("event", _EVENT | {"version": 2**63}, r"^event\.version: .*\(rule: maximum\)$"),
        ("event", _EVENT | {"commandId": ""}, r"^event\.commandId: .*\(rule: minLength\)$"),
        ("event", _EVENT | {"data": []}, r"^event\.data: .*\(rule: type\)$"),
        # Ten fractional digits are RFC 3339 but not Go: only the pattern refuses them.
        ("event", _EVENT | {"timestamp": "2024-01-01T00:00:00.1234567891Z"}, r"^event\.timestamp: .*\(rule: pattern\)$"),
        ("event", _EVENT | {"extra": 1}, r"^event: .*'extra'.*\(rule: additionalProperties\)$"),
        ("event", {k: v for k, v in _EVENT.items() if k != "actorId"}, r"^event: 'actorId' .*\(rule: required\)$"),
        (
            "actor-snapshot",
            {"actorId": "a", "version": 1, "state": "x", "timestamp": "2024-01-01T00:00:00Z"},
            r"^actor-snapshot\.state: .*\(rule: type\)$",
        ),
        (
            "version-conflict",
            {"actorId": "A", "attemptedVersion": 2.5, "currentVersion": 3, "message": "x"},
            r"^version-conflict\.(attemptedVersion|message): ",
        ),
        (
            "report",
            load_schema("report")["examples"][0] | {"conformant": True},
            r"^report\.requirements: .*\(rule: not\)$",
        ),
        (
            "report",
            load_schema("report")["examples"][0] | {"schemaVersion": 1},
            r"^report\.schemaVersion: .*\(rule: const\)$",
        ),
    ],
)
def test_error_names_field_and_rule(name, instance, expected):
    with pytest.raises(SchemaValidationError, match=expected):
        validate(name, instance)


def test_nested_error_names_the_nested_field():
    report = load_schema("report")["examples"][0]
    broken = json.loads(json.dumps(report))
    broken["requirements"][1]["outcome"] = "crashed"
    with pytest.raises(SchemaValidationError, match=r"^report\.requirements\[1\]\.outcome: .*\(rule: enum\)$"):
        validate("report", broken)


def test_report_skipped_requirement_needs_a_reason():
    report = json.loads(json.dumps(load_schema("report")["examples"][0]))
    report["requirements"][2]["reason"] = None
    with pytest.raises(SchemaValidationError, match=r"^report\.requirements\[2\]\.reason: "):
        validate("report", report)


def test_report_started_must_be_a_date_time_with_offset():
    report = load_schema("report")["examples"][0] | {"started": "2024-06-01T12:00:00.123456"}
    with pytest.raises(SchemaValidationError, match=r"^report\.started: .*\(rule: format\)$"):
        validate("report", report)
