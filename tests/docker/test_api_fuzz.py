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
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from provisioner.server.main import build_engine
from tests.docker.conftest import remove_instance
from tests.polling import HTTP_TIMEOUT
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


def _operations(url: str, home: Path) -> list[Any]:
    """Every operation of the server's own OpenAPI document."""
    document = httpx.get(
        f"{url}/openapi.json", headers=admin_headers(home), timeout=HTTP_TIMEOUT
    ).json()
    schema = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in schema.get_all_operations()]


def test_the_api_answers_every_request_as_documented(served: tuple[str, Path]) -> None:
    # Driven with hypothesis directly rather than schemathesis' pytest plugin, which
    # reaches into pytest internals that change between pytest releases.
    url, home = served
    operations = _operations(url, home)
    assert len(operations) > 20
    failures: list[str] = []
    calls: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if case.query and "wait" in case.query:
                case.query["wait"] = 0  # a minute's long poll per example only costs time
            calls.append(case.operation.label)
            case.call_and_validate(
                base_url=url,
                headers=admin_headers(home),
                timeout=60,
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
            )

        try:
            check()
        except Exception as exc:  # one line per operation that broke, then all at once
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert set(calls) == {op.label for op in operations}  # every route was exercised
    assert not failures, "\n\n".join(failures)
