"""The helper `task cp` and `task download` run in the workspace (python3 -I -S -c), as
the workspace's user: standard library only, any Python 3.8+.

Why in the workspace and not Docker's archive API: the daemon reads and writes as root and
follows symlinks inside the container, so a link the agent planted (`notes -> /etc`)
would open the container's files to a copy. Here every path is resolved for real and must
stay under the workspace directory, and the workspace user's own rights apply.

    pack ROOT PATH [gz]      a tar of PATH (a file or a tree) on stdout; links stay links
    unpack ROOT DEST         a tar from stdin into DEST when it is a directory, else
                             its one top entry becomes DEST (its parent must exist)

Exit codes: 0 done, 2 not found, 3 outside the workspace or refused, 4 other failures;
the reason on stderr.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
import tarfile
from typing import NoReturn

NOT_FOUND, REFUSED, FAILED = 2, 3, 4


def fail(code: int, message: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.exit(code)


def inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def pack(root: str, path: str, gz: bool) -> None:
    real = os.path.realpath(path)
    if not inside(root, real):
        fail(REFUSED, f"{path} leads outside the workspace directory")
    if not os.path.lexists(real):
        fail(NOT_FOUND, f"{path} does not exist in the workspace")
    # the whole workspace: `./...` entries in a download, one named top in a copy
    if real == root:
        name = "." if gz else posixpath.basename(root) or "workspace"
    else:
        name = posixpath.basename(path.rstrip("/")) or posixpath.basename(real)
    out = sys.stdout.buffer
    with tarfile.open(fileobj=out, mode="w|gz" if gz else "w|", format=tarfile.PAX_FORMAT) as tar:
        # dereference=False: a link inside is stored as a link, never followed out
        tar.add(real, arcname=name, recursive=True)
    out.flush()


def clean(name: str) -> list[str] | None:
    if name.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return None
    return parts


def unpack(root: str, dest: str, rename: str) -> None:
    real = os.path.realpath(dest)
    if not os.path.isdir(real):
        # DEST names what the archive's top entry becomes, in its (existing) parent
        rename = posixpath.basename(dest.rstrip("/"))
        real = os.path.realpath(posixpath.dirname(dest.rstrip("/")) or "/")
    if not inside(root, real):
        fail(REFUSED, f"{dest} leads outside the workspace directory")
    if not os.path.isdir(real):
        fail(NOT_FOUND, f"the directory of {dest} does not exist in the workspace")
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        for member in tar:
            parts = clean(member.name)
            if parts is None:
                fail(REFUSED, f"refused tar member {member.name!r} (absolute, '..' or odd)")
            if rename:
                parts[0] = rename
            target = posixpath.join(real, *parts)
            parent = os.path.realpath(posixpath.dirname(target))
            if not inside(root, parent):
                fail(REFUSED, "{} leads outside the workspace directory".format("/".join(parts)))
            if os.path.islink(target) or (os.path.lexists(target) and not member.isdir()):
                # never write through a link (or onto one); replace what is there
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                else:
                    os.unlink(target)
            mode = member.mode & 0o777
            if member.isdir():
                if not os.path.isdir(target):
                    os.mkdir(target, 0o700)
                os.chmod(target, mode | 0o700)
            elif member.isfile():
                source = tar.extractfile(member)
                if source is None:
                    fail(FAILED, f"cannot read {member.name} from the archive")
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.chmod(target, mode)
            elif member.issym():
                link = member.linkname
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(target), link))
                if link.startswith("/") or not inside(root, resolved):
                    fail(REFUSED, f"refused link {member.name} -> {link} (points outside)")
                os.symlink(link, target)
            else:
                fail(
                    REFUSED, f"refused tar member {member.name!r} (only files, directories, links)"
                )
            if not member.issym():
                os.utime(target, (member.mtime, member.mtime))


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        fail(FAILED, "usage: pack ROOT PATH [gz] | unpack ROOT DEST [NAME]")
    action, root = argv[0], os.path.realpath(argv[1])
    try:
        if action == "pack":
            pack(root, argv[2], len(argv) > 3 and argv[3] == "gz")
        elif action == "unpack":
            unpack(root, argv[2], "")
        else:
            fail(FAILED, f"unknown action {action}")
    except (OSError, tarfile.TarError) as exc:
        fail(FAILED, f"{type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
