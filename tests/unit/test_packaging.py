"""A wheel install (not editable) finds the built-in templates and presets; the wheel
carries the dashboard's files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_carries_templates_and_presets(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("dockyard-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = (
        "from provisioner.templating.catalog import Catalog;"
        "t = Catalog().get('scripted');"
        "print(t.path); print(sorted(t.presets))"
    )
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.splitlines()
    assert out[0].startswith(str(venv)) and out[0].endswith("_builtin/templates/scripted")
    assert out[1] == "['default', 'slow']"
    # the dashboard's pages and scripts ship as package data: no Node at install
    names = set(zipfile.ZipFile(wheel).namelist())
    dashboard = ROOT / "provisioner" / "server" / "dashboard"
    shipped = {str(p.relative_to(ROOT)) for p in dashboard.rglob("*") if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)
