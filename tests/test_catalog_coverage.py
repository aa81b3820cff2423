"""The catalog, the suite's markers and the spec name the same requirements."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import aether_conformance.suite as suite
from aether_conformance.requirements import REQUIREMENTS, Level


def _cited_ids() -> dict[str, list[str]]:
    """requirement id -> suite tests that cite it, read from the @pytest.mark.requirement markers."""
    cited: dict[str, list[str]] = {}
    for module_info in pkgutil.iter_modules(suite.__path__):
        if not module_info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"{suite.__name__}.{module_info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_"):
                continue
            marks = [m for m in getattr(function, "pytestmark", []) if m.name == "requirement"]
            assert marks, f"{module_info.name}.{name} cites no requirement"
            for mark in marks:
                assert mark.args, f"{module_info.name}.{name} has an empty requirement marker"
                for req_id in mark.args:
                    cited.setdefault(req_id, []).append(f"{module_info.name}.{name}")
    return cited


def test_every_requirement_has_a_test():
    cited = _cited_ids()
    untested = [req.id for req in REQUIREMENTS if req.id not in cited]
    assert not untested, f"catalog requirements no suite test cites: {untested}"


def test_tests_cite_only_catalog_ids():
    known = {req.id for req in REQUIREMENTS}
    unknown = {req_id: tests for req_id, tests in _cited_ids().items() if req_id not in known}
    assert not unknown, f"suite tests cite ids missing from the catalog: {unknown}"


def test_every_requirement_has_an_example_test_of_its_own():
    # Property tests cite many requirements at once; each requirement also needs a focused test.
    # A MAY's test comes first in its marker and also cites the MUSTs that a store accepting the
    # input breaks when it then misbehaves (a MAY cannot decide conformance; they can).
    may = {req.id for req in REQUIREMENTS if req.level is Level.MAY}
    focused = {}
    for module_info in pkgutil.iter_modules(suite.__path__):
        module = importlib.import_module(f"{suite.__name__}.{module_info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            for mark in getattr(function, "pytestmark", []):
                if mark.name == "requirement" and (len(mark.args) == 1 or mark.args[0] in may):
                    focused.setdefault(mark.args[0], name)
    assert not [req.id for req in REQUIREMENTS if req.id not in focused]
