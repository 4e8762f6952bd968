"""Template versions: content-addressed snapshots a task can pin.

A version is the content hash of a template folder. Snapshotting copies the folder (and
the presets that belong to it, into its own presets/) to HOME/templates/NAME/VERSION, so
a task keeps rendering exactly what it was created from even after the template on disk
changes or a newer version is pushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import TemplateNotFound
from provisioner.model import utcnow
from provisioner.templating.catalog import Template, forget_cached, load_cached

# a template name or a version hash: one path segment, never `..`
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # fullmatch: `$` takes a "\n"


@dataclass(frozen=True)
class VersionInfo:
    """One stored version of a template."""

    name: str
    version: str
    label: str | None
    created_at: str
    source: str
    pushed: bool  # registered with `template push` (the newest pushed one is active)


class VersionStore:
    """Snapshots under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, name: str, version: str) -> Path:
        if not (_SEGMENT.fullmatch(name) and _SEGMENT.fullmatch(version)):
            raise TemplateNotFound(f"Version {version[:80]!r} of template {name[:80]!r} is unknown")
        return self.root / name / version

    def snapshot(
        self, template: Template, *, label: str | None = None, pushed: bool = False
    ) -> VersionInfo:
        """Store the template's current content (a no-op when that version is stored)."""
        target = self._dir(template.name, template.version)
        meta_path = target.with_suffix(".json")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                staged = Path(tmp) / "t"
                shutil.copytree(template.path, staged, ignore=shutil.ignore_patterns("__pycache__"))
                (staged / "presets").mkdir(exist_ok=True)
                for preset in template.presets.values():
                    dest = staged / "presets" / preset.path.name
                    if not dest.exists():
                        shutil.copy2(preset.path, dest)
                try:
                    staged.rename(target)
                except OSError:
                    # A concurrent snapshot of the same content got there first: same bytes.
                    if not target.is_dir():
                        raise
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            changed = (pushed and not meta.get("pushed")) or (label and label != meta.get("label"))
            if changed:
                meta.update(pushed=meta.get("pushed") or pushed, label=label or meta.get("label"))
                if pushed:
                    meta["created_at"] = utcnow()  # re-pushing makes it the newest again
                _write_atomically(meta_path, json.dumps(meta))
        else:
            meta = {
                "label": label,
                "created_at": utcnow(),
                "source": str(template.path),
                "pushed": pushed,
            }
            _write_atomically(meta_path, json.dumps(meta))
        return self._info(template.name, template.version)

    def _info(self, name: str, version: str) -> VersionInfo:
        meta = json.loads(self._dir(name, version).with_suffix(".json").read_text())
        return VersionInfo(
            name=name,
            version=version,
            label=meta.get("label"),
            created_at=meta.get("created_at", ""),
            source=meta.get("source", ""),
            pushed=bool(meta.get("pushed")),
        )

    def versions(self, name: str) -> list[VersionInfo]:
        """Stored versions of a template, oldest first."""
        if not _SEGMENT.fullmatch(name):
            return []  # names come from requests: `..` must not list the home
        folder = self.root / name
        if not folder.is_dir():
            return []
        infos = [
            self._info(name, d.name)
            for d in folder.iterdir()
            if d.is_dir() and d.with_suffix(".json").exists()
        ]
        return sorted(infos, key=lambda i: i.created_at)

    def pushed_names(self) -> list[str]:
        """Templates with at least one pushed version."""
        if not self.root.is_dir():
            return []
        return sorted(
            d.name for d in self.root.iterdir() if any(v.pushed for v in self.versions(d.name))
        )

    def latest_pushed(self, name: str) -> VersionInfo | None:
        """The active pushed version of a template, if any was pushed."""
        pushed = [v for v in self.versions(name) if v.pushed]
        return pushed[-1] if pushed else None

    def resolve(self, name: str, ref: str) -> VersionInfo:
        """A stored version by its hash, a unique prefix of it, or its label."""
        matches = [
            v
            for v in self.versions(name)
            if v.version == ref or v.version.startswith(ref) or v.label == ref
        ]
        exact = [v for v in matches if v.version == ref or v.label == ref]
        if len(exact) == 1 or len(matches) == 1:
            return (exact or matches)[0]
        known = (
            ", ".join(v.version + (f" ({v.label})" if v.label else "") for v in self.versions(name))
            or "none"
        )
        what = "is ambiguous" if matches else "is unknown"
        raise TemplateNotFound(
            f"Version {ref[:80]!r} of template {name!r} {what} (versions: {known})",
            hint=f"list them with: dockyard template versions {name}",
        )

    def activate(self, name: str, ref: str) -> VersionInfo:
        """Make a stored version (hash, prefix or label) the active one: pushed, and the
        newest pushed (as a push of the same content again would)."""
        info = self.resolve(name, ref)
        meta_path = self._dir(name, info.version).with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        meta.update(pushed=True, created_at=utcnow())
        _write_atomically(meta_path, json.dumps(meta))
        return self._info(name, info.version)

    def delete(self, name: str, version: str) -> None:
        """Remove one stored version: its record first, so a half-removed one is not listed."""
        folder = self._dir(name, version)
        folder.with_suffix(".json").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        forget_cached(folder)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the last version gone: so is the name

    def load(self, name: str, version: str) -> Template:
        """The template exactly as that version stored it."""
        folder = self._dir(name, version)
        if not folder.is_dir():
            raise TemplateNotFound(f"Version {version} of template {name!r} is not stored")
        # The folder is the snapshot; its hash is the version it was stored under.
        return load_cached(folder, [], version)


def _write_atomically(path: Path, text: str) -> None:
    """Write a file others may read meanwhile: two tasks created at once snapshot the same
    version, and a plain write_text (truncate, then write) let one read an empty file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
