"""Every file a template names stays inside its folder: no host file is read or written."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli.main import cli
from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.backends.terraform_workdir import write_workdir
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import BackendError, TemplateError
from provisioner.spec import TerraformSpec
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog, load_template
from provisioner.templating.push import pack_folder, push_archive
from provisioner.templating.render import render_workspace
from provisioner.templating.validate import validate_template
from provisioner.templating.versions import VersionStore
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve

SECRET = "root:TOPSECRET-LINE:19000:0:99999:7:::"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    return write(tmp_path / "host" / "shadow", SECRET + "\n")


def docker_template(folder: Path, dockerfile: str = "Dockerfile") -> Path:
    write(
        folder / "template.yaml",
        f"name: demo\nworkspace:\n  build:\n    dockerfile: {dockerfile!r}\n"
        "agent:\n  command: [run]\n",
    )
    write(folder / "Dockerfile", "FROM {{ base_image }}\n")
    return folder


def terraform_template(folder: Path, files: str = '["*.tf"]', tf_dir: str = "terraform") -> Path:
    write(
        folder / "template.yaml",
        "name: demo\nbackend: terraform\nagent:\n  command: [run]\n"
        f"terraform:\n  dir: {tf_dir!r}\n  files: {files}\n",
    )
    write(folder / "terraform" / "main.tf", "# {{ template.name }}\n")
    return folder


def refused(folder: Path) -> str:
    with pytest.raises(TemplateError) as caught:
        report = validate_template(folder, preset_dirs=[])
        if report.errors:  # a render error is reported, not raised
            raise TemplateError("; ".join(report.errors))
    assert "TOPSECRET" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("name", ["{secret}", "../host/shadow", "sub/../../host/shadow"])
def test_dockerfile_outside_the_folder_is_refused(tmp_path: Path, secret: Path, name: str) -> None:
    folder = docker_template(tmp_path / "demo", name.format(secret=secret))
    assert "workspace.build.dockerfile" in refused(folder)


def test_a_symlink_pointing_out_is_refused(tmp_path: Path, secret: Path) -> None:
    folder = docker_template(tmp_path / "demo")
    (folder / "Dockerfile").unlink()
    (folder / "Dockerfile").symlink_to(secret)
    assert "'Dockerfile' is a symlink leading outside" in refused(folder)


def test_a_symlinked_folder_pointing_out_is_refused(tmp_path: Path, secret: Path) -> None:
    folder = docker_template(tmp_path / "demo")
    (folder / "extra").symlink_to(secret.parent, target_is_directory=True)
    assert "'extra' is a symlink leading outside" in refused(folder)


def test_a_symlinked_manifest_is_refused(tmp_path: Path, secret: Path) -> None:
    folder = docker_template(tmp_path / "demo")
    (folder / "template.yaml").rename(tmp_path / "host" / "template.yaml")
    (folder / "template.yaml").symlink_to(tmp_path / "host" / "template.yaml")
    assert "'template.yaml' is a symlink" in refused(folder)


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    folder = docker_template(tmp_path / "demo")
    os.mkfifo(folder / "pipe")
    assert "'pipe' is not a regular file" in refused(folder)


def test_symlinks_inside_and_a_symlinked_template_folder_are_fine(tmp_path: Path) -> None:
    real = docker_template(tmp_path / "real")
    (real / "Dockerfile.link").symlink_to("Dockerfile")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "demo").symlink_to(real, target_is_directory=True)
    template = Catalog([tmp_path / "templates"], []).get("demo")
    assert render_workspace(template, None, {}).build is not None


@pytest.mark.parametrize(
    ("files", "tf_dir"),
    [('["../../host/*"]', "terraform"), ('["/etc/*"]', "terraform"), ('["*.tf"]', "../host")],
)
def test_terraform_globs_stay_inside(tmp_path: Path, secret: Path, files: str, tf_dir: str) -> None:
    folder = terraform_template(tmp_path / "demo", files, tf_dir)
    message = refused(folder)
    assert "field terraform" in message and "inside the template folder" in message


def test_a_file_linked_out_after_loading_is_not_rendered(tmp_path: Path, secret: Path) -> None:
    folder = terraform_template(tmp_path / "demo")
    template = load_template(folder, preset_dirs=[])
    (folder / "terraform" / "leak.tf").symlink_to(secret)  # after the load's check
    with pytest.raises(TemplateError, match="leads outside the template folder") as caught:
        render_workspace(template, None, {})
    assert "TOPSECRET" not in str(caught.value)


def test_push_refuses_a_dockerfile_outside(tmp_path: Path, secret: Path) -> None:
    catalog = Catalog([tmp_path / "nowhere"], [], VersionStore(tmp_path / "store"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        manifest = (
            f"name: demo\nworkspace:\n  build: {{dockerfile: {secret}}}\nagent: {{command: [x]}}\n"
        ).encode()
        info = tarfile.TarInfo("template.yaml")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    with pytest.raises(TemplateError) as caught:
        push_archive(catalog, buf.getvalue(), None)
    assert "TOPSECRET" not in str(caught.value) and "dockerfile" in str(caught.value)
    assert catalog.versions is not None and catalog.versions.versions("demo") == []


@pytest.mark.parametrize(
    "rel", ["../escape.tf", "../../escape.tf", "/tmp/escape.tf", "terraform.tfvars.json"]
)
def test_write_workdir_refuses_paths_out_of_the_task_dir(tmp_path: Path, rel: str) -> None:
    folder = terraform_template(tmp_path / "demo")
    spec = render_workspace(load_template(folder, preset_dirs=[]), None, {})
    assert spec.terraform is not None
    hostile = replace(spec, terraform=TerraformSpec(folder, {rel: "pwned"}))
    workdir = tmp_path / "tf" / "task"
    with pytest.raises(BackendError, match="would"):
        write_workdir(workdir, hostile, {})
    assert not (tmp_path / "tf" / "escape.tf").exists()
    assert not (tmp_path / "escape.tf").exists() and not Path("/tmp/escape.tf").exists()


def test_version_lookups_stay_in_the_store(tmp_path: Path) -> None:
    # a folder beside the store that looks like a stored version
    docker_template(tmp_path / "home" / "x")
    (tmp_path / "home" / "x.json").write_text('{"pushed": true}')
    (tmp_path / "home" / "store").mkdir()
    catalog = Catalog([tmp_path / "nowhere"], [], VersionStore(tmp_path / "home" / "store"))
    assert catalog.versions is not None and catalog.versions.versions("..") == []
    with pytest.raises(TemplateError):
        catalog.get("..", "x")
    with pytest.raises(TemplateError):
        catalog.versions.load("demo", "../../x")


def test_a_real_server_refuses_the_push_with_a_400(tmp_path: Path) -> None:
    shadow = Path("/etc/shadow")
    folder = docker_template(tmp_path / "demo", str(shadow))
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    catalog = Catalog([tmp_path / "nowhere"], [], VersionStore(tmp_path / "store"))
    engine = Engine(store, DockerBackend("test", dead), catalog, BridgeBundler(tmp_path / "c"))
    try:
        with serve(engine, tmp_path) as url:
            answer = httpx.post(
                f"{url}/api/v2/templates",
                content=pack_folder(folder),
                headers={**admin_headers(tmp_path), "content-type": "application/gzip"},
                timeout=HTTP_TIMEOUT,
            )
            assert answer.status_code == 400
            assert "workspace.build.dockerfile" in answer.text
            pushed = CliRunner().invoke(
                cli, ["template", "push", str(folder)], env=admin_env(url, tmp_path)
            )
            assert pushed.exit_code == 1 and "inside the template folder" in pushed.stderr
            if shadow.exists():
                first = shadow.read_text().splitlines()[0]
                assert first not in answer.text and first not in pushed.stderr
    finally:
        store.close()
