"""A real server refuses bad text in a request body before anything happens (400 or 413,
naming the field); its Docker daemon is missing, so nothing could be created anyway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provisioner.backends.docker import DockerBackend
from provisioner.backends.docker_client import DockerClient
from provisioner.engine.engine import Engine
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import BridgeBundler
from provisioner.prompts import MAX_PROMPT_BYTES
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_headers, serve


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    dead = DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")
    store = Store(sqlite_url(tmp_path / "db.sqlite"))
    engine = Engine(
        store,
        DockerBackend("test", dead),
        Catalog(),
        BridgeBundler(tmp_path / "cache"),
        secrets=SecretStore(tmp_path),
    )
    with serve(engine, tmp_path) as base:
        AUTH[base] = admin_headers(tmp_path)
        yield base
    store.close()


AUTH: dict[str, dict[str, str]] = {}  # the admin's headers of each served URL


def post(url: str, path: str, raw_json: str) -> httpx.Response:
    # raw: a lone surrogate can only be sent as a JSON escape
    headers = {"Content-Type": "application/json", **AUTH[url]}
    return httpx.post(url + path, content=raw_json.encode(), headers=headers, timeout=HTTP_TIMEOUT)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('"prompt": "x \\ud800"', "prompt"),
        ('"name": "a\\udc00"', "name"),
        ('"preset": "\\ud800"', "preset"),
        ('"template": "scr\\ud800"', "template"),
        ('"template_version": "\\ud800"', "template_version"),
        ('"parameters": {"memory": "1\\ud800"}', "parameters.memory"),
        ('"parameters": {"memory": "1\\u0000"}', "parameters.memory"),
        ('"parameters": {"m\\ud800": "1"}', "a key of parameters"),
    ],
)
def test_invalid_text_in_any_create_field_is_a_400_naming_it(
    url: str, tmp_path: Path, extra: str, field: str
) -> None:
    # a later key wins in JSON: the bad field replaces the good default
    body = '{"template": "scripted", "prompt": "x", ' + extra + "}"
    response = post(url, "/api/v2/tasks", body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field} contains ")
    assert not (tmp_path / "secrets").exists() or not list((tmp_path / "secrets").iterdir())
    assert (
        httpx.get(url + "/api/dockyard/v1/tasks", headers=AUTH[url], timeout=HTTP_TIMEOUT).json()[
            "tasks"
        ]
        == []
    )


def test_control_characters_in_a_prompt_are_a_400(url: str) -> None:
    response = post(url, "/api/v2/tasks", '{"template": "scripted", "prompt": "text\\u0015/w"}')
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "the prompt contains control character U+0015 (Ctrl-U) at position 4; "
        "only newlines and tabs are allowed"
    )
    response = post(url, "/api/v2/tasks/any/send", '{"input": "\\u0004"}')
    assert response.status_code == 400
    assert "the input contains control character U+0004 (Ctrl-D) at position 0" in response.text
    response = post(url, "/api/v2/tasks/any/send", '{"input": "x \\ud800"}')
    assert response.status_code == 400 and "unpaired surrogate" in response.text


def test_a_prompt_over_the_limit_is_a_413_with_the_limit(url: str) -> None:
    big = "x" * (MAX_PROMPT_BYTES + 1)
    for path, body in [
        ("/api/v2/tasks", f'{{"template": "scripted", "prompt": "{big}"}}'),
        ("/api/v2/tasks/any/send", f'{{"input": "{big}"}}'),
    ]:
        response = post(url, path, body)
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        limit = f"Dockyard takes at most {MAX_PROMPT_BYTES} bytes (256 KiB)"
        assert f" is {MAX_PROMPT_BYTES + 1} bytes; {limit}" in detail
        assert len(detail) < 200


def test_a_huge_bad_name_is_not_echoed_whole(url: str) -> None:
    body = '{"template": "scripted", "prompt": "x", "name": "' + "A" * 100_000 + '"}'
    response = post(url, "/api/v2/tasks", body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("Invalid task name 'AAAA") and len(detail) < 200
