"""Assembling and running a server: store + backend + engine + API, on one home."""

from __future__ import annotations

import argparse
import asyncio
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
from provisioner.engine.kept import KeptBundles
from provisioner.engine.routing import check_targets
from provisioner.engine.secrets import SecretStore
from provisioner.engine.workspace import BridgeBundler
from provisioner.errors import DockyardError, TaskNotFound
from provisioner.net import is_loopback_host
from provisioner.server.a2a.routes import a2a_routes
from provisioner.server.accounts_api import build_accounts_router
from provisioner.server.api import build_router, install_error_handler
from provisioner.server.auth import Authenticator
from provisioner.server.backend_config import configured_backends
from provisioner.server.bootstrap import ensure_local_admin
from provisioner.server.coder.app import build_coder_app
from provisioner.server.dashboard_api import mount_dashboard
from provisioner.server.doctor_api import build_doctor_router
from provisioner.server.guard import RequestGuard
from provisioner.server.logformat import RequestIds, check_format
from provisioner.server.logformat import configure as configure_logging
from provisioner.server.mcp.app import build_mcp_server, mcp_route
from provisioner.server.mcp.relay import LocalMcp
from provisioner.server.metrics_api import (
    MetricsListener,
    build_metrics_router,
    metrics_registry,
    parse_bind,
)
from provisioner.server.prefixes import ApiPrefixes, combined_openapi
from provisioner.server.webhook_dispatch import Dispatcher
from provisioner.server.webhooks_api import build_webhooks_router
from provisioner.session_limits import OpenSessions
from provisioner.store.store import Store, sqlite_url
from provisioner.templating.catalog import Catalog
from provisioner.templating.versions import VersionStore


def build_engine(home: Path) -> Engine:
    """The default wiring: SQLite in the home, local Docker, built-in templates."""
    pricing = paths.pricing(home)  # a wrong table stops the server before anything opens
    targets = paths.targets(home)  # a bad config fails before anything is opened
    store = Store(
        os.environ.get("DOCKYARD_DATABASE_URL") or sqlite_url(home / "dockyard.db"),
        pool=paths.database_pool(home),
    )
    docker = DockerBackend(instance=paths.instance_id(home))

    def backend_of(task_id: str) -> str | None:
        try:
            return str(store.get(task_id).policy.get("backend") or "docker")
        except TaskNotFound:
            return None

    terraform = TerraformBackend(docker.instance, home, docker.docker, images=docker.images)
    backends = configured_backends(
        home, docker, {"terraform": terraform}, lambda task_id: store.get(task_id).bridge_token
    )
    backend = BackendRouter(backends, backend_of)
    catalog = Catalog(versions=VersionStore(home / "templates"))
    check_targets(catalog, targets)
    return Engine(
        store,
        backend,
        catalog,
        BridgeBundler(paths.cache_dir()),
        secrets=SecretStore(home),
        max_workspaces=paths.max_workspaces(home),
        pricing=pricing,
        targets=targets,
        retention=paths.default_retention(home),
        kept=KeptBundles(home / "kept", *paths.kept_bundles(home)),
        sessions=OpenSessions(paths.session_limits(home)),
    )


def allowed_hosts_from_env() -> list[str]:
    """DOCKYARD_ALLOWED_HOSTS: more names the server answers to (comma-separated)."""
    raw = os.environ.get("DOCKYARD_ALLOWED_HOSTS", "")
    return [h.strip() for h in raw.split(",") if h.strip()]


