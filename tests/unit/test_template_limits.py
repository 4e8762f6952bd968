"""Pushed archives are bounded while unpacked, stored versions are not rehashed, and stored
versions can be deleted unless a live task uses them (no Docker)."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import TaskConflict, TemplateError, TemplateNotFound
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.store.store import Store, sqlite_url
from provisioner.templating import catalog as catalog_module
from provisioner.templating.catalog import Catalog
from provisioner.templating.delete import delete_versions, pinned_by
from provisioner.templating.push import (
    MAX_ARCHIVE_BYTES,
    MAX_FILES,
    MAX_UNPACKED_BYTES,
    _unpack,
    pack_folder,
    push_archive,
)
from provisioner.templating.versions import VersionStore
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, serve
from tests.stored import new_task

MANIFEST = b"name: demo\nagent:\n  command: [run]\n"


def member(tar: tarfile.TarFile, name: str, data: bytes = b"", **info: Any) -> None:
    entry = tarfile.TarInfo(name)
    entry.size = len(data)
    for key, value in info.items():
        setattr(entry, key, value)
    tar.addfile(entry, io.BytesIO(data))


def zeros_archive(path: Path, sizes: list[int]) -> bytes:
    """template.yaml and files of zeros, written through gzip a MiB at a time: a GiB of
    zeros never sits in memory, here or (so the test checks) in the server."""
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(_header("template.yaml", len(MANIFEST)) + _padded(MANIFEST))
        for i, size in enumerate(sizes):
            out.write(_header(f"zeros{i}", size))
            for _ in range(size >> 20):
                out.write(chunk)
            out.write(bytes(-size % 512))
        out.write(bytes(1024))
    return path.read_bytes()


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog([tmp_path / "nowhere"], [], VersionStore(tmp_path / "store"))


def test_a_gzip_bomb_is_refused_at_once_with_little_memory(
    tmp_path: Path, catalog: Catalog
) -> None:
    archive = zeros_archive(tmp_path / "bomb.tar.gz", [1 << 30])
    assert len(archive) < 8 << 20  # small to upload: 1 GiB inside
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError, match=f"more than {MAX_UNPACKED_BYTES >> 20} MiB"):
            push_archive(catalog, archive, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < len(archive) + (16 << 20)
    assert catalog.versions is not None and catalog.versions.versions("demo") == []


def test_unpacking_stops_before_the_total_is_passed(tmp_path: Path) -> None:
    archive = zeros_archive(tmp_path / "big.tar.gz", [30 << 20] * 4)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(TemplateError, match="'zeros2'"):
        _unpack(archive, target)
    assert du(target) <= MAX_UNPACKED_BYTES


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        member(tar, "template.yaml", MANIFEST)
        for i in range(MAX_FILES + 5):
            member(tar, f"f{i}", b"x")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(TemplateError, match=f"more than {MAX_FILES} entries"):
        _unpack(buf.getvalue(), target)
    assert len(list(target.iterdir())) <= MAX_FILES


@pytest.mark.parametrize(
    "kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE]
)
def test_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        member(tar, "template.yaml", MANIFEST)
        member(tar, "Dockerfile", type=kind, linkname="template.yaml")
    with pytest.raises(TemplateError, match="'Dockerfile' is not a regular file"):
        _unpack(buf.getvalue(), tmp_path)


def write_template(folder: Path, command: str = "run") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.yaml").write_text(f"name: demo\nagent:\n  command: [{command}]\n")
    return folder


def test_a_stored_version_is_not_hashed_again(
    tmp_path: Path, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_archive(catalog, pack_folder(write_template(tmp_path / "demo")), None)
    calls: list[Path] = []
    real = catalog_module.template_version
    monkeypatch.setattr(
        catalog_module, "template_version", lambda folder: calls.append(folder) or real(folder)
    )
    for _ in range(3):
        assert catalog.get("demo").name == "demo"
    assert calls == []


def task(status: Status = Status.ACTIVE, **fields: Any) -> Task:
    return new_task(status, **{"template": "demo", **fields})


def test_pinned_by_counts_live_tasks_and_borrowers() -> None:
    own = task()
    borrower = task(template="other", policy={"image_from": {"template": "demo", "version": "v1"}})
    done = task(Status.COMPLETED)
    elsewhere = task(template_version="v2")
    found = pinned_by([own, borrower, done, elsewhere], "demo", {"v1"})
    assert found == [own, borrower]


def test_delete_is_refused_while_pinned_then_allowed(tmp_path: Path, catalog: Catalog) -> None:
    first, _ = push_archive(catalog, pack_folder(write_template(tmp_path / "a")), "v1")
    second, _ = push_archive(catalog, pack_folder(write_template(tmp_path / "b", "x")), "v2")
    user = task(template_version=first.version)
    borrower = task(
        name="borrower",
        template="other",
        policy={"image_from": {"template": "demo", "version": second.version}},
    )
    with pytest.raises(TaskConflict, match=user.name):
        delete_versions(catalog, [user], "demo", "v1")
    with pytest.raises(TaskConflict, match="borrower"):
        delete_versions(catalog, [borrower], "demo")
    assert delete_versions(catalog, [borrower], "demo", "v1") == [first.version]
    assert delete_versions(catalog, [], "demo") == [second.version]
    with pytest.raises(TemplateNotFound):
        catalog.get("demo")


def test_a_template_a_target_runs_keeps_its_last_version(tmp_path: Path, catalog: Catalog) -> None:
    first, _ = push_archive(catalog, pack_folder(write_template(tmp_path / "a")), "v1")
    second, _ = push_archive(catalog, pack_folder(write_template(tmp_path / "b", "x")), "v2")
    with pytest.raises(TaskConflict, match=r"run by target\(s\) builder, nightly") as refused:
        delete_versions(catalog, [], "demo", routed_by=["nightly", "builder"])
    assert "targets:" in (refused.value.hint or "")
    # one version may go while another stays for the targets; the last may not
    assert delete_versions(catalog, [], "demo", "v1", ["builder"]) == [first.version]
    with pytest.raises(TaskConflict, match="its last version"):
        delete_versions(catalog, [], "demo", "v2", ["builder"])
    assert catalog.get("demo").version == second.version
    assert delete_versions(catalog, [], "demo") == [second.version]  # no target: it goes


def test_a_template_on_disk_keeps_its_folder(tmp_path: Path) -> None:
    write_template(tmp_path / "templates" / "demo")
    catalog = Catalog([tmp_path / "templates"], [], VersionStore(tmp_path / "store"))
    with pytest.raises(TemplateError, match="is a folder on disk"):
        delete_versions(catalog, [], "demo")
    pushed, _ = push_archive(catalog, pack_folder(write_template(tmp_path / "b", "x")), "mine")
    assert delete_versions(catalog, [], "demo", "mine") == [pushed.version]
    assert catalog.get("demo").path == tmp_path / "templates" / "demo"
    with pytest.raises(TemplateNotFound):
        delete_versions(catalog, [], "../../etc")


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A real server (its Docker daemon missing: pushing needs none)."""
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    catalog = Catalog([tmp_path / "nowhere"], [], VersionStore(tmp_path / "store"))
    engine = Engine(store, DockerBackend("test", dead), catalog, BridgeBundler(tmp_path / "c"))
    with serve(engine, tmp_path) as base:
        yield base
    store.close()


