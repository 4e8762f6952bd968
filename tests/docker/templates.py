"""Test templates derived from the built-in `scripted` one, registered on a live server."""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

import docker.errors
import yaml

from provisioner import paths
from provisioner.templating.catalog import Catalog
from tests.docker.conftest import ServerHandle


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_CREATED: set[str] = set()


def add_scripted_variant(server: ServerHandle, name: str, **changes: Any) -> str:
    """Copy the scripted template as `name` with `changes` merged into its template.yaml."""
    _CREATED.add(name)
    root = server.home / "test-templates"
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(paths.builtin_templates_dir() / "scripted", folder)
    manifest = yaml.safe_load((folder / "template.yaml").read_text())
    manifest = _merge(manifest, {"name": name, **changes})
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    server.engine.catalog = Catalog(
        [paths.builtin_templates_dir(), root],
        [paths.builtin_presets_dir()],
        server.engine.catalog.versions,  # pushed versions stay known
    )
    return name


def cleanup_templates(server: ServerHandle) -> None:
    """Forget the variants (their images stay cached by content hash)."""
    shutil.rmtree(server.home / "test-templates", ignore_errors=True)
    server.engine.catalog = Catalog(versions=server.engine.catalog.versions)
    remove_variant_images(server, sorted(_CREATED))
    _CREATED.clear()


def remove_variant_images(server: ServerHandle, names: list[str]) -> None:
    """Remove images built for variants so test runs do not pile them up."""
    for name in names:
        for image in server.docker.images.list(name=f"dockyard-tpl-{name}"):
            for tag in image.tags:
                if tag.startswith(f"dockyard-tpl-{name}:"):
                    # The same image may still serve a task that is being deleted.
                    with contextlib.suppress(docker.errors.APIError):
                        server.docker.images.remove(tag, noprune=False)
