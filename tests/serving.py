"""Running a real Dockyard server (uvicorn in a thread, free port) inside the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from provisioner.engine.engine import Engine
from provisioner.paths import admin_token_path
from provisioner.server.main import create_app


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(engine: Engine, home: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the engine's API until the block ends; yields the base URL (on loopback)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(engine, home, [host]), host=host, port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def admin_token(home: Path) -> str:
    """The API token of the local admin the server of `home` made for itself."""
    return admin_token_path(home).read_text().strip()


def admin_headers(home: Path) -> dict[str, str]:
    """Headers that authenticate a request as the local admin of `home`."""
    return {"Authorization": f"Bearer {admin_token(home)}"}


def admin_env(url: str, home: Path) -> dict[str, str]:
    """The environment of a `dockyard` command run as `home`'s admin against `url`."""
    return {"DOCKYARD_URL": url, "DOCKYARD_TOKEN": admin_token(home)}
