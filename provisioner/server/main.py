"""Assembling and running a server: store + backend + engine + API, on one home."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from provisioner import __version__, paths
from provisioner.backends.docker import DockerBackend
from provisioner.backends.router import BackendRouter
from provisioner.backends.terraform import TerraformBackend
from provisioner.engine.engine import Engine
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import TaskNotFound
from provisioner.server.api import build_router, install_error_handler
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore


def build_engine(home: Path) -> Engine:
    """The default wiring: SQLite in the home, local Docker, built-in templates."""
    store = Store(os.environ.get("DOCKYARD_DATABASE_URL") or sqlite_url(home / "dockyard.db"))
    docker = DockerBackend(instance=paths.instance_id(home))

    def backend_of(task_id: str) -> str | None:
        try:
            return str(store.get(task_id).policy.get("backend") or "docker")
        except TaskNotFound:
            return None

    terraform = TerraformBackend(docker.instance, home, docker.docker, images=docker.images)
    backend = BackendRouter({"docker": docker, "terraform": terraform}, backend_of)
    catalog = Catalog(versions=VersionStore(home / "templates"))
    return Engine(
        store,
        backend,
        catalog,
        BridgeBundler(paths.cache_dir()),
        secrets=SecretStore(home),
        max_workspaces=paths.max_workspaces(home),
    )


def create_app(engine: Engine, home: Path) -> FastAPI:
    """The FastAPI app; starts the engine with the app and stops it after."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(title="Dockyard", version=__version__, lifespan=lifespan)
    install_error_handler(app)
    app.include_router(build_router(engine, str(home)))
    return app


def run_server(host: str = "127.0.0.1", port: int = 0, home: Path | None = None) -> None:
    """Serve until interrupted; writes HOME/server.json once listening."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per bridge poll is noise
    home = paths.home_dir(home)
    engine = build_engine(home)
    app = create_app(engine, home)
    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # so asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    url = f"http://{host}:{sock.getsockname()[1]}"
    address_file = home / "server.json"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            tmp = address_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
            tmp.replace(address_file)
            logging.getLogger("dockyard").info("Dockyard %s serving at %s", __version__, url)

    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(address_file.read_text()).get("pid") == os.getpid():
                address_file.unlink()


def cli_main() -> None:
    """Entry point of `python -m provisioner.server`."""
    parser = argparse.ArgumentParser(description="Run a Dockyard server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    run_server(args.host, args.port, args.home)
