"""The wheel carries what `pip install aether-conformance` alone needs: schemas, suite, plugin, CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from aether_conformance.schemas import SCHEMA_NAMES

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_schemas_and_registers_the_plugin(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("aether_conformance-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for schema in SCHEMA_NAMES:
        packaged = f"aether_conformance/schemas/{schema}.schema.json"
        assert packaged in names, f"{packaged} missing from the wheel"
        with zipfile.ZipFile(wheel) as archive:
            assert archive.read(packaged) == (ROOT / "schemas" / f"{schema}.schema.json").read_bytes()
    assert "aether_conformance/suite/test_concurrency.py" in names
    # Data files the kit reads at run time (ES-ERR-002's expected %q text for process stores).
    for data in sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "aether_conformance").rglob("*.json")):
        assert data in names, f"{data} missing from the wheel"
    assert "aether_conformance = aether_conformance.plugin" in entry_points
    assert "aether-conformance = aether_conformance.cli:main" in entry_points
