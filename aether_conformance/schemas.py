"""Load the JSON Schemas and validate instances with format checking on.

The schemas live in the repository's ``schemas/`` directory; the wheel ships
a copy inside this package (hatch ``force-include``).  An editable install or
a source checkout reads the repository copy, so there is one source of truth.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import referencing

__all__ = ["SCHEMA_NAMES", "schema_dir", "load_schema", "registry", "validator_for", "validate", "SchemaValidationError"]

SCHEMA_NAMES = ("event", "actor-snapshot", "version-conflict", "report", "process-protocol")


class SchemaValidationError(ValueError):
    """An instance does not match its schema; the message names the field and the rule."""


def schema_dir() -> Path:
    packaged = Path(__file__).parent / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return json.loads((schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def registry() -> referencing.Registry:
    """Every schema under its $id, so that one schema can $ref another by relative URI."""
    return referencing.Registry().with_resources(
        (schema["$id"], referencing.Resource.from_contents(schema))
        for schema in (load_schema(name) for name in SCHEMA_NAMES)
    )


@cache
def validator_for(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    # FormatChecker only checks "date-time" when rfc3339-validator is installed (a dependency).
    return cls(schema, format_checker=cls.FORMAT_CHECKER, registry=registry())


def validate(name: str, instance: Any) -> None:
    """Raise :class:`SchemaValidationError` naming the first failing field and rule."""
    error = jsonschema.exceptions.best_match(validator_for(name).iter_errors(instance))
    if error is not None:
        where = error.json_path.replace("$", name, 1)
        raise SchemaValidationError(f"{where}: {error.message} (rule: {error.validator})")
