"""Schemathesis over the real server's OpenAPI document, as an admin, on a real daemon:
no answer is a 5xx, and every answer matches the document (status code and schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from provisioner.server.main import build_engine
from tests.docker.conftest import remove_instance
from tests.serving import admin_headers, serve

EXAMPLES = 15  # per operation: enough to reach every validation branch, bounded in time


@pytest.fixture(scope="module")
def served(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("dockyard-fuzz")
    engine = build_engine(home)
    instance = engine.backend.instance  # type: ignore[attr-defined]
    try:
        with serve(engine, home) as url:
            yield url, home
    finally:
        remove_instance(docker_client, instance)
        engine.store.close()


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, Path]) -> Any:
    url, home = served
    document = httpx.get(f"{url}/openapi.json", headers=admin_headers(home)).json()
    return schemathesis.openapi.from_dict(document)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_every_request_as_documented(case: Any, served: tuple[str, Path]) -> None:
    url, home = served
    if case.query and "wait" in case.query:
        case.query["wait"] = 0  # a long poll of a minute per example would only cost time
    case.call_and_validate(
        base_url=url,
        headers=admin_headers(home),
        timeout=60,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
