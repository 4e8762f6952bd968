"""A workspace's ports, reached through the server: `task port-forward` (a TCP tunnel
over a WebSocket) and preview URLs (`/api/dockyard/v1/tasks/{ref}/apps/{port or app}/...`,
also at the /api/v2 alias; HTTP and WebSocket, proxied).

No host port is ever published: the server reaches the workspace's port through the
backend's `open_port` (a connection to the container's address on its network; on Swarm
a stream the task's bridge carries), under the
task's authorization (the owner or an admin; others' tasks are not found). The caller's
API token is never passed on to the workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from provisioner import access, previews
from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.errors import (
    BackendError,
    BridgeFailure,
    DockyardError,
    Forbidden,
    ParameterError,
    TaskNotFound,
    Unauthenticated,
)
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES, _status_code
from provisioner.server.port_streams import port_client
from provisioner.server.prefixes import DOCKYARD
from provisioner.server.workspace_api import WorkspaceAccess, principal_of

# hop-by-hop headers (RFC 9110 7.6.1), and what must never reach the workspace
DROPPED_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "content-length",
    }
)
DROPPED_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "trailer",
        "upgrade",
        "content-length",
        # an app must not wipe the dashboard's session or storage on this host
        "clear-site-data",
    }
)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CONNECT_TIMEOUT_S = 10.0
MAX_APP_FRAME = 16 * 1024 * 1024  # one message from a previewed app's WebSocket
PREVIEW_KEY = "preview_key"  # the setting holding the key preview grants are signed with


def resolve_port(task: Task, app: str) -> int:
    """A port number, or the name of one of the task's declared apps, as a port."""
    named = {a.name: a.port for a in access.apps_of(task.policy)}
    if app in named:
        return named[app]
    if not app.isdigit() or len(app) > 5:
        raise ParameterError(
            f"{app[:40]!r} is neither a port nor an app of task {task.name}",
            hint="apps: " + (", ".join(f"{n} ({p})" for n, p in named.items()) or "none"),
        )
    try:
        return access.check_port(int(app))
    except access.AccessDenied as exc:
        raise ParameterError(str(exc)) from exc
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc


