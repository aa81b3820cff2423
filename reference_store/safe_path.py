"""Where the SQLite store may keep its database: places no other local user controls.

SQLite opens the database file and creates ``-wal``, ``-shm`` and ``-journal``
files beside it.  Another user who can plant a symlink or a file on that way
(in a shared, world-writable directory such as ``/tmp``) could read or rewrite
the events, or make the store write through a link into some other file.  So
before opening, :func:`check_database_path` requires, as OpenSSH's StrictModes
does for its files:

* every symlink on the way to be owned by you or root;
* the directory holding the database to be owned by you or root and writable
  by no one else (a sticky bit does not help: the side files are new names);
* every directory above it to be owned by you or root, and sticky if others
  may write to it (``/tmp`` is), so that no one else can rename what lies below;
* the database and its side files, when they exist, to be regular files
  owned by you or root and writable by no one else.

After these checks nobody else can change what the path leads to, so the
check does not race with the open.  POSIX only, like the rest of the store's
process handling.
"""

from __future__ import annotations

import os
import stat
import tempfile

__all__ = ["UnsafeDatabasePathError", "check_database_path", "private_default_dir"]

_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class UnsafeDatabasePathError(PermissionError):
    """The database path passes through something another local user controls."""


def _trusted(owner: int) -> bool:
    return owner in (os.geteuid(), 0)


def _who(owner: int) -> str:
    return f"uid {owner}" + (" (you)" if owner == os.geteuid() else " (root)" if owner == 0 else "")


def _refuse(path: str, problem: str, rule: str) -> UnsafeDatabasePathError:
    return UnsafeDatabasePathError(f"{path}: {problem} (rule: {rule}; you are uid {os.geteuid()})")


def _check_symlinks(path: str) -> None:
    """Every symlink among the prefixes of ``path`` must be owned by you or root."""
    prefix = os.sep
    for part in path.split(os.sep):
        if not part:
            continue
        prefix = os.path.join(prefix, part)
        try:
            info = os.lstat(prefix)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode) and not _trusted(info.st_uid):
            raise _refuse(
                prefix,
                f"refusing to follow a symlink owned by {_who(info.st_uid)}",
                "a symlink on the way to the database must be owned by you or root, "
                "or another user decides which file the store opens",
            )


def _check_directory(directory: str, *, holds_database: bool) -> None:
    info = os.lstat(directory)
    rule = (
        "the directory holding the database and its -wal/-shm files must be owned by you or root "
        "and writable by no one else"
        if holds_database
        else "every directory above the database must be owned by you or root, and sticky if others may write to it"
    )
    if not _trusted(info.st_uid):
        raise _refuse(directory, f"refusing a directory owned by {_who(info.st_uid)}", rule)
    others_write = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if others_write and (holds_database or not info.st_mode & stat.S_ISVTX):
        raise _refuse(
            directory, f"refusing a directory writable by group or others (mode {stat.S_IMODE(info.st_mode):#o})", rule
        )


def check_database_path(path: str) -> None:
    """Raise :class:`UnsafeDatabasePathError`, naming the path and the rule, unless ``path`` is safe to open."""
    absolute = os.path.abspath(path)
    _check_symlinks(absolute)
    real = os.path.realpath(absolute)
    directory = os.path.dirname(real)
    _check_directory(directory, holds_database=True)
    above = directory
    while os.path.dirname(above) != above:
        above = os.path.dirname(above)
        _check_directory(above, holds_database=False)
    for suffix in _SIDE_FILES:
        name = real + suffix
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            continue
        rule = "the database and its -wal/-shm/-journal files must be regular files of yours, writable by no one else"
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(name, "refusing something that is not a regular file (a symlink or a device)", rule)
        if not _trusted(info.st_uid):
            raise _refuse(name, f"refusing a file owned by {_who(info.st_uid)}", rule)
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _refuse(
                name, f"refusing a file writable by group or others (mode {stat.S_IMODE(info.st_mode):#o})", rule
            )


def private_default_dir() -> str:
    """``aether-conformance-<uid>`` in the temp dir: created with mode 0700, or checked to be exactly that.

    The name is predictable (so every process of a run finds it), so another
    user may have made it first: then the store refuses rather than use it.
    """
    directory = os.path.join(tempfile.gettempdir(), f"aether-conformance-{os.geteuid()}")
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    rule = "the default directory must be a directory of yours with mode 0700; remove it, or set AETHER_SQLITE_PATH"
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise _refuse(directory, "refusing a default directory that is not a directory (a symlink or a file)", rule)
    if info.st_uid != os.geteuid():
        raise _refuse(directory, f"refusing a default directory owned by {_who(info.st_uid)}", rule)
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise _refuse(
            directory, f"refusing a default directory that others may enter (mode {stat.S_IMODE(info.st_mode):#o})", rule
        )
    return directory
