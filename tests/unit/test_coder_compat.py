"""The pure rules of Coder's surface: stable ids, the status mapping, query filters; and
the Task view built from them (no server)."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from provisioner import coder_compat as cc
from provisioner.lifecycle import Status
from provisioner.server.coder.views import parameter_value, task_json
from provisioner.templating.schema import TemplateConfig
from provisioner.templating.validate import validate_template
from tests import coder_shapes as shapes
from tests.stored import new_task

ROOT = Path(__file__).parent.parent.parent


def test_ids_are_uuid5s_of_what_names_them() -> None:
    assert cc.template_id("a") == cc.template_id("a") != cc.template_id("b")
    assert cc.version_id("a", "v1") != cc.version_id("a", "v2")
    assert cc.preset_id("a", "v1", "P") != cc.preset_id("a", "v2", "P")
    # parts are separated: ("ab", "c") is not ("a", "bc")
    assert cc.version_id("ab", "c") != cc.version_id("a", "bc")
    for made in (cc.template_id("a"), cc.organization_id(), cc.user_id("alice")):
        assert uuid.UUID(made).version == 5
    assert cc.as_uuid(cc.template_id("a").upper()) == cc.template_id("a")
    assert cc.as_uuid("not-a-uuid") is None


@pytest.mark.parametrize(
    ("status", "state", "expected"),
    [
        (Status.BACKLOG, None, ("pending", None)),
        (Status.PENDING, None, ("pending", None)),
        (Status.CLAIMED, None, ("pending", None)),
        (Status.INITIALIZING, None, ("initializing", "working")),
        (Status.ACTIVE, "working", ("active", "working")),
        (Status.ACTIVE, "idle", ("active", "idle")),
        (Status.ACTIVE, "input_required", ("active", "idle")),
        (Status.PAUSED, "idle", ("paused", "idle")),
        (Status.ERROR, None, ("error", "idle")),
        (Status.COMPLETED, "idle", ("paused", "complete")),
        (Status.FAILED, "idle", ("error", "failed")),
        (Status.CANCELLED, None, ("paused", "idle")),
    ],
)
def test_statuses_map_onto_coders(
    status: Status, state: str | None, expected: tuple[str, str | None]
) -> None:
    assert (cc.coder_status(status.value), cc.coder_state(status.value, state)) == expected
    task = task_json(new_task(status, state=state, question="Which file?"))
    shapes.check_shape(task, shapes.TASK)
    assert task["status"] == expected[0] in shapes.TASK_STATUSES
    if expected[1] is None:
        assert task["current_state"] is None
    else:
        assert task["current_state"]["state"] == expected[1] in shapes.TASK_STATES


def test_every_dockyard_status_has_a_coder_status() -> None:
    for status in Status:
        assert cc.coder_status(status.value) in cc.CODER_STATUSES
    assert cc.coder_status("something-new") == "unknown"
    assert cc.dockyard_statuses("active") == ["active"]
    assert cc.dockyard_statuses("paused") == ["cancelled", "completed", "paused"]


def test_a_question_is_the_state_message() -> None:
    task = task_json(new_task(Status.ACTIVE, state="input_required", question="Which file?"))
    assert task["current_state"]["message"] == "Which file?"


def test_queries_read_as_coder_writes_them() -> None:
    assert cc.parse_query('owner:"me" status:"active"') == {"owner": "me", "status": "active"}
    assert cc.parse_query("auth") == {"name": "auth"}
    assert cc.parse_query("") == {}
    f = cc.template_filter('exact_name:"Tasks-test" has-ai-task:true')
    assert f.keeps("tasks-test", "tasks-test") and not f.keeps("tasks", "tasks")
    assert cc.template_filter("name:ask").keeps("tasks-test", "x")
    assert cc.task_filter("status:paused").statuses == ("cancelled", "completed", "paused")
    assert cc.task_filter("owner:me").owner == "me"


@pytest.mark.parametrize(
    "q", ['name:"open', "status:running", "has-ai-task:maybe", "BAD!:x", "a:b:c d\x00:e"]
)
def test_bad_queries_are_refused(q: str) -> None:
    with pytest.raises(cc.QueryError):
        cc.template_filter(q) if "status" not in q else cc.task_filter(q)


def test_preset_values_are_strings() -> None:
    assert [parameter_value(v) for v in (1, 0.5, True, None, "x", [1, 2], {"a": 1})] == [
        "1",
        "0.5",
        "true",
        "",
        "x",
        "[1,2]",
        '{"a":1}',
    ]


def test_the_converted_template_of_the_migration_page_validates(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "coder-migration.md").read_text()
    template, *presets = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    folder = tmp_path / "tasks-test-preinstall"
    shutil.copytree(ROOT / "templates" / "claude-code", folder)
    (folder / "template.yaml").write_text(template)
    (folder / "presets").mkdir()
    for i, text in enumerate(presets):
        (folder / "presets" / f"p{i}.yaml").write_text(text)
    report = validate_template(folder)
    assert report.ok, report.errors
    assert report.template.config.coder_name == "Tasks-test-preinstall"
    assert sorted(report.template.presets) == ["Plain", "Real World App: Angular + Django"]


@pytest.mark.parametrize("coder_name", ["Other-name", "tasks test", "Tasks/../x", "T" * 65])
def test_a_coder_name_must_be_the_name_with_capitals(coder_name: str) -> None:
    with pytest.raises(ValidationError):
        TemplateConfig.model_validate(
            {"name": "tasks", "coder_name": coder_name, "agent": {"command": ["x"]}}
        )
    ok = {"name": "tasks", "coder_name": "TASKS", "agent": {"command": ["x"]}}
    assert TemplateConfig.model_validate(ok).coder_name == "TASKS"
