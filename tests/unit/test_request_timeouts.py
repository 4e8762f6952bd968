"""Every request a test makes with httpx names its timeout.

httpx's default (5 s) is shorter than a loaded CI machine needs: tests that only had to
wait for an answer failed with ReadTimeout. A test uses tests.polling.HTTP_TIMEOUT, or a
timeout of its own where the timeout is part of what it checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# module-level calls that send a request, and clients whose requests inherit a timeout
SENDERS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "stream"}
CLIENTS = {"Client", "AsyncClient"}


def _untimed(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("httpx", "httpx2")
            and node.func.attr in SENDERS | CLIENTS
        ):
            continue
        names = {k.arg for k in node.keywords}
        if "timeout" in names or None in names:  # None: **kwargs, checked where they come from
            continue
        if node.func.attr in CLIENTS and "transport" in names:
            continue  # an in-process transport (MockTransport, ASGI): no network to wait on
        lines.append(node.lineno)
    return lines


def test_every_httpx_request_in_the_tests_names_its_timeout() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if "vendor" in path.parts:
            continue
        for line in _untimed(ast.parse(path.read_text(), str(path))):
            found.append(f"{path.relative_to(TESTS.parent)}:{line}")
    assert not found, (
        "httpx requests without a timeout (its 5 s default fails on a loaded machine); "
        "pass timeout=HTTP_TIMEOUT from tests.polling:\n" + "\n".join(found)
    )


def test_the_check_sees_an_untimed_request() -> None:
    tree = ast.parse(
        "httpx.get(url)\n"
        "httpx.post(url, timeout=HTTP_TIMEOUT)\n"
        "httpx.Client(base_url=url)\n"
        "httpx.Client(transport=t)\n"
        "httpx.request('GET', url, **kw)\n"
    )
    assert _untimed(tree) == [1, 3]
