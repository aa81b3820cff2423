"""Certify a store written in any language: drive it as a child process over JSON lines.

The store runs as a command that reads requests from stdin and writes
responses to stdout, one JSON object per line (the protocol is specified in
``docs/process-protocol.md``, its messages in
``schemas/process-protocol.schema.json``).  Records travel in their Go JSON
form, so a Go store needs nothing but ``encoding/json``.

Register it with the zero-argument factory of this module::

    AETHER_STORE_COMMAND="./my-go-store --serve-aether" \\
        aether-conformance run aether_conformance.process_store:from_environment

All handles made in one process share one child (one store); requests are
pipelined with ids, so concurrent writers stay concurrent across the pipe.
A writer process of ``--capability multiprocess`` starts its own copy.

The child is not trusted: its output is read in bounded chunks, every line is
checked against the protocol's rules (:class:`Rule`), and the first violation
marks the store broken, so that every later call fails at once with a message
that names the rule and quotes the line.  Shutdown ends the child's whole
process group.
"""

from __future__ import annotations

import atexit
import enum
import json
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .errors import VersionConflictError
from .limits import MAX_NESTING_DEPTH
from .model import ActorSnapshot, Event

__all__ = [
    "PROTOCOL",
    "COMMAND_ENV",
    "GREETING_TIMEOUT_ENV",
    "MAX_LINE_BYTES_ENV",
    "SHUTDOWN_GRACE_ENV",
    "Rule",
    "StoreProcessError",
    "StoreProcess",
    "ProcessEventStore",
    "ProcessSnapshotStore",
    "from_environment",
]

PROTOCOL = "aether-store/1"
COMMAND_ENV = "AETHER_STORE_COMMAND"
GREETING_TIMEOUT_ENV = "AETHER_STORE_GREETING_TIMEOUT"
MAX_LINE_BYTES_ENV = "AETHER_STORE_MAX_LINE_BYTES"
SHUTDOWN_GRACE_ENV = "AETHER_STORE_SHUTDOWN_GRACE"

# Below the driver's default per-call timeout (10 s), which also bounds the factory.
DEFAULT_GREETING_TIMEOUT = 5.0
# The limit bounds the kit's memory, not the store.  The largest answer of a run is a get_events of
# the large actor: 65 MiB of events in the thorough profile, more on the wire (a child that writes
# spaces after separators, or escapes non-ASCII text): 256 MiB leaves room for both.
DEFAULT_MAX_LINE_BYTES = 256 * 1024 * 1024
DEFAULT_SHUTDOWN_GRACE = 3.0
# A response nests the model's data inside three levels: response, result array, event.
MAX_LINE_DEPTH = MAX_NESTING_DEPTH + 3

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_READ_CHUNK = 64 * 1024
_QUOTE_CHARS = 120
_TRANSCRIPT_LINES = 50
_TRANSCRIPT_LINE_CHARS = 400
_STDERR_TAIL = 20
_EXIT_POLL = 0.2  # seconds between checks, while waiting for a line, that the child still runs


class Rule(enum.Enum):
    """The protocol's rules a child can break; the value is how messages and docs name it."""

    UTF8 = "utf-8"
    LINE_SIZE = "line-size"
    JSON = "json"
    NESTING = "nesting"
    ID = "id"
    INT64 = "int64"
    RESULT_OR_ERROR = "result-or-error"
    ERROR_SCHEMA = "error-schema"


class StoreProcessError(RuntimeError):
    """The store process broke the protocol, exited, or answered with something unusable."""


class _Violation(Exception):
    def __init__(self, rule: Rule, why: str) -> None:
        super().__init__(f'broke aether-store/1 rule "{rule.value}": {why}')
        self.rule, self.why = rule, why


def _env_number(name: str, default: float, kind: type = float) -> Any:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise StoreProcessError(f"{name}={text!r}: must be a positive {kind.__name__}") from None
    if value <= 0:
        raise StoreProcessError(f"{name}={text!r}: must be positive")
    return value


