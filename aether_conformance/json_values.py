"""JSON values as Go's ``encoding/json`` carries them: checking, comparing and copying.

Every walk here is iterative, with its own stack: data may nest
:data:`~aether_conformance.limits.MAX_NESTING_DEPTH` (512) levels, and a
recursive walk (or ``copy.deepcopy``, which takes two frames a level) would
reach Python's recursion limit of 1,000 before that.  Only ``dict`` and
``list`` are walked into; other objects are leaves.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .limits import MAX_NESTING_DEPTH

__all__ = ["check_json_value", "check_text", "json_equal", "copy_json", "plain_scalars_only"]

# The largest int float() turns into a finite float64 without rounding; beyond it float() decides.
_FLOAT64_MAX_INT = int(sys.float_info.max)
_KEY_SHOWN = 64  # characters of a key quoted in a field path
_STEPS_SHOWN = 4  # keys and indexes shown at each end of a deep field path


def _key(key: Any) -> str:
    """A dict key or list index as a field path shows it: quoted, shortened, never failing."""
    if isinstance(key, str):
        return repr(key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "…")
    if isinstance(key, int) and key.bit_length() > 64:  # repr of an int beyond 4,300 digits raises
        return f"<an int of {key.bit_length()} bits>"
    return repr(key)


def _field(where: str, link: tuple | None) -> str:
    """``where`` followed by the keys and indexes of ``link`` (built only when an error is raised)."""
    steps = []
    while link is not None:
        link, key, _ = link
        steps.append(f"[{_key(key)}]")
    steps.reverse()
    if len(steps) > 2 * _STEPS_SHOWN:  # a path 512 levels deep would drown the message
        steps[_STEPS_SHOWN:-_STEPS_SHOWN] = [f"[…{len(steps) - 2 * _STEPS_SHOWN} levels…]"]
    return where + "".join(steps)


def _check_text(field: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{field}: lone surrogate {text[error.start]!r} at index {error.start} is not Unicode text "
            "(Go strings are UTF-8)"
        ) from None


def check_text(field: str, text: str) -> None:
    """Refuse a lone surrogate in ``text``, naming ``field``; a no-op for ASCII."""
    if not text.isascii():
        _check_text(field, text)


def _check_scalar(field: Callable[[], str], value: Any, json_only: bool) -> bool:
    """Check a leaf; return True when ``value`` is a dict or list to walk into.

    ``field`` builds the field's name, so that no name is built for the values that pass.
    """
    if isinstance(value, str):
        if not value.isascii():
            _check_text(field(), value)
        return False
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        if -_FLOAT64_MAX_INT <= value <= _FLOAT64_MAX_INT:
            return False
        try:
            float(value)
        except OverflowError:
            # Never format the int itself: beyond 4,300 digits str() raises a ValueError of its own.
            raise ValueError(
                f"{field()}: an integer of {value.bit_length()} bits is beyond float64 range (about ±1.8e308); "
                "Go's encoding/json cannot decode it (numbers in data become float64)"
            ) from None
        return False
    if isinstance(value, float):
        if not math.isfinite(value):
            name = "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
            raise ValueError(f"{field()}: {name} is not valid JSON (Go's encoding/json refuses NaN and infinities)")
        return False
    if isinstance(value, (dict, list)):
        return True
    if json_only:
        raise ValueError(
            f"{field()}: a {type(value).__name__} is not a JSON value "
            "(allowed: dict with str keys, list, str, int, float, bool, None)"
        )
    return False


_NO_CHECK_NEEDED = frozenset({bool, type(None)})


def _plain_leaves(items: Any) -> bool:
    """Whether ``items`` are leaves that pass every check, tested at C speed (a list of 250,000
    numbers): ints within float64 range, finite floats, ASCII strings, booleans and None, each kind
    alone.  False says only "check item by item"."""
    types = set(map(type, items))
    if types <= _NO_CHECK_NEEDED:
        return True
    if types == {int}:
        return -_FLOAT64_MAX_INT <= min(items) and max(items) <= _FLOAT64_MAX_INT
    if types == {str}:
        return "".join(items).isascii()
    if types == {float}:
        return all(map(math.isfinite, items))
    return False


def _too_deep(where: str, root: Any, link: tuple) -> ValueError:
    """The error for a container beyond the depth limit: a cycle if one of its ancestors repeats."""
    links = []
    while link is not None:
        links.append(link)
        link = link[0]
    links.reverse()
    seen = {id(root)}
    for step in links:
        if id(step[2]) in seen:
            return ValueError(f"{_field(where, step)}: contains itself (a circular reference is not JSON)")
        seen.add(id(step[2]))
    return ValueError(
        f"{_field(where, links[-1])}: nested deeper than {MAX_NESTING_DEPTH} levels of objects and arrays, "
        "the most the kit carries (aether_conformance.limits.MAX_NESTING_DEPTH)"
    )


def check_json_value(where: str, value: Any, *, json_only: bool = False) -> None:
    """Raise ``ValueError`` naming the field when ``value`` is not something Go's encoding/json carries.

    Refused: NaN and ±infinity, integers beyond float64 range, lone surrogates
    in strings and keys, nesting of dicts and lists deeper than
    :data:`MAX_NESTING_DEPTH` (``value`` itself is level 1), and circular
    references.  With ``json_only``, also every type that is not JSON (sets,
    tuples, bytes, other objects) and dict keys that are not ``str``;
    without it such objects are leaves, left to whoever stores them.
    """
    if not _check_scalar(lambda: where, value, json_only):
        return
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        container, depth, link = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise _too_deep(where, value, link)
        is_dict = isinstance(container, dict)
        if _plain_leaves(container.values() if is_dict else container) and (
                not is_dict or set(map(type, container)) == {str} and "".join(container).isascii()):
            continue
        for key, item in container.items() if is_dict else enumerate(container):
            if is_dict:
                if isinstance(key, str):
                    if not key.isascii():
                        _check_text(f"{_field(where, link)} key {_key(key)}", key)
                elif json_only:
                    raise ValueError(
                        f"{_field(where, link)}: key {_key(key)} is a {type(key).__name__}; JSON object keys must be str"
                    )
            if _check_scalar(lambda: _field(where, (link, key, item)), item, json_only):
                stack.append((item, depth + 1, (link, key, item)))


_FLOAT64_EXACT = 2**53


def json_equal(left: Any, right: Any) -> bool:
    """Deep equality of JSON values as Go sees them.

    Stricter than ``==`` where Python is loose (``True == 1``), looser where
    Go is: every JSON number is a float64 in Go, so ``1`` equals ``1.0``,
    ``27922476728982610`` equals ``2.792247672898261e16`` (the same float64),
    and ``2**53 + 1`` equals ``2**53`` (integers beyond 2^53 are compared as
    the float64s they round to).
    """
    pairs = [(left, right)]
    while pairs:
        left, right = pairs.pop()
        if isinstance(left, bool) or isinstance(right, bool):
            if not (isinstance(left, bool) and isinstance(right, bool) and left == right):
                return False
        elif isinstance(left, (int, float)) and isinstance(right, (int, float)):
            if isinstance(left, float) or isinstance(right, float):
                # Go writes an integral float64 below 1e21 without a point (2.5e16 as 25000000000000000),
                # which Python reads back as an int: compare as the float64s Go holds.
                try:
                    if float(left) != float(right):
                        return False
                except OverflowError:
                    return False
            elif left != right:
                # Integers beyond 2^53 need not round-trip exactly (a Go store holds them as float64):
                # they must come back as the same float64.
                if max(abs(left), abs(right)) <= _FLOAT64_EXACT:
                    return False
                try:
                    if float(left) != float(right):
                        return False
                except OverflowError:
                    return False
        elif isinstance(left, dict) and isinstance(right, dict):
            if left.keys() != right.keys():
                return False
            if not _same_scalars(left, right, left.values(), right.values()):
                pairs.extend((left[key], right[key]) for key in left)
        elif isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                return False
            if not _same_scalars(left, right, left, right):
                pairs.extend(zip(left, right))
        elif left is None or right is None:
            if not (left is None and right is None):
                return False
        elif not (type(left) is type(right) and left == right):
            return False
    return True


_IMMUTABLE_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain_scalars_only(items: Iterable[Any]) -> bool:
    """Whether ``items`` are all plain ``str``, ``int``, ``float``, ``bool`` or None: tested at C speed,
    so that a list of 250,000 numbers is copied or compared whole rather than item by item."""
    return set(map(type, items)) <= _IMMUTABLE_SCALARS


def _same_scalars(left: Any, right: Any, left_items: Iterable[Any], right_items: Iterable[Any]) -> bool:
    """True when the containers ``left`` and ``right`` hold plain scalars of the same types in the same
    order and are equal by ``==``, which settles their JSON equality; False says only "compare item
    by item"."""
    types = list(map(type, left_items))
    return set(types) <= _IMMUTABLE_SCALARS and types == list(map(type, right_items)) and left == right


