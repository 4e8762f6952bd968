"""`workspace.image: template:NAME`: a task pins the lender's version like its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from provisioner.engine.workspace import lender_pin, spec_for, task_policy
from provisioner.lifecycle import Status
from provisioner.model import Task, utcnow
from provisioner.spec import IMAGE_FROM
from provisioner.templating.catalog import Catalog
from provisioner.templating.render import render_workspace
from provisioner.templating.versions import VersionStore

LENDER = {
    "name": "lender",
    "workspace": {"build": {"dockerfile": "Dockerfile"}},
    "agent": {"command": ["sh"]},
}
BORROWER = {
    "name": "borrower",
    "workspace": {"image": "template:lender"},
    "agent": {"command": ["sh"]},
}


def write_template(root: Path, manifest: dict[str, object], dockerfile: str | None) -> Path:
    folder = root / str(manifest["name"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.yaml").write_text(yaml.safe_dump(manifest))
    if dockerfile is not None:
        (folder / "Dockerfile").write_text(dockerfile)
    return folder


def task_for(catalog: Catalog, name: str) -> Task:
    template = catalog.get(name)
    spec = render_workspace(template, None, {})
    now = utcnow()
    return Task(
        id="00000000-0000-0000-0000-0000000000aa",
        name="t",
        display_name="t",
        owner="me",
        template=template.name,
        template_version=template.version,
        preset=None,
        parameters={},
        resolved={},
        prompt="p",
        status=Status.PENDING,
        bridge_token="tok",
        created_at=now,
        updated_at=now,
        policy=task_policy(catalog, spec),
    )


def test_a_borrowed_image_stays_at_the_lenders_version_the_task_pinned(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    write_template(templates, LENDER, "FROM {{ base_image }}\nRUN echo one\n")
    write_template(templates, BORROWER, None)
    catalog = Catalog([templates], [tmp_path / "presets"], VersionStore(tmp_path / "store"))
    task = task_for(catalog, "borrower")
    first = catalog.get("lender").version
    assert task.policy[IMAGE_FROM] == {"template": "lender", "version": first}
    assert "echo one" in (spec := spec_for(catalog, task)).build.dockerfile  # type: ignore[union-attr]
    assert spec.image is None

    # the lender changes: the task keeps building what it pinned, a new task takes the new
    write_template(templates, LENDER, "FROM {{ base_image }}\nRUN echo two\n")
    assert catalog.get("lender").version != first
    again = spec_for(catalog, task)
    assert again.build is not None and "echo one" in again.build.dockerfile
    assert (again.build.context_dir / "Dockerfile").read_text().endswith("echo one\n")
    newer = task_for(catalog, "borrower")
    assert "echo two" in spec_for(catalog, newer).build.dockerfile  # type: ignore[union-attr]

    # a task stored before lenders were pinned follows the lender's current version
    legacy = dataclasses.replace(task, policy={})
    assert "echo two" in spec_for(catalog, legacy).build.dockerfile  # type: ignore[union-attr]


def test_a_template_with_its_own_image_pins_nothing(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    write_template(templates, LENDER, "FROM {{ base_image }}\n")
    catalog = Catalog([templates], [tmp_path / "presets"], VersionStore(tmp_path / "store"))
    spec = render_workspace(catalog.get("lender"), None, {})
    assert lender_pin(catalog, spec) is None
    assert IMAGE_FROM not in task_policy(catalog, spec)
