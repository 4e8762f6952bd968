"""Template variants for tests: the built-in scripted template copied under a new name,
with changes merged into its template.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from provisioner import paths


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, nested mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_scripted_variant(
    root: Path, name: str, presets: dict[str, str] | None = None, **changes: Any
) -> Path:
    """root/name: the scripted template as `name`, `changes` merged into its template.yaml
    and `presets` (file name -> YAML) in its presets folder (replacing an older copy)."""
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(paths.builtin_templates_dir() / "scripted", folder)
    manifest = yaml.safe_load((folder / "template.yaml").read_text())
    manifest = merged(manifest, {"name": name, **changes})
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    if presets:
        (folder / "presets").mkdir(exist_ok=True)
        for preset, text in presets.items():
            (folder / "presets" / f"{preset}.yaml").write_text(text)
    return folder
