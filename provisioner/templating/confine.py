"""Keeping every file a template names inside the template's own folder.

A template comes from anyone who can push one, and the server reads its files as root: a
Dockerfile at `/etc/shadow`, a Terraform glob of `../../*`, or a symlink in the folder
pointing out would hand host files to the build, the snapshot or an error message. So
names are checked when the schema is read (`relative_name`, pure), every file is checked
after following symlinks when it is opened (`confined`), and a whole folder is checked
once when it is loaded (`check_tree`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from provisioner.errors import TemplateError


def relative_name(value: str, what: str) -> str:
    """`value` if it names something below a folder: not absolute, no `..`, no NUL."""
    path = PurePosixPath(value)
    if not value or "\0" in value or "\\" in value:
        raise ValueError(f"{what} must be a path inside the template folder")
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} must be a relative path inside the template folder, no `..`")
    return value


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None


def confined(root: Path, path: Path, what: str) -> Path:
    """`path` with symlinks followed, if it stays inside `root` (also followed)."""
    base = root.resolve()
    target = _resolved(path)
    if target is None or not target.is_relative_to(base):
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        raise TemplateError(f"{what}: {str(shown)[:80]!r} leads outside the template folder")
    return target


def check_tree(root: Path) -> None:
    """Every entry under `root` is a folder, a regular file, or a symlink that stays inside
    (a FIFO or a device would hang or leak whoever reads it)."""
    base = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = str(path.relative_to(root))[:80]
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = _resolved(path)
                if target is None or not target.is_relative_to(base):
                    raise TemplateError(
                        f"{root}: {rel!r} is a symlink leading outside the template folder"
                    )
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise TemplateError(f"{root}: {rel!r} is not a regular file or folder")