# Characters a terminal or a CI log acts on rather than shows: C0 and C1 controls, DEL, and the
# bidirectional overrides and isolates (which reorder the text around them).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_unprintable(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _quote(raw: bytes | str) -> str:
    """The start of a line as it crossed the pipe: invalid bytes as \\xNN, characters a terminal would
    act on (an escape sequence, a bell, a bidi override) escaped the same way, cut with an ellipsis."""
    text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    text = _UNPRINTABLE.sub(_escape_unprintable, text.rstrip("\r\n"))
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "…"


def wire(value: Any) -> str:
    """A value as the JSON that crosses the pipe (null, not None), cut to a readable length."""
    return _quote(json.dumps(value, ensure_ascii=False, default=str))


class _LineTooLong(Exception):
    def __init__(self, start: bytes) -> None:
        self.start = start


class _LineReader:
    """The lines of a pipe (without their newline), read in bounded chunks.

    Memory stays below ``max_bytes`` plus one chunk: a line that grows past
    the limit raises ``_LineTooLong`` instead of being accumulated.  A last
    line without a newline is returned at end of file; after it, None.
    """

    def __init__(self, fd: int, max_bytes: int, exited: Callable[[], bool]) -> None:
        self.fd, self.max_bytes = fd, max_bytes
        # Whether the process that writes the pipe has exited: what it spawned may still hold the
        # pipe open, and then no end of file would ever come.
        self.exited = exited
        self.buffer = bytearray()
        self.start = self.scanned = 0  # consumed bytes, and bytes known to hold no newline
        self.eof = False

    def next_line(self, deadline: float | None = None) -> bytes | None:
        """The next line; None at end of file; TimeoutError when ``deadline`` (monotonic) passes first."""
        while True:
            cut = self.buffer.find(b"\n", self.scanned)
            if cut >= 0:
                line = bytes(self.buffer[self.start:cut])
                self.start = self.scanned = cut + 1
                if len(line) > self.max_bytes:
                    raise _LineTooLong(line[:_QUOTE_CHARS])
                return line
            if len(self.buffer) - self.start > self.max_bytes:
                raise _LineTooLong(bytes(self.buffer[self.start:self.start + _QUOTE_CHARS]))
            del self.buffer[:self.start]  # once per chunk, not once per line
            self.start, self.scanned = 0, len(self.buffer)
            if self.eof:
                line, self.buffer = (bytes(self.buffer) or None), bytearray()
                self.scanned = 0
                return line
            if not self._readable(deadline):
                self.eof = True
                continue
            chunk = os.read(self.fd, _READ_CHUNK)
            self.eof = not chunk
            self.buffer += chunk


    def _readable(self, deadline: float | None) -> bool:
        """Wait until the pipe can be read (True), or its writer has exited and nothing is left (False)."""
        while True:
            wait = _EXIT_POLL if deadline is None else min(_EXIT_POLL, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError
            if select.select([self.fd], [], [], wait)[0]:
                return True
            if self.exited():
                return bool(select.select([self.fd], [], [], 0)[0])


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _nesting_depth(text: str, limit: int) -> int:
    """The deepest nesting of arrays and objects in a JSON text, without recursion."""
    if text.count("[") + text.count("{") <= limit:
        return 0  # cannot be deeper than it has brackets: the common case costs two scans in C
    depth = deepest = 0
    for token in _STRING_OR_BRACKET.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif mark in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(raw: bytes, where: str) -> Any:
    """One line of the child's stdout as a JSON value, or the rule it breaks."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Violation(Rule.UTF8, f"{where} is not UTF-8 (byte 0x{raw[error.start]:02x} at offset "
                                    f"{error.start}); it begins: {_quote(raw)}") from None
    if _nesting_depth(text, MAX_LINE_DEPTH) > MAX_LINE_DEPTH:
        raise _Violation(Rule.NESTING, f"{where} nests arrays and objects deeper than {MAX_LINE_DEPTH} levels "
                                       f"(data may nest {MAX_NESTING_DEPTH}, the envelope 3); it begins: {_quote(raw)}")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except _Violation as violation:
        raise _Violation(violation.rule, f"{where} holds {violation.why}; it begins: {_quote(raw)}") from None
    except (ValueError, RecursionError) as error:
        raise _Violation(Rule.JSON, f"{where} is not a JSON value ({error}); it begins: {_quote(raw)}") from None


# An integer this long is beyond int64 and beyond float64 (what Go decodes other numbers into).
_MAX_INTEGER_DIGITS = 310


def _parse_int(text: str) -> int:
    # Before Python's own limit on int conversion (4,300 digits), whose message speaks Python.
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        raise _Violation(Rule.INT64, f"an integer of {len(text.lstrip('-'))} digits, beyond int64 and float64")
    return int(text)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int64(value: Any, field: str, line: bytes) -> None:
    if _is_integer(value) and not INT64_MIN <= value <= INT64_MAX:
        raise _Violation(Rule.INT64, f"{field} is {value}, beyond int64; the line begins: {_quote(line)}")


_END = object()  # what _next_message returns when stdout has ended


class _Pending:
    """A request in flight.  ``wake`` is set when it is settled, or when it is its turn to read."""

    __slots__ = ("wake", "settled", "method", "response", "line")

    def __init__(self, method: str) -> None:
        self.wake = threading.Event()
        self.settled = False
        self.method = method
        self.response: dict[str, Any] | None = None
        self.line = b""


class StoreProcess:
    """One running store command, and the multiplexed pipe to it."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.name = shlex.join(command)
        greeting_timeout = _env_number(GREETING_TIMEOUT_ENV, DEFAULT_GREETING_TIMEOUT)
        self.max_line_bytes = _env_number(MAX_LINE_BYTES_ENV, DEFAULT_MAX_LINE_BYTES, int)
        self.shutdown_grace = _env_number(SHUTDOWN_GRACE_ENV, DEFAULT_SHUTDOWN_GRACE)
        self._write_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._next_id = 0
        self._failure: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL)
        self._transcript: deque[str] = deque(maxlen=_TRANSCRIPT_LINES)
        self._closed = False
        self.greeting: dict[str, Any] = {}
        try:
            # A session of its own: the child leads a process group, so shutdown reaches
            # whatever it spawned.  No shell: the command is split with shlex.
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0, start_new_session=True,
            )
        except OSError as error:
            raise StoreProcessError(f"cannot start {self.name}: {error}") from None
        # stdout has no thread of its own: a caller whose answer is due reads it (one at a time,
        # under _read_lock) and hands the others theirs, so a call costs no thread hand-off.
        self._stdout = _LineReader(self._process.stdout.fileno(), self.max_line_bytes, self._has_exited)
        self._stdout_lines = 0
        self._read_lock = threading.Lock()
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="aether-process-store-stderr",
                                               daemon=True)
        self._stderr_reader.start()
        try:
            self._read_greeting(greeting_timeout)
        except StoreProcessError:
            self.close()
            raise

    # -- greeting -------------------------------------------------------------------------
    def _read_greeting(self, timeout: float) -> None:
        expected = f'{{"protocol": "{PROTOCOL}", "snapshots": ...}}'
        with self._read_lock:
            try:
                hello, _ = self._next_message(deadline=time.monotonic() + timeout)
            except TimeoutError:
                raise StoreProcessError(
                    f"{self.name} did not greet within {timeout:g}s (the greeting deadline; set "
                    f"{GREETING_TIMEOUT_ENV} to change it): its first stdout line must be {expected}"
                    f"{self._stderr_note()}"
                ) from None
            except (_Violation, _LineTooLong) as violation:
                raise StoreProcessError(f"store process {self.name} {self._rule_broken(violation, 'stdout')} "
                                        f"in its greeting{self._stderr_note()}") from None
        if hello is _END:
            raise StoreProcessError(f"{self._failure} before greeting{self._stderr_note()}")
        if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL:
            raise StoreProcessError(f"{self.name} speaks {wire(hello)}, not protocol {PROTOCOL!r}")
        self.snapshots = hello.get("snapshots") is True
        self.greeting = hello

    def _group_ends_within(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None and not _group_alive(self._process.pid):
                return True
            time.sleep(0.02)
        return False

    def _has_exited(self) -> bool:
        return self._process.poll() is not None

    def _exit_code(self, wait: float) -> int | None:
        try:
            return self._process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None

    # -- reading ----------------------------------------------------------------------------
    def _rule_broken(self, error: BaseException, stream: str) -> str:
        if isinstance(error, _LineTooLong):
            error = _Violation(Rule.LINE_SIZE, f"wrote a line of more than {self.max_line_bytes} bytes on its {stream} "
                                               f"(the limit; set {MAX_LINE_BYTES_ENV} to change it); it begins: "
                                               f"{_quote(error.start)}")
        return str(error)

    def _next_message(self, deadline: float | None = None) -> tuple[Any, bytes]:
        """The next stdout line, decoded (caller holds _read_lock); at its end, fail the store and return _END."""
        line = self._stdout.next_line(deadline)
        if line is None:
            code = self._exit_code(wait=2.0)
            self._stderr_reader.join(1.0)  # its last words, if it had any
            self._fail(f"exited with code {code}" if code is not None else "closed its stdout")
            return _END, b""
        self._stdout_lines += 1
        self._record("←", line)
        return _decode(line, f"stdout line {self._stdout_lines}"), line

    def _await(self, waiter: _Pending) -> None:
        """Wait for a response: read stdout when no one else does, else until woken."""
        while not waiter.settled:
            if self._read_lock.acquire(blocking=False):
                try:
                    while not waiter.settled:
                        message, line = self._next_message()
                        if message is not _END:
                            self._deliver(message, line)
                except (_Violation, _LineTooLong) as violation:
                    self._fail(self._rule_broken(violation, "stdout"))
                except BaseException as error:  # a bug of the kit's, reported as one rather than lost
                    self._fail(f"could not be read (kit-internal error on its stdout: {type(error).__name__}: {error})")
                finally:
                    self._read_lock.release()
                    self._pass_the_reading_on()
            else:
                waiter.wake.wait()
                waiter.wake.clear()

    def _pass_the_reading_on(self) -> None:
        # After the lock is released: a caller that found it taken is pending, and is woken here.
        with self._pending_lock:
            waiting = next((w for w in self._pending.values() if not w.settled), None)
        if waiting is not None:
            waiting.wake.set()

    def _read_stderr(self) -> None:
        """Keep the last stderr lines.  Stderr is for people, so bytes that are not UTF-8 (a log
        in Latin-1, a C library's message in the locale's encoding) are kept escaped, never a
        protocol error; only a line over the size limit breaks the store, to bound memory."""
        reader = _LineReader(self._process.stderr.fileno(), self.max_line_bytes, self._has_exited)
        try:
            while (line := reader.next_line()) is not None:
                self._stderr_tail.append(_quote(line.decode("utf-8", errors="backslashreplace")))
        except _LineTooLong as violation:
            self._fail(self._rule_broken(violation, "stderr"))
        except BaseException as error:  # a bug of the kit's, reported as one rather than lost
            self._fail(f"could not be read (kit-internal error on its stderr: {type(error).__name__}: {error})")

    def _deliver(self, response: Any, line: bytes) -> None:
        """Match a response to its request, after checking what every response must be."""
        if not isinstance(response, dict):
            raise _Violation(Rule.JSON, f"a response must be a JSON object; the line begins: {_quote(line)}")
        request_id = response.get("id")
        if not _is_integer(request_id):
            raise _Violation(Rule.ID, f"a response's id must be the integer id of its request, not "
                                      f"{wire(request_id)}; the line begins: {_quote(line)}")
        _check_int64(request_id, "id", line)
        error, result = response.get("error"), response.get("result")
        if error is not None and result is not None:
            raise _Violation(Rule.RESULT_OR_ERROR, f"a response carries a result or an error, not both; "
                                                   f"the line begins: {_quote(line)}")
        if error is not None:
            _check_error(error, line)
        with self._pending_lock:
            pending = self._pending.get(request_id)
        if pending is None:
            raise _Violation(Rule.ID, f"id {request_id} answers no request in flight; the line begins: {_quote(line)}")
        if error is None:
            _check_result_numbers(pending.method, result, line)
        with self._pending_lock:
            self._pending.pop(request_id, None)
        pending.response, pending.line = response, line
        pending.settled = True
        pending.wake.set()

    def _fail(self, why: str) -> None:
        with self._pending_lock:
            if self._failure is None:
                self._failure = f"store process {self.name} {why}"
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.settled = True
            waiter.wake.set()

    def _stderr_note(self) -> str:
        return f"; its stderr ends: {' | '.join(self._stderr_tail)}" if self._stderr_tail else ""

    def _record(self, direction: str, line: bytes) -> None:
        text = line.decode("utf-8", "backslashreplace")
        if len(text) > _TRANSCRIPT_LINE_CHARS:
            text = text[:_TRANSCRIPT_LINE_CHARS] + f"… ({len(line)} bytes)"
        self._transcript.append(f"{direction} {text}")

    def transcript(self) -> str:
        """The last lines exchanged with the child (→ sent to it, ← read from it)."""
        return "\n".join(list(self._transcript))

    # -- calls ------------------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Send one request and wait for its response; raise what the response says."""
        waiter = _Pending(method)
        with self._pending_lock:
            if self._failure:
                raise StoreProcessError(self._failure + self._stderr_note())
            self._next_id += 1
            request_id = self._next_id
            self._pending[request_id] = waiter
        message = {"id": request_id, "method": method, "params": params}
        try:
            line = json.dumps(message, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only a \u escape carries it in UTF-8
            line = json.dumps(message).encode("ascii")
        self._record("→", line)
        try:
            with self._write_lock:
                view = memoryview(line + b"\n")
                while view:
                    view = view[self._process.stdin.write(view):]
        except (OSError, ValueError) as error:  # ValueError: stdin already closed by close()
            code = self._exit_code(wait=2.0)
            self._stderr_reader.join(1.0)
            self._fail(f"exited with code {code}" if code is not None else f"stopped reading its stdin ({error})")
        self._await(waiter)  # the driver's per-call timeout bounds this
        if waiter.response is None:
            raise StoreProcessError((self._failure or "store process failed") + self._stderr_note())
        return _outcome(waiter.response, waiter.line)

    # -- shutdown ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close stdin, give the child a grace period, then SIGTERM and SIGKILL its process group."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        try:
            process.stdin.close()  # a raw file: closing takes no lock that a blocked writer holds
        except OSError:
            pass
        self._exit_code(wait=self.shutdown_grace)
        # Even when the child exited on its own, what it spawned may live on in its group.
        for sig, grace in ((signal.SIGTERM, self.shutdown_grace), (signal.SIGKILL, 5.0)):
            if not _group_alive(process.pid) or not _signal_group(process.pid, sig):
                break
            if self._group_ends_within(grace):
                break
        self._exit_code(wait=5.0)
        self._fail("was shut down")
        self._stderr_reader.join(2.0)
        streams = [] if self._stderr_reader.is_alive() else [process.stderr]
        # A caller still reading stdout (abandoned by a timeout) sees its end now; let it finish first.
        if self._read_lock.acquire(timeout=2.0):
            streams.append(process.stdout)
            self._read_lock.release()
        for stream in streams:
            try:
                stream.close()
            except OSError:
                pass


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies left to a non-reaping init do not count)."""
    if not _signal_group(pgid, 0):  # type: ignore[arg-type]
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs: a zombie counts as alive, which costs only the grace period
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _check_error(error: Any, line: bytes) -> None:
    """An error object as the schema describes it (process-protocol.schema.json, response.error)."""
    def broken(why: str) -> _Violation:
        return _Violation(Rule.ERROR_SCHEMA, f"{why}; the line begins: {_quote(line)}")

    if not isinstance(error, dict):
        raise broken(f"error must be an object, not {wire(error)}")
    kind = error.get("kind")
    if kind == "version_conflict":
        conflict = error.get("conflict")
        if not isinstance(conflict, dict):
            raise broken("an error of kind version_conflict carries a conflict object "
                         "{actorId, attemptedVersion, currentVersion, message}")
        # The schema's fields and types; the message's text is ES-ERR-002's to judge, not the pipe's.
        for field, is_valid, described in (
            ("actorId", lambda v: isinstance(v, str), "a string"),
            ("attemptedVersion", _is_integer, "an integer"),
            ("currentVersion", _is_integer, "an integer"),
            ("message", lambda v: isinstance(v, str), "a string"),
        ):
            if not is_valid(conflict.get(field)):
                raise broken(f"error.conflict.{field} must be {described}, not {wire(conflict.get(field))} "
                             "(version-conflict.schema.json)")
            _check_int64(conflict[field], f"error.conflict.{field}", line)
        if set(conflict) - {"actorId", "attemptedVersion", "currentVersion", "message"}:
            raise broken("error.conflict has fields version-conflict.schema.json does not allow: "
                         + ", ".join(sorted(set(conflict) - {"actorId", "attemptedVersion", "currentVersion", "message"})))
        extra = sorted(set(error) - {"kind", "conflict"})
    elif kind in ("invalid_argument", "internal"):
        if not isinstance(error.get("message"), str):
            raise broken(f"an error of kind {kind} carries a message string")
        extra = sorted(set(error) - {"kind", "message"})
    else:
        raise broken(f"error.kind must be version_conflict, invalid_argument or internal, not {wire(kind)}")
    if extra:
        raise broken(f"error has fields the schema does not allow: {', '.join(extra)}")


def _check_result_numbers(method: str, result: Any, line: bytes) -> None:
    """Integers where the protocol requires them must fit in int64 (types are checked per call)."""
    if method == "get_latest_version":
        _check_int64(result, "result", line)
    elif method == "get_events" and isinstance(result, list):
        for position, item in enumerate(result):
            if isinstance(item, dict):
                _check_int64(item.get("version"), f"result[{position}].version", line)
    elif method == "get_latest_snapshot" and isinstance(result, dict):
        _check_int64(result.get("version"), "result.version", line)


def _outcome(response: dict[str, Any], line: bytes) -> Any:
    error = response.get("error")
    if error is None:
        return response.get("result")
    if error["kind"] == "version_conflict":  # _check_error vouched for its shape
        conflict = error["conflict"]
        conflict_error = VersionConflictError(
            actor_id=conflict["actorId"],
            attempted_version=conflict["attemptedVersion"],
            current_version=conflict["currentVersion"],
        )
        if conflict["message"] != conflict_error.message:
            # The store's own text is what ES-ERR-002 judges: keep it, do not regenerate it.
            conflict_error = _ForeignTextConflict(conflict_error, conflict["message"])
        raise conflict_error
    if error["kind"] == "invalid_argument":
        raise ValueError(error["message"])
    raise StoreProcessError(f"the store answered with an internal error: {_quote(line)}")


class _ForeignTextConflict(VersionConflictError):
    """A conflict whose text, as the store wrote it, differs from the seed's."""

    def __init__(self, original: VersionConflictError, text: str) -> None:
        super().__init__(
            actor_id=original.actor_id,
            attempted_version=original.attempted_version,
            current_version=original.current_version,
        )
        self.text = text

    def __str__(self) -> str:
        return self.text


def _unusable(method: str, params: dict[str, Any], result: Any, expected: str, why: str = "") -> StoreProcessError:
    return StoreProcessError(
        f"{method} {wire(params)} answered result {wire(result)}; expected {expected}" + (f" ({why})" if why else "")
    )


class ProcessEventStore:
    """A handle on a store process: the EventStore protocol over JSON lines."""

    def __init__(self, process: StoreProcess) -> None:
        self.process = process
        # Copied into the report's "implementation" field: which binary was certified.
        self.aether_implementation = {
            "protocol": PROTOCOL,
            "command": process.name,
            **{key: str(process.greeting[key]) for key in ("name", "version") if key in process.greeting},
        }

    def transcript(self) -> str:
        """The last JSON lines exchanged with the store process, for a failure's explanation."""
        return self.process.transcript()

    def close(self) -> None:
        _release(self.process)

    def save_event(self, event: Event) -> None:
        self.process.call("save_event", {"event": event.to_dict()})

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        params = {"actorId": actor_id, "fromVersion": from_version}
        result = self.process.call("get_events", params)
        if not isinstance(result, list):
            raise _unusable("get_events", params, result, "an array of events")
        events = []
        for position, item in enumerate(result):
            try:
                events.append(Event.from_dict(item))
            except (ValueError, TypeError, KeyError) as invalid:
                raise _unusable("get_events", params, item, "events matching event.schema.json",
                                f"item [{position}]: {invalid}") from None
        return events

    def get_latest_version(self, actor_id: str) -> int:
        params = {"actorId": actor_id}
        result = self.process.call("get_latest_version", params)
        if not _is_integer(result):
            raise _unusable("get_latest_version", params, result, "an integer (0 for an unknown actor)")
        return result


class ProcessSnapshotStore(ProcessEventStore):
    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        self.process.call("save_snapshot", {"snapshot": snapshot.to_dict()})

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        params = {"actorId": actor_id}
        result = self.process.call("get_latest_snapshot", params)
        if result is None:
            return None
        try:
            return ActorSnapshot.from_dict(result)
        except (ValueError, TypeError, KeyError) as invalid:
            raise _unusable("get_latest_snapshot", params, result,
                            "null or a snapshot matching actor-snapshot.schema.json", str(invalid)) from None


# One child per command and per Python process, shared by the handles made from it and
# shut down when the last of them is closed (or, at the latest, when Python exits).
_processes: dict[str, tuple[StoreProcess, int]] = {}
_processes_lock = threading.Lock()


def _release(process: StoreProcess) -> None:
    with _processes_lock:
        entry = _processes.get(process.name)
        if entry is None or entry[0] is not process:
            return
        if entry[1] > 1:
            _processes[process.name] = (process, entry[1] - 1)
            return
        del _processes[process.name]
    process.close()


def _close_all() -> None:
    with _processes_lock:
        processes = [process for process, _ in _processes.values()]
        _processes.clear()
    for process in processes:
        process.close()


atexit.register(_close_all)


def from_environment() -> ProcessEventStore:
    """Zero-argument factory: a handle on the process run by ``$AETHER_STORE_COMMAND``."""
    command = os.environ.get(COMMAND_ENV)
    if not command:
        raise StoreProcessError(f"set {COMMAND_ENV} to the command that serves the store over {PROTOCOL}")
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise StoreProcessError(f"{COMMAND_ENV}={command!r} cannot be split like a shell would: {error}") from None
    if not argv:
        raise StoreProcessError(f"{COMMAND_ENV} is blank; set it to the command that serves the store")
    with _processes_lock:
        entry = _processes.get(shlex.join(argv))
        if entry is None:
            process = StoreProcess(argv)
            entry = (process, 0)
        process = entry[0]
        _processes[process.name] = (process, entry[1] + 1)
    return ProcessSnapshotStore(process) if process.snapshots else ProcessEventStore(process)