def build_proxy_router(engine: Engine) -> APIRouter:
    """Port forwarding and preview URLs, bound to one engine."""
    r = APIRouter(prefix="/api/v2")
    ctx = WorkspaceAccess(engine)
    # URLs name the task's id as their host: the client's connections are the backend's
    # streams to that task's ports (port_streams.py)
    client = port_client(
        lambda task_id, port: engine.backend.open_port(task_id, port),
        httpx.Timeout(60.0, connect=CONNECT_TIMEOUT_S),
    )

    def target(who: Principal, ref: str, app: str, action: str) -> tuple[Task, str, int]:
        task = ctx.task(who, ref, action)
        ctx.running(task)
        port = resolve_port(task, app)
        return task, task.id, port

    def open_stream(task: Task, port: int) -> socket.socket:
        try:
            return engine.backend.open_port(task.id, port)
        except (BackendError, OSError) as exc:
            detail = exc.message if isinstance(exc, BackendError) else str(exc)
            raise BridgeFailure(
                f"nothing answers on port {port} of task {task.name}'s workspace ({detail})"[:300],
                hint="start the app in the workspace (dockyard task exec), then try again",
            ) from exc

    async def http_proxy(request: Request, ref: str, app: str, path: str = "") -> Any:
        who = principal_of(request.state)
        task, host, port = await run_in_threadpool(target, who, ref, app, "task.app")
        if getattr(request.state, "by_session", False):
            # a browser with the dashboard's session: never served at the dashboard's
            # own paths, but under a grant of this task's port (previews.py)
            return await run_in_threadpool(to_grant, request, who, task, port, path)
        prefix = f"{DOCKYARD}/tasks/{ref}/apps/{app}"
        return await proxy_http(request, task, host, port, path, prefix)

    def to_grant(request: Request, who: Principal, task: Task, port: int, path: str) -> Any:
        if request.method not in ("GET", "HEAD"):
            raise Forbidden(
                "A preview is opened in the browser with GET, then used at its grant's URL",
                hint="scripts send Authorization: Bearer <token> instead of the session",
            )
        grant = previews.make_grant(preview_key(), task.id, port, who.user, time.time())
        location = previews.preview_path(DOCKYARD, grant) + path
        if request.url.query:
            location += "?" + request.url.query
        ctx.record(task, "preview", who, f"preview of port {port} opened in a browser")
        return Response(
            status_code=303,
            headers={"location": location, "referrer-policy": "no-referrer"},
        )

    key_cache: list[bytes] = []

    def preview_key() -> bytes:
        """The key grants are signed with: one per database, so every server sharing it
        agrees; made by the first server that needs it."""
        if not key_cache:
            value = engine.store.change_setting(
                PREVIEW_KEY,
                lambda current: (
                    current
                    if current and isinstance(current.get("key"), str)
                    else {"key": secrets.token_hex(32)}
                ),
            )
            assert value is not None
            key_cache.append(bytes.fromhex(value["key"]))
        return key_cache[0]

    def granted(grant: str) -> tuple[Task, str, int, str]:
        """The task, host and port a grant opens, and its user; a 401 for a grant that is
        forged or expired, a 404 when its task is gone or no longer the user's."""
        found = previews.read_grant(preview_key(), grant, time.time())
        if found is None:
            raise Unauthenticated(
                "This preview link is not valid or has expired",
                hint="open the preview again from the dashboard (or its "
                "/api/dockyard/v1/tasks/TASK/apps/PORT/ address)",
            )
        user = engine.store.user(found.user)
        task = engine.store.get(found.task_id)
        if user is None:
            raise Unauthenticated("The user of this preview link was removed")
        if task.owner != found.user and user.get("role") != "admin":
            raise TaskNotFound(f"No task {found.task_id!r}")
        ctx.running(task)
        return task, task.id, found.port, found.user

    async def preview(request: Request, grant: str, path: str = "") -> Any:
        task, host, port, _ = await run_in_threadpool(granted, grant)
        return await proxy_http(
            request, task, host, port, path, previews.preview_path(DOCKYARD, grant)[:-1]
        )

    async def preview_root(request: Request, grant: str) -> Any:
        # relative links resolve against the directory: the root has its slash
        await run_in_threadpool(granted, grant)
        return Response(
            status_code=308,
            headers={"location": previews.preview_path(DOCKYARD, grant)},
        )

    async def proxy_http(
        request: Request, task: Task, host: str, port: int, path: str, prefix: str
    ) -> Any:
        headers = [
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in DROPPED_REQUEST and k.lower() != "cookie"
        ]
        cookies = previews.request_cookies(request.headers.get("cookie"))
        if cookies:
            headers.append(("cookie", cookies))  # the app's own, never ours
        # localhost: what a development server allows by default (the task's id is not a
        # name the app knows)
        headers += [("x-forwarded-prefix", prefix), ("host", f"localhost:{port}")]
        url = httpx.URL(f"http://{host}:{port}/{path}")
        if request.url.query:  # none: no bare "?" either (the app sees the path as asked)
            url = url.copy_with(query=request.url.query.encode())
        body = await request.body()  # bounded by the request guard (8 MiB)
        upstream = client.build_request(request.method, url, headers=headers, content=body)
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            raise BridgeFailure(
                f"nothing answers on port {port} of task {task.name}'s workspace ({exc!r})"[:300],
                hint="start the app in the workspace (dockyard task exec), then try again",
            ) from exc
        out_headers = []
        for k, v in answer.headers.multi_items():
            if k.lower() in DROPPED_RESPONSE:
                continue
            if k.lower() == "set-cookie":
                confined = previews.confined_cookie(v, prefix + "/")
                if confined is not None:
                    out_headers.append((k, confined))
                continue
            out_headers.append((k, v))
        # the app is hostile code on our host: an opaque origin, and no Referer out
        out_headers += [
            ("content-security-policy", previews.SANDBOX),
            ("referrer-policy", "no-referrer"),
        ]

        async def relay() -> AsyncIterator[bytes]:
            async for chunk in answer.aiter_raw():
                yield chunk

        response = StreamingResponse(
            relay(), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
        )
        response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers]
        return response

    @r.get("/tasks/{ref}/apps", responses=ERROR_RESPONSES)
    async def list_apps(ref: str, who: Principal = Depends(caller)) -> dict[str, Any]:
        """The ports the task's template declares (`apps:`), where the server previews
        them, and, for an app with a health path while the workspace runs, whether it
        answers (`up`: true or false; null when not asked)."""
        task = await run_in_threadpool(ctx.task, who, ref, "task.apps")
        apps = access.apps_of(task.policy)
        host = task.id if task.status == Status.ACTIVE else None

        async def up(app: access.AppConfig) -> bool | None:
            if host is None or app.health is None:
                return None
            try:
                answer = await client.get(
                    f"http://{host}:{app.port}{app.health}",
                    headers={"host": f"localhost:{app.port}"},
                    timeout=2.0,
                )
            except httpx.HTTPError:
                return False
            return answer.status_code < 500

        states = await asyncio.gather(*(up(a) for a in apps))
        return {
            "apps": [
                {
                    **a.model_dump(),
                    "path": f"{DOCKYARD}/tasks/{task.name}/apps/{a.name}/",
                    "up": state,
                }
                for a, state in zip(apps, states, strict=True)
            ]
        }

    r.add_api_route(
        "/previews/{grant}/{path:path}", preview, methods=METHODS, include_in_schema=False
    )
    r.add_api_route("/previews/{grant}", preview_root, methods=METHODS, include_in_schema=False)
    r.add_api_route(
        "/tasks/{ref}/apps/{app}/{path:path}", http_proxy, methods=METHODS, include_in_schema=False
    )
    r.add_api_route("/tasks/{ref}/apps/{app}", http_proxy, methods=METHODS, include_in_schema=False)

    async def refuse(websocket: WebSocket, exc: DockyardError) -> None:
        status = _status_code(exc)
        with contextlib.suppress(Exception):
            await websocket.send_json({"error": exc.message, "hint": exc.hint, "status": status})
            await websocket.close(code=4000 + status)

    @r.websocket("/tasks/{ref}/ports/{port}")
    async def forward(websocket: WebSocket, ref: str, port: str) -> None:
        """A TCP connection to the workspace's `port`: binary messages both ways."""
        await websocket.accept()
        try:
            who = principal_of(websocket.state)
            task, _, number = await run_in_threadpool(target, who, ref, port, "task.forward")
            # counted until the tunnel ends, however it ends (session_limits)
            engine.sessions.acquire(task.id, task.name, who.user)
            try:
                sock = await run_in_threadpool(open_stream, task, number)
                sock.setblocking(False)
                reader, writer = await asyncio.open_connection(sock=sock)
            except BaseException:
                engine.sessions.release(task.id, who.user)
                raise
        except DockyardError as exc:
            await refuse(websocket, exc)
            return
        try:
            await run_in_threadpool(
                ctx.record, task, "port-forward", who, f"connection to port {number}"
            )
            await websocket.send_json({"connected": True})
            await _tunnel(websocket, reader, writer)
        finally:
            writer.close()
            engine.sessions.release(task.id, who.user)

    async def _tunnel(
        websocket: WebSocket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Bytes both ways until either side closes."""

        async def upstream() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data:
                    writer.write(data)
                    await writer.drain()

        async def downstream() -> None:
            while data := await reader.read(65536):
                await websocket.send_bytes(data)

        await _race(upstream(), downstream())
        writer.close()
        with contextlib.suppress(Exception):
            await websocket.close()

    async def websocket_proxy(websocket: WebSocket, ref: str, app: str, path: str = "") -> None:
        await websocket.accept()
        try:
            who = principal_of(websocket.state)
            task, host, port = await run_in_threadpool(target, who, ref, app, "task.app")
        except DockyardError as exc:
            await refuse(websocket, exc)
            return
        await join_websocket(websocket, task, host, port, path)

    async def preview_websocket(websocket: WebSocket, grant: str, path: str = "") -> None:
        await websocket.accept()
        try:
            task, host, port, _ = await run_in_threadpool(granted, grant)
        except DockyardError as exc:
            await refuse(websocket, exc)
            return
        await join_websocket(websocket, task, host, port, path)

    async def join_websocket(
        websocket: WebSocket, task: Task, host: str, port: int, path: str
    ) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        query = websocket.url.query
        url = f"ws://localhost:{port}/{path}" + (f"?{query}" if query else "")
        try:
            sock = await run_in_threadpool(open_stream, task, port)
        except BridgeFailure as exc:
            await refuse(websocket, exc)
            return
        sock.setblocking(False)
        try:
            upstream_ws = await asyncio.wait_for(
                connect(url, sock=sock, open_timeout=CONNECT_TIMEOUT_S, max_size=MAX_APP_FRAME),
                CONNECT_TIMEOUT_S + 1,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            sock.close()
            await refuse(
                websocket,
                BridgeFailure(
                    f"no WebSocket answers on port {port} of task {task.name} ({exc})"[:300]
                ),
            )
            return

        async def to_app() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await upstream_ws.send(message["bytes"])
                elif message.get("text") is not None:
                    await upstream_ws.send(message["text"])

        async def from_app() -> None:
            async for message in upstream_ws:
                if isinstance(message, bytes):
                    await websocket.send_bytes(message)
                else:
                    await websocket.send_text(message)

        await _race(to_app(), from_app())
        await upstream_ws.close()
        with contextlib.suppress(Exception):
            await websocket.close()

    r.add_api_websocket_route("/previews/{grant}/{path:path}", preview_websocket)
    r.add_api_websocket_route("/tasks/{ref}/apps/{app}/{path:path}", websocket_proxy)
    r.add_api_websocket_route("/tasks/{ref}/apps/{app}", websocket_proxy)
    return r


async def _race(*coroutines: Any) -> None:
    """Run the pumps until one ends (either side closed); cancel the rest."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