def create_app(
    engine: Engine, home: Path, allowed_hosts: list[str] | None = None, log_format: str = "text"
) -> FastAPI:
    """The FastAPI app; starts the engine with the app and stops it after.

    Every request passes the guard (Host, Origin, content type, size), then needs an API
    token; the home gets a local admin token first (see bootstrap).
    """
    ensure_local_admin(engine.store, home)
    names = [socket.gethostname(), socket.getfqdn(), *(allowed_hosts or [])]
    names += allowed_hosts_from_env()
    route, mcp_sessions = mcp_route(build_mcp_server(engine))
    webhooks = paths.webhook_settings(home)
    dispatcher = Dispatcher(engine.store, webhooks)
    registry = metrics_registry(engine.store)
    bind = paths.metrics_bind(home)
    listener = None
    if bind is not None:
        listener = MetricsListener(registry, *parse_bind(bind, "config.yaml: metrics.bind"))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the agents' MCP messages relayed from their workspaces reach /mcp on this loop
        local_mcp.bind(asyncio.get_running_loop())
        engine.mcp_call = local_mcp
        engine.start()
        dispatcher.start()  # reads the events the engine writes; never holds it up
        if listener is not None:
            listener.start()
        try:
            async with mcp_sessions.run():  # the MCP route's task group
                yield
        finally:
            if listener is not None:
                listener.stop()
            dispatcher.stop()
            engine.stop()

    app = FastAPI(
        title="Dockyard", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_error_handler(app)
    app.include_router(build_router(engine, str(home)))
    app.include_router(build_accounts_router(engine.store))
    app.include_router(build_webhooks_router(engine.store, webhooks))
    app.include_router(build_metrics_router(registry))
    app.include_router(build_doctor_router(engine.store, home))
    app.state.metrics_listener = listener  # its port, for whoever started the app
    mount_dashboard(app, engine.store)  # the web dashboard at /
    # A2A (card + JSON-RPC): plain Starlette routes of the SDK, outside the OpenAPI
    # document; the middleware below authenticates them like every other path
    app.router.routes.extend(a2a_routes(engine, paths.settings(home), webhooks))
    # MCP (tools over Streamable HTTP at /mcp): outside the OpenAPI document; the
    # middleware below authenticates it like every other path
    app.router.routes.append(route)
    # Dockyard's routes at /api/dockyard/v1 (and /api/v2 aliases); Coder's surface first
    # where it claims a path under /api/v2 or /api/experimental (see prefixes)
    coder = build_coder_app(engine)
    app.openapi = combined_openapi(app, coder)  # type: ignore[method-assign]
    app.add_middleware(ApiPrefixes, coder=coder)
    # the last added runs first: the guard, then authentication, then the routes
    app.add_middleware(Authenticator, store=engine.store, coder=coder)
    app.add_middleware(RequestGuard, allowed_hosts=names)
    local_mcp = LocalMcp(app)
    # outermost: a refused request has its id too, and every line logged for it
    app.add_middleware(RequestIds, access_log=log_format == "json")
    return app


def run_server(
    host: str = "127.0.0.1",
    port: int = 0,
    home: Path | None = None,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allowed_hosts: list[str] | None = None,
    log_format: str | None = None,
) -> None:
    """Serve until interrupted; writes HOME/server.json once listening.

    `log_format` (text or json) overrides `log_format:` in config.yaml (default text)."""
    if (tls_cert is None) != (tls_key is None):
        raise DockyardError("TLS needs both --tls-cert and --tls-key")
    home = paths.home_dir(home)
    if log_format is None:
        log_format = str(paths.settings(home).get("log_format") or "text")
        where = f"{home / 'config.yaml'}: log_format"
    else:
        where = "--log-format"
    configure_logging(check_format(log_format, where))
    engine = build_engine(home)
    app = create_app(engine, home, [host, *(allowed_hosts or [])], log_format=log_format)
    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # so asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    scheme = "https" if tls_cert else "http"
    # the CLI on this machine reads server.json: a wildcard bind is reached on loopback
    near = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"{scheme}://{near}:{sock.getsockname()[1]}"
    address_file = home / "server.json"
    token_file = paths.admin_token_path(home)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            say = logging.getLogger("dockyard").info
            say("Dockyard %s serving at %s", __version__, url)
            say("every request needs an API token; the admin token is in %s", token_file)
            if not is_loopback_host(host):
                say(
                    "listening beyond this machine on %s: give users their own tokens "
                    "(dockyard user create / token create)%s",
                    host,
                    ""
                    if tls_cert
                    else "; without --tls-cert/--tls-key tokens cross the "
                    "network in the clear, so put a TLS reverse proxy in front",
                )
            # last: whoever waits for server.json finds these lines in the log already
            tmp = address_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
            tmp.replace(address_file)

    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through ours (JSON too), not its own handlers
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    server = _Server(config)
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
    parser.add_argument("--tls-cert", type=Path, default=None)
    parser.add_argument("--tls-key", type=Path, default=None)
    parser.add_argument("--allowed-host", action="append", default=[])
    parser.add_argument("--log-format", choices=["text", "json"], default=None)
    args = parser.parse_args()
    run_server(
        args.host,
        args.port,
        args.home,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allowed_hosts=args.allowed_host,
        log_format=args.log_format,
    )
