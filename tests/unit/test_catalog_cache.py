"""Templates are reused between lookups only while none of their files changed."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from provisioner.templating.catalog import Catalog


def write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def bump(path: Path) -> None:
    """Make sure a rewrite shows in the mtime even on a coarse clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_an_edit_shows_at_once_and_nothing_else_is_read_again(tmp_path: Path) -> None:
    templates, presets = tmp_path / "templates", tmp_path / "presets"
    manifest = {"name": "t", "workspace": {"image": "base"}, "agent": {"command": ["sh"]}}
    write(templates / "t" / "template.yaml", manifest)
    write(presets / "t" / "a.yaml", {"parameters": {}})
    catalog = Catalog([templates], [presets])
    first = catalog.get("t")
    assert catalog.get("t") is first  # unchanged: the same object, nothing parsed again

    manifest["description"] = "changed"
    write(templates / "t" / "template.yaml", manifest)
    bump(templates / "t" / "template.yaml")
    changed = catalog.get("t")
    assert changed.config.description == "changed" and changed.version != first.version

    write(presets / "t" / "b.yaml", {"parameters": {}})  # a new preset elsewhere
    assert set(catalog.get("t").presets) == {"a", "b"}
    (presets / "t" / "a.yaml").unlink()
    assert set(catalog.get("t").presets) == {"b"}
