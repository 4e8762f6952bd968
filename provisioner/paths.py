"""Where Dockyard keeps things: its home (database, logs, address) and the built-ins."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import platformdirs

_PACKAGE_DIR = Path(__file__).resolve().parent


def home_dir(explicit: Path | None = None) -> Path:
    """DOCKYARD_HOME, else the user's data dir: one server and one database per home."""
    if explicit is not None:
        path = explicit
    elif os.environ.get("DOCKYARD_HOME"):
        path = Path(os.environ["DOCKYARD_HOME"])
    else:
        path = Path(platformdirs.user_data_dir("dockyard", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def cache_dir() -> Path:
    """Shared across homes: image-build work and the bridge zipapp are per machine."""
    path = Path(
        os.environ.get("DOCKYARD_CACHE") or platformdirs.user_cache_dir("dockyard", appauthor=False)
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def instance_id(home: Path) -> str:
    """A stable id for this home, put on every Docker resource it creates."""
    marker = home / "instance.json"
    try:
        return str(json.loads(marker.read_text())["id"])
    except (OSError, ValueError, KeyError):
        ident = uuid.uuid4().hex[:12]
        marker.write_text(json.dumps({"id": ident}))
        return ident


def _builtin(kind: str) -> Path:
    # A wheel carries them inside the package; a source checkout keeps them at the root.
    shipped = _PACKAGE_DIR / "_builtin" / kind
    if shipped.is_dir():
        return shipped
    return _PACKAGE_DIR.parent / kind


def builtin_templates_dir() -> Path:
    """The templates that ship with Dockyard."""
    return _builtin("templates")


def builtin_presets_dir() -> Path:
    """The presets that ship with Dockyard."""
    return _builtin("presets")


def template_search_path() -> list[Path]:
    """Built-ins first, then directories listed in DOCKYARD_TEMPLATE_PATH (os.pathsep)."""
    extra = [Path(p) for p in os.environ.get("DOCKYARD_TEMPLATE_PATH", "").split(os.pathsep) if p]
    return [builtin_templates_dir(), *extra]


def preset_search_path() -> list[Path]:
    """Built-in presets, then DOCKYARD_PRESET_PATH directories (<template>/<preset>.yaml)."""
    extra = [Path(p) for p in os.environ.get("DOCKYARD_PRESET_PATH", "").split(os.pathsep) if p]
    return [builtin_presets_dir(), *extra]
