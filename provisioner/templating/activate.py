"""Activating a template version: the one new tasks get from now on (running tasks keep
the version they pinned).

A version is one stored under the home (pushed, or snapshotted when a task pinned it) or
the folder on the search path as it is now, which `template versions` lists too: after a
push, activating the folder's version goes back to it (it is stored then, as a push of
that folder would store it).
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.errors import TemplateError
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.versions import VersionInfo


@dataclass(frozen=True)
class Activated:
    """What an activation did: the template now active, its label, and whether it was
    active already (nothing changed then)."""

    template: Template
    label: str | None
    already: bool


def activate_version(catalog: Catalog, name: str, ref: str) -> Activated:
    """Make version `ref` (a hash, a unique prefix of one, or a label) of template `name`
    active. TemplateNotFound (a 404) for an unknown name or version, naming what exists."""
    before = catalog.get(name)  # an unknown name: a 404 naming the known templates
    name = before.name  # a Coder-style capitalised name is the template it finds
    versions = catalog.versions
    if versions is None:
        raise TemplateError("this server keeps no template versions; none can be activated")
    stored = versions.versions(name)
    disk = catalog.on_disk(name)
    if ref and disk is not None and all(v.version != disk.version for v in stored):
        clash = [v for v in stored if v.version.startswith(ref) or v.label == ref]
        if disk.version.startswith(ref) and not clash:
            if disk.version == before.version:
                return Activated(disk, None, already=True)
            info = versions.snapshot(disk, pushed=True)
            return _done(catalog, info, before)
    return _done(catalog, versions.activate(name, ref), before)


def _done(catalog: Catalog, info: VersionInfo, before: Template) -> Activated:
    now = catalog.get(info.name)
    return Activated(now, info.label, already=now.version == before.version)