def copy_json(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of ``value`` that walks plain dicts and lists without recursion.

    Other objects (dict subclasses included) are copied by ``copy.deepcopy``
    with the same ``memo``, so shared and circular references stay shared.
    """
    if memo is None:
        memo = {}

    def clone(item: Any) -> tuple[Any, bool]:
        """The copy of ``item`` and whether its contents still have to be filled in."""
        cls = type(item)
        if cls in _IMMUTABLE_SCALARS:  # what deepcopy would return anyway, without its dispatch
            return item, False
        if cls is not dict and cls is not list:
            return copy.deepcopy(item, memo), False
        if id(item) in memo:
            return memo[id(item)], False
        fresh: Any = {} if cls is dict else []
        memo[id(item)] = fresh
        return fresh, True

    root, fill = clone(value)
    pending = [(value, root)] if fill else []
    while pending:
        source, target = pending.pop()
        if type(source) is dict:
            if plain_scalars_only(source.values()):
                target.update(source)
                continue
            for key, item in source.items():
                target[key], fill = clone(item)
                if fill:
                    pending.append((item, target[key]))
        elif plain_scalars_only(source):
            target.extend(source)
        else:
            for item in source:
                child, fill = clone(item)
                target.append(child)
                if fill:
                    pending.append((item, child))
    return root
