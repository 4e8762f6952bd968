"""Deleting stored template versions, never one a live task still renders or borrows from."""

from __future__ import annotations

import re
from collections.abc import Iterable

from provisioner.errors import TaskConflict, TemplateError, TemplateNotFound
from provisioner.lifecycle import TERMINAL
from provisioner.model import Task
from provisioner.spec import IMAGE_FROM
from provisioner.templating.catalog import Catalog

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")  # as in schema.TemplateConfig: a path segment
_NAMED = 10  # most tasks an error names


def pinned_by(tasks: Iterable[Task], name: str, versions: set[str]) -> list[Task]:
    """Live tasks (warm workspaces too) made from one of `versions` of template `name`, or
    borrowing its image (`workspace.image: template:NAME` pins the lender's version)."""
    found = []
    for task in tasks:
        if task.status in TERMINAL:
            continue
        lender = task.policy.get(IMAGE_FROM) or {}
        own = task.template == name and task.template_version in versions
        borrowed = lender.get("template") == name and lender.get("version") in versions
        if own or borrowed:
            found.append(task)
    return found


def delete_versions(
    catalog: Catalog,
    live: Iterable[Task],
    name: str,
    version: str | None = None,
    routed_by: Iterable[str] = (),
) -> list[str]:
    """Delete one stored version of `name` (a hash, prefix or label), or all of them when
    `version` is None; return the versions deleted. A template folder on disk stays: only
    what was pushed or snapshotted is removed. `routed_by`: the configured targets that
    run this template, which keep it from losing its last version."""
    store = catalog.versions
    if store is None:
        raise TemplateError("this server keeps no template versions; there is none to delete")
    if not _NAME.fullmatch(name):
        raise TemplateNotFound(f"Unknown template {name[:80]!r}")
    on_disk = catalog.folder(name)
    if version is None:
        if on_disk is not None:
            raise TemplateError(
                f"Template {name!r} is a folder on disk ({on_disk}) and cannot be deleted; "
                "delete a stored version of it with --version VERSION"
            )
        doomed = [v.version for v in store.versions(name)]
        if not doomed:
            raise TemplateNotFound(f"Template {name!r} has no stored versions")
    else:
        doomed = [store.resolve(name, version).version]
    targets = sorted(routed_by)
    if targets and not {v.version for v in store.versions(name)} - set(doomed):
        raise TaskConflict(
            f"Template {name!r} is run by target(s) {', '.join(targets)}; deleting "
            f"{'it' if version is None else 'its last version'} would leave them nothing to run",
            hint="remove those targets from the server's config (targets:) first",
        )
    users = pinned_by(live, name, set(doomed))
    if users:
        shown = ", ".join(t.name for t in users[:_NAMED])
        more = f" and {len(users) - _NAMED} more" if len(users) > _NAMED else ""
        raise TaskConflict(
            f"Template {name!r} version(s) {', '.join(v[:12] for v in doomed)} in use by "
            f"live tasks: {shown}{more}",
            hint="delete those tasks (or wait for them to finish) first",
        )
    for v in doomed:
        store.delete(name, v)
    return doomed
