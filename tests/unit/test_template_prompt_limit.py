"""A template may take smaller prompts than Dockyard's limit: create and send say so (413)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from provisioner.engine.engine import Engine
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import PayloadTooLarge
from provisioner.lifecycle import Status
from provisioner.prompts import MAX_PROMPT_BYTES
from provisioner.spec import AgentProfile
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from tests.unit.test_create_secrets import ReachableBackend

TEMPLATE = """\
name: tiny
agent:
  command: ["cat"]
  profile:
    max_prompt_bytes: 100
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    folder = tmp_path / "templates" / "tiny"
    folder.mkdir(parents=True)
    (folder / "template.yaml").write_text(TEMPLATE)
    catalog = Catalog([tmp_path / "templates"], [tmp_path / "presets"])
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    return Engine(store, ReachableBackend(), catalog, BridgeBundler(tmp_path / "cache"))  # type: ignore[arg-type]


def test_create_and_send_refuse_more_than_the_template_takes(engine: Engine) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        engine.create_task(
            template="tiny", preset=None, prompt="é" * 51, parameters={}, name=None, owner="t"
        )
    assert str(caught.value).startswith(
        "the prompt is 102 bytes; template tiny takes at most 100 bytes"
    )
    task = engine.create_task(
        template="tiny", preset=None, prompt="x" * 100, parameters={}, name="t", owner="t"
    )
    assert task.status == Status.PENDING  # a pending task keeps what is sent for later
    with pytest.raises(PayloadTooLarge, match=r"^the input is 101 bytes; template tiny takes"):
        engine.send(task.id, "y" * 101)
    assert [p["content"] for p in engine.store.prompts(task.id)] == ["x" * 100]
    engine.store.close()


def test_a_template_cannot_raise_the_limit() -> None:
    assert AgentProfile().max_prompt_bytes == MAX_PROMPT_BYTES
    with pytest.raises(ValidationError):
        AgentProfile(max_prompt_bytes=MAX_PROMPT_BYTES + 1)
