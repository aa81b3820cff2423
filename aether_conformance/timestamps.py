"""Timestamps with Go's nanosecond precision and Go's RFC 3339 text form.

Go's ``time.Time`` carries nanoseconds; Python's ``datetime`` stops at
microseconds.  :class:`Timestamp` is a ``datetime`` that keeps the three extra
digits, so that ``Event.from_dict(go_json).to_dict() == go_json`` holds for
what Go's ``encoding/json`` writes (``time.RFC3339Nano``: trailing fractional
zeros trimmed, ``Z`` for a zero offset).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["Timestamp", "format_go_time", "parse_go_time", "utc_microseconds", "utc_nanoseconds"]

# RFC 3339 date-time, as Go's time.Time.UnmarshalJSON accepts it.
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt]"
    r"(?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})\Z"
)


class Timestamp(datetime):
    """An aware ``datetime`` with the nanoseconds below its microsecond.

    ``nanosecond`` is 0-999: the digits after ``microsecond``.  Two
    timestamps are equal when they denote the same instant to the nanosecond.
    A plain ``datetime`` compares equal to a ``Timestamp`` whose
    ``nanosecond`` is 0.
    """

    _nanosecond: int = 0

    @classmethod
    def from_datetime(cls, value: datetime, nanosecond: int = 0) -> Timestamp:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must be timezone-aware (Go's time.Time always has a location)")
        if not 0 <= nanosecond <= 999:
            raise ValueError(f"nanosecond must be in 0..999, got {nanosecond}")
        stamp = cls(
            value.year, value.month, value.day, value.hour, value.minute,
            value.second, value.microsecond, tzinfo=value.tzinfo, fold=value.fold,
        )
        stamp._nanosecond = nanosecond
        return stamp

    @property
    def nanosecond(self) -> int:
        return self._nanosecond

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, datetime):
            return NotImplemented
        return datetime.__eq__(self, other) and self._nanosecond == _nanosecond_of(other)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        # Equal objects must hash equal, and a plain datetime equals a Timestamp
        # whose nanosecond is 0: that one must hash as the datetime does.
        if not self._nanosecond:
            return datetime.__hash__(self)
        return hash((datetime.__hash__(self), self._nanosecond))

    # datetime's ordering stops at microseconds; without these, two timestamps
    # 1ns apart would be neither equal nor ordered, and sorted() would misplace them.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, datetime):
            return NotImplemented
        if datetime.__eq__(self, other):
            return self._nanosecond < _nanosecond_of(other)
        return datetime.__lt__(self, other)

    def __le__(self, other: object) -> bool:
        result = self.__gt__(other)
        return result if result is NotImplemented else not result

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, datetime):
            return NotImplemented
        if datetime.__eq__(self, other):
            return self._nanosecond > _nanosecond_of(other)
        return datetime.__gt__(self, other)

    def __ge__(self, other: object) -> bool:
        result = self.__lt__(other)
        return result if result is NotImplemented else not result

    def __reduce_ex__(self, protocol):
        # datetime's own __reduce_ex__ would drop the nanoseconds.
        return (_rebuild_timestamp, (format_go_time(self),))

    def __repr__(self) -> str:
        return f"Timestamp.parse({format_go_time(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        return parse_go_time(text)


def _nanosecond_of(value: datetime) -> int:
    return value.nanosecond if isinstance(value, Timestamp) else 0


def _rebuild_timestamp(text: str) -> Timestamp:
    return parse_go_time(text)


def utc_microseconds(value: datetime) -> int:
    """The instant of an aware datetime, in whole microseconds after 0001-01-01T00:00:00Z.

    Arithmetic, not ``astimezone``: 0001-01-01T00:30:00+01:00 is a valid time whose UTC date is
    in year 0 (and 9999-12-31T23:30:00-01:00 one in year 10000), which datetime cannot hold.
    """
    wall = datetime(value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)
    return (wall - datetime.min - value.utcoffset()) // timedelta(microseconds=1)


def utc_nanoseconds(value: datetime) -> int:
    """The instant of an aware datetime (a Timestamp's nanoseconds included), in nanoseconds after
    0001-01-01T00:00:00Z."""
    return utc_microseconds(value) * 1000 + _nanosecond_of(value)


def parse_go_time(text: str) -> Timestamp:
    """Parse an RFC 3339 date-time with up to nine fractional digits."""
    if not isinstance(text, str):
        raise TypeError(f"expected an RFC 3339 string, got {type(text).__name__}")
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time with at most 9 fractional digits: {text!r}")
    fraction = (match["fraction"] or "").ljust(9, "0")
    offset = match["offset"]
    if offset in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"UTC offset out of range in {text!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        base = datetime.fromisoformat(f"{match['date']}T{match['time']}").replace(
            microsecond=int(fraction[:6]), tzinfo=tz
        )
    except ValueError as error:
        raise ValueError(f"invalid date-time {text!r}: {error}") from None
    return Timestamp.from_datetime(base, int(fraction[6:]))


def format_go_time(value: datetime) -> str:
    """Format like Go's ``time.Time.MarshalJSON`` (``RFC3339Nano``).

    An offset with seconds (a zone's local mean time, +00:19:32) has no RFC 3339 form: Go cuts it
    to +00:19 and so moves the instant; here the same instant is written in UTC instead.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware (Go's time.Time always has a location)")
    nanos = value.microsecond * 1000 + (value.nanosecond if isinstance(value, Timestamp) else 0)
    if value.utcoffset() % timedelta(minutes=1):
        value = value.astimezone(timezone.utc)  # keeps the microsecond; nanos were taken above
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.year < 1000:  # strftime does not zero-pad years below 1000 on every platform
        text = f"{value.year:04d}" + text[text.index("-"):]
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = value.utcoffset()
    if not offset:
        return text + "Z"
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{text}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"
