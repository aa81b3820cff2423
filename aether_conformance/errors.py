"""The version conflict error, with the Go seed's exact message text."""

from __future__ import annotations

from typing import Any

__all__ = ["VersionConflictError", "go_quote"]

_GO_ESCAPES = {
    "\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n",
    "\r": r"\r", "\t": r"\t", "\v": r"\v", "\\": r"\\", '"': r"\"",
}


def go_quote(text: str) -> str:
    """Quote ``text`` as Go's ``%q`` verb (``strconv.Quote``) does.

    Printable runes stay as they are; the rest become ``\\x``, ``\\u`` or
    ``\\U`` escapes.  A lone surrogate (which Go could only hold as invalid
    UTF-8) becomes the ``\\x`` escapes of its bytes, as Go writes them.
    """
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif 0xD800 <= ord(char) <= 0xDFFF:
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def seed_text(actor_id: str, attempted_version: int, current_version: int) -> str:
    """The Go seed's text of a conflict with these fields (ES-ERR-002)."""
    return f"version conflict: actor {go_quote(actor_id)} has version {current_version}, cannot save version {attempted_version}"


class VersionConflictError(Exception):
    """A save was rejected because its version is not above the actor's latest.

    In Go the seed has a sentinel (``ErrVersionConflict``) and a detail type
    (``*VersionConflictError``); in Python this one class plays both roles:
    stores raise it (or a subclass), clients catch it.
    """

    def __init__(self, *, actor_id: str, attempted_version: int, current_version: int) -> None:
        self.actor_id = actor_id
        self.attempted_version = attempted_version
        self.current_version = current_version
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return seed_text(self.actor_id, self.attempted_version, self.current_version)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(actor_id={self.actor_id!r}, "
            f"attempted_version={self.attempted_version!r}, current_version={self.current_version!r})"
        )

    def __reduce__(self):
        # Keyword-only constructors do not survive Exception's default pickling.
        return (_rebuild_conflict, (type(self), self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON (``schemas/version-conflict.schema.json``)."""
        return {
            "actorId": self.actor_id,
            "attemptedVersion": self.attempted_version,
            "currentVersion": self.current_version,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionConflictError:
        from .schemas import validate

        validate("version-conflict", data)
        error = cls(
            actor_id=data["actorId"],
            attempted_version=data["attemptedVersion"],
            current_version=data["currentVersion"],
        )
        if data["message"] != error.message:
            raise ValueError(
                f"version-conflict.message: must equal the text derived from the other fields, "
                f"{error.message!r}; got {data['message']!r}"
            )
        return error


def _rebuild_conflict(cls: type[VersionConflictError], data: dict[str, Any]) -> VersionConflictError:
    return cls(
        actor_id=data["actorId"],
        attempted_version=data["attemptedVersion"],
        current_version=data["currentVersion"],
    )
