"""Secret parameters given to a schedule or a trigger are kept as a task's are: out of the
database (checked on the file itself), masked in every API and CLI answer, and handed to
the tasks they make."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from cli.main import cli as dockyard
from provisioner import paths
from provisioner.engine.secrets import recipe_key
from provisioner.templating.params import REDACTED, split_secrets, with_secrets
from provisioner.triggers import github_signature
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve

__all__ = ["bridge_cache"]

VALUE = "sk-recipe-0123456789-abcdef"  # the secret: must never reach the database
SIGNING = "s3cret-s3cret-s3cret"


class Site:
    def __init__(self, h: Harness, url: str, cli_home: Path) -> None:
        self.h, self.url = h, url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        url = f"{self.url}/api/dockyard/v1{path}"
        return httpx.request(
            method, url, headers=admin_headers(self.h.home), timeout=HTTP_TIMEOUT, **kw
        )

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(dockyard, list(args), env=self.env)
        assert result.exit_code == 0, result.output
        return result.output

    def database_bytes(self) -> bytes:
        """The SQLite database as stored, its write-ahead log included."""
        return b"".join(p.read_bytes() for p in self.h.home.glob("dockyard.db*"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("recipe-secrets")
    with harness_at(root / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        manifest = paths.builtin_templates_dir() / "scripted" / "template.yaml"
        base = yaml.safe_load(manifest.read_text())
        token = {"name": "token", "type": "string", "secret": True, "default": ""}
        h.add_scripted_variant("keyed", parameters=[*base["parameters"], token])
        yield Site(h, url, root / "cli-home")


def test_split_and_rejoin_are_pure() -> None:
    assert split_secrets(None, {"a": 1}) == ({"a": REDACTED}, {"a": 1})
    assert with_secrets({"a": REDACTED, "b": 2}, {"a": "x"}) == {"a": "x", "b": 2}
    # a mask whose value is gone is left out, never sent as the value
    assert with_secrets({"a": REDACTED, "b": 2}, {}) == {"b": 2}


def test_a_schedules_secret_is_kept_apart_and_reaches_its_tasks(site: Site) -> None:
    made = site.cli(
        "schedule", "create", "nightly-keyed", "Use the key",
        "--cron", "0 3 * * *", "--template", "keyed",
        "--param", "work_seconds=0.05", "--param", f"token={VALUE}",
    )  # fmt: skip
    assert VALUE not in made
    shown = site.api("GET", "/schedules/nightly-keyed").json()
    assert shown["parameters"] == {"work_seconds": "0.05", "token": REDACTED}
    for text in (
        site.cli("schedule", "show", "nightly-keyed", "-o", "json"),
        site.cli("schedule", "list", "-o", "json"),
        site.api("GET", "/schedules").text,
    ):
        assert VALUE not in text
    assert VALUE.encode() not in site.database_bytes()
    key = recipe_key("schedule", shown["id"])
    assert site.h.engine.secrets.load(key) == {"token": VALUE}

    ran = site.api("POST", "/schedules/nightly-keyed/run")
    assert ran.status_code == 201, ran.text
    task = site.h.task(ran.json()["id"])
    assert task.parameters["token"] == REDACTED and VALUE not in ran.text
    assert site.h.engine.secrets.load(task.id)["token"] == VALUE  # the run has the real one
    site.h.wait_idle(task.id)
    assert VALUE.encode() not in site.database_bytes()

    assert site.api("DELETE", "/schedules/nightly-keyed").status_code == 200
    assert site.h.engine.secrets.load(key) == {}  # forgotten with its schedule


def test_a_triggers_secret_is_kept_apart_and_reaches_its_tasks(site: Site) -> None:
    body = {
        "name": "keyed-hook",
        "secret": SIGNING,
        "template": "keyed",
        "parameters": {"work_seconds": 0.05, "token": VALUE},
    }
    made = site.api("POST", "/triggers", json=body)
    assert made.status_code == 201, made.text
    assert VALUE not in made.text and made.json()["parameters"]["token"] == REDACTED
    assert VALUE not in site.cli("trigger", "list", "-o", "json")
    assert VALUE not in site.api("GET", "/triggers/keyed-hook").text
    assert VALUE.encode() not in site.database_bytes()

    payload = json.dumps({"prompt": "Use the key"}).encode()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": github_signature(SIGNING, payload),
        "x-github-delivery": "k-1",
    }
    url = f"{site.url}/api/dockyard/v1/triggers/keyed-hook"
    reply = httpx.post(url, content=payload, headers=headers, timeout=HTTP_TIMEOUT)
    assert reply.status_code == 201, reply.text
    task_id = reply.json()["task"]["id"]
    assert site.h.engine.secrets.load(task_id)["token"] == VALUE
    assert site.h.task(task_id).parameters["token"] == REDACTED

    trigger_id = made.json()["id"]
    assert site.api("DELETE", "/triggers/keyed-hook").status_code == 200
    assert site.h.engine.secrets.load(recipe_key("trigger", trigger_id)) == {}
    assert VALUE.encode() not in site.database_bytes()
