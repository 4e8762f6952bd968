"""`template push`: unpack an uploaded template folder, validate it, store it as a version."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from provisioner.errors import TemplateError
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.validate import validate_template
from provisioner.templating.versions import VersionInfo

MAX_ARCHIVE_BYTES = 50 * 1024 * 1024


def pack_folder(folder: Path) -> bytes:
    """A template folder as a gzipped tar (what the CLI uploads)."""
    if not (folder / "template.yaml").is_file():
        raise TemplateError(f"{folder}: no template.yaml in this folder")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buf.getvalue()


def _unpack(archive: bytes, target: Path) -> None:
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise TemplateError(f"template archive is larger than {MAX_ARCHIVE_BYTES >> 20} MiB")
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            # The data filter refuses absolute paths, `..`, links out and device files.
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise TemplateError(f"cannot unpack the template archive: {exc}") from exc


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