def test_an_oversized_upload_is_refused_before_it_is_read_whole(url: str, tmp_path: Path) -> None:
    home = tmp_path

    def endless() -> Iterator[bytes]:  # no length given: the server must count
        chunk = bytes(1 << 20)
        for _ in range(4 * (MAX_ARCHIVE_BYTES >> 20)):
            yield chunk

    tracemalloc.start()  # the server runs in this process
    try:
        try:
            answer = httpx.post(
                f"{url}/api/v2/templates",
                content=endless(),
                headers={**admin_headers(home), "content-type": "application/gzip"},
                timeout=60,
            )
        except httpx.TransportError:
            answer = None  # the server answered and closed while the upload went on
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if answer is not None:
        # the request guard wants a length up front; the route counts what arrives too
        assert answer.status_code in (400, 411), answer.text
    assert peak < MAX_ARCHIVE_BYTES + (16 << 20)


def test_a_symlink_inside_is_pushed_as_its_file(tmp_path: Path, catalog: Catalog) -> None:
    folder = write_template(tmp_path / "demo")
    (folder / "run.sh").write_text("echo hi\n")
    (folder / "alias.sh").symlink_to("run.sh")
    _, template = push_archive(catalog, pack_folder(folder), None)
    stored = template.path / "alias.sh"
    assert not stored.is_symlink() and stored.read_text() == "echo hi\n"


def test_a_declared_oversized_upload_is_refused_at_once(url: str, tmp_path: Path) -> None:
    # under the request guard's 64 MiB cap, over the archive's own 50 MiB limit
    size = MAX_ARCHIVE_BYTES + (4 << 20)

    def body() -> Iterator[bytes]:
        for _ in range(size >> 20):
            yield bytes(1 << 20)

    headers = {
        **admin_headers(tmp_path),
        "content-type": "application/gzip",
        "content-length": str(size),
    }
    try:
        answer = httpx.post(
            f"{url}/api/v2/templates", content=body(), headers=headers, timeout=HTTP_TIMEOUT
        )
    except httpx.TransportError:
        return  # answered and closed while the upload went on
    assert answer.status_code == 400
    assert f"larger than {MAX_ARCHIVE_BYTES >> 20} MiB" in answer.text
