"""`template push`: unpack an uploaded template folder, validate it, store it as a version."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from provisioner.errors import TemplateError
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.confine import check_tree
from provisioner.templating.validate import validate_template
from provisioner.templating.versions import VersionInfo

MAX_ARCHIVE_BYTES = 50 * 1024 * 1024
# What an archive may unpack to: a template is a manifest, a Dockerfile and a few scripts.
# Without a limit a 1 MB gzip of zeros unpacks to gigabytes (and is hashed again and again).
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
MAX_FILES = 2000


def pack_folder(folder: Path) -> bytes:
    """A template folder as a gzipped tar (what the CLI uploads)."""
    if not (folder / "template.yaml").is_file():
        raise TemplateError(f"{folder}: no template.yaml in this folder")
    check_tree(folder)
    buf = io.BytesIO()
    # Symlinks (all inside the folder, checked above) go as the files they point at: the
    # server takes regular files only.
    with tarfile.open(fileobj=buf, mode="w:gz", dereference=True) as tar:
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buf.getvalue()


def _unpack(archive: bytes, target: Path) -> None:
    """Extract member by member, each checked before a byte of it is read: folders and
    regular files only, at most MAX_FILES of them and MAX_UNPACKED_BYTES in all."""
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise TemplateError(f"template archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    total = 0
    count = 0
    try:
        # "r|*": a stream, so nothing is decompressed ahead of the member being checked.
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r|*") as tar:
            for member in tar:
                count += 1
                name = member.name[:80]
                if count > MAX_FILES:
                    raise TemplateError(f"template archive holds more than {MAX_FILES} entries")
                if not (member.isdir() or (member.isreg() and not member.issparse())):
                    raise TemplateError(
                        f"template archive: {name!r} is not a regular file or folder "
                        "(links, devices and sparse files are refused)"
                    )
                total += member.size
                if total > MAX_UNPACKED_BYTES:
                    raise TemplateError(
                        f"template archive unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB "
                        f"(at {name!r})"
                    )
                # The data filter refuses absolute paths and `..`.
                tar.extract(member, target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise TemplateError(f"cannot unpack the template archive: {str(exc)[:200]}") from exc


def push_archive(
    catalog: Catalog, archive: bytes, label: str | None
) -> tuple[VersionInfo, Template]:
    """Validate the uploaded template (schema and every preset) and store it as active."""
    if catalog.versions is None:
        raise TemplateError("this server keeps no template versions; it cannot take a push")
    with tempfile.TemporaryDirectory(prefix="dockyard-push-") as tmp:
        folder = Path(tmp) / "template"
        folder.mkdir()
        _unpack(archive, folder)
        report = validate_template(folder, preset_dirs=[])
        if not report.ok:
            raise TemplateError("; ".join(report.errors))
        info = catalog.versions.snapshot(report.template, label=label, pushed=True)
    return info, catalog.versions.load(info.name, info.version)
