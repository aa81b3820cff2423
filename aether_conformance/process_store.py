"""Certify a store written in any language: drive it as a child process over JSON lines.

The store runs as a command that reads requests from stdin and writes
responses to stdout, one JSON object per line (the protocol is specified in
``docs/process-protocol.md``, its messages in
``schemas/process-protocol.schema.json``).  Records travel in their Go JSON
form, so a Go store needs nothing but ``encoding/json``.

Register it with the zero-argument factory of this module::

    AETHER_STORE_COMMAND="./my-go-store --serve-aether" \\
        aether-conformance run aether_conformance.process_store:from_environment

All handles made in one run share one child process (one store); requests are
pipelined with ids, so concurrent writers stay concurrent across the pipe.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import subprocess
import threading
from collections import deque
from typing import Any

from .errors import VersionConflictError
from .model import ActorSnapshot, Event

__all__ = ["PROTOCOL", "COMMAND_ENV", "StoreProcess", "ProcessEventStore", "ProcessSnapshotStore", "from_environment"]

PROTOCOL = "aether-store/1"
COMMAND_ENV = "AETHER_STORE_COMMAND"


class StoreProcessError(RuntimeError):
    """The store process broke the protocol, or exited."""


class _Pending:
    __slots__ = ("done", "response")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.response: dict[str, Any] | None = None


class StoreProcess:
    """One running store command, and the multiplexed pipe to it."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1,
        )
        self._write_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._next_id = 0
        self._failure: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        hello_line = self._process.stdout.readline()
        try:
            hello = json.loads(hello_line)
        except json.JSONDecodeError:
            self.close()
            raise StoreProcessError(
                f"{shlex.join(command)} did not greet with a JSON line {{\"protocol\": \"{PROTOCOL}\", ...}}; "
                f"it wrote {hello_line[:200]!r}{self._stderr_note()}"
            ) from None
        if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL:
            self.close()
            raise StoreProcessError(f"{shlex.join(command)} speaks {hello!r}, not protocol {PROTOCOL!r}")
        self.snapshots = hello.get("snapshots") is True
        threading.Thread(target=self._read_responses, name="aether-process-store-reader", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="aether-process-store-stderr", daemon=True).start()

    def _stderr_note(self) -> str:
        return f"; its stderr ends: {' | '.join(self._stderr_tail)}" if self._stderr_tail else ""

    def _read_stderr(self) -> None:
        for line in self._process.stderr:
            self._stderr_tail.append(line.rstrip())

    def _read_responses(self) -> None:
        for line in self._process.stdout:
            try:
                response = json.loads(line)
                pending = self._pending.pop(response["id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                self._fail(f"wrote a line that is not a response to a pending request: {line[:200]!r}")
                return
            pending.response = response
            pending.done.set()
        self._fail(f"exited with code {self._process.wait()}")

    def _fail(self, why: str) -> None:
        with self._pending_lock:
            self._failure = f"store process {shlex.join(self.command)} {why}"
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.done.set()

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Send one request and wait for its response; raise what the response says."""
        waiter = _Pending()
        with self._pending_lock:
            if self._failure:
                raise StoreProcessError(self._failure + self._stderr_note())
            self._next_id += 1
            request_id = self._next_id
            self._pending[request_id] = waiter
        line = json.dumps({"id": request_id, "method": method, "params": params}, ensure_ascii=False)
        try:
            with self._write_lock:
                self._process.stdin.write(line + "\n")
                self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise StoreProcessError(f"cannot write to {shlex.join(self.command)}: {error}") from None
        waiter.done.wait()  # the driver's per-call timeout bounds this
        if waiter.response is None:
            raise StoreProcessError((self._failure or "store process failed") + self._stderr_note())
        return _outcome(waiter.response)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _outcome(response: dict[str, Any]) -> Any:
    error = response.get("error")
    if error is None:
        return response.get("result")
    kind = error.get("kind") if isinstance(error, dict) else None
    if kind == "version_conflict":
        conflict = error["conflict"]
        conflict_error = VersionConflictError(
            actor_id=conflict["actorId"],
            attempted_version=conflict["attemptedVersion"],
            current_version=conflict["currentVersion"],
        )
        if conflict.get("message") != conflict_error.message:
            # The store's own text is what ES-ERR-002 judges: keep it, do not regenerate it.
            conflict_error = _ForeignTextConflict(conflict_error, conflict.get("message"))
        raise conflict_error
    if kind == "invalid_argument":
        raise ValueError(error.get("message", "invalid argument"))
    raise StoreProcessError(f"the store reported an error: {error!r}")


class _ForeignTextConflict(VersionConflictError):
    """A conflict whose text, as the store wrote it, differs from the seed's."""

    def __init__(self, original: VersionConflictError, text: Any) -> None:
        super().__init__(
            actor_id=original.actor_id,
            attempted_version=original.attempted_version,
            current_version=original.current_version,
        )
        self.text = str(text)

    def __str__(self) -> str:
        return self.text


class ProcessEventStore:
    """A handle on a store process: the EventStore protocol over JSON lines."""

    def __init__(self, process: StoreProcess) -> None:
        self.process = process

    def save_event(self, event: Event) -> None:
        self.process.call("save_event", {"event": event.to_dict()})

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        result = self.process.call("get_events", {"actorId": actor_id, "fromVersion": from_version})
        if not isinstance(result, list):
            return result  # the driver reports the wrong type, with the requirement under test
        return [Event.from_dict(item) for item in result]

    def get_latest_version(self, actor_id: str) -> int:
        return self.process.call("get_latest_version", {"actorId": actor_id})


class ProcessSnapshotStore(ProcessEventStore):
    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        self.process.call("save_snapshot", {"snapshot": snapshot.to_dict()})

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        result = self.process.call("get_latest_snapshot", {"actorId": actor_id})
        return None if result is None else ActorSnapshot.from_dict(result)


_processes: dict[str, StoreProcess] = {}
_processes_lock = threading.Lock()


def from_environment() -> ProcessEventStore:
    """Zero-argument factory: a handle on the process run by ``$AETHER_STORE_COMMAND`` (started once)."""
    command = os.environ.get(COMMAND_ENV)
    if not command:
        raise StoreProcessError(f"set {COMMAND_ENV} to the command that serves the store over {PROTOCOL}")
    with _processes_lock:
        process = _processes.get(command)
        if process is None:
            process = _processes[command] = StoreProcess(shlex.split(command))
            atexit.register(process.close)
    return ProcessSnapshotStore(process) if process.snapshots else ProcessEventStore(process)
