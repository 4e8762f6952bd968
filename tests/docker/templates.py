"""Test templates derived from the built-in `scripted` one, registered on a live server."""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

import docker.errors

from provisioner import paths
from provisioner.templating.catalog import Catalog
from tests.docker.conftest import ServerHandle
from tests.variants import write_scripted_variant

_CREATED: set[str] = set()  # variant names made, so cleanup removes their image tags


def add_scripted_variant(server: ServerHandle, name: str, **changes: Any) -> str:
    """Copy the scripted template as `name` with `changes` merged into its template.yaml."""
    _CREATED.add(name)
    root = server.home / "test-templates"
    write_scripted_variant(root, name, **changes)
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
