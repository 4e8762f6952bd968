"""A way into a workspace, and files out: `task exec`/`task shell` over a WebSocket,
`task cp` both ways and `task download` as tar streams.

Everything goes through the task's backend (`open_session`), never the local Docker
socket from the client, so it works against a remote server. Who may: the task's owner
or an admin (others' tasks are not found), and only as the template's `access:` allows;
each session and copy is an event of the task (`exec`, `cp`), and an admin's on
another's task is audited too.

The exec protocol (WebSocket /api/v2/tasks/{ref}/exec):
- the client's first message is JSON: {"argv": [...] or absent for a login shell, "tty",
  "rows", "cols", "root", "term"}; the server answers {"started": true} or
  {"error", "status"} and closes;
- then binary messages from the client are input; text messages are JSON controls:
  {"resize": [rows, cols]} or {"eof": true};
- binary messages from the server are output, their first byte the stream (1 stdout or
  the terminal, 2 stderr); the last message is {"exit": code}, then the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import tarfile
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from provisioner import access
from provisioner.auth.tokens import Principal
from provisioner.backends.base import WorkspaceSession
from provisioner.engine.engine import Engine
from provisioner.errors import (
    DockyardError,
    Forbidden,
    ParameterError,
    PayloadTooLarge,
    TaskConflict,
    Unauthenticated,
)
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.server import files_helper
from provisioner.server.auth import caller
from provisioner.server.http_errors import ERROR_RESPONSES, _status_code
from provisioner.server.session_pump import SessionPump
from provisioner.server.tasks_api import task_to_act_on

HELPER = inspect.getsource(files_helper)
FIRST_MESSAGE_S = 30.0


class PathNotFound(DockyardError, LookupError):
    """A path that is not in the workspace."""


def python_helper(*args: str) -> list[str]:
    # -I -S: nothing of the image's site-packages or PYTHON* variables changes the helper
    return ["python3", "-I", "-S", "-c", HELPER, *args]


def principal_of(scope_state: Any) -> Principal:
    principal = getattr(scope_state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthenticated("This server needs an API token")
    return principal


class WorkspaceAccess:
    """Finding a task a caller may reach into, and checking what its template allows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store

    def task(self, who: Principal, ref: str, action: str) -> Task:
        """The task (404 for others' tasks); an admin's act on another's is audited."""
        return task_to_act_on(self.store, who, ref, action)

    def running(self, task: Task) -> None:
        """409 unless the task's workspace runs."""
        if task.status != Status.ACTIVE:
            raise TaskConflict(
                f"Task {task.name} is {task.status.value}: its workspace does not run",
                hint=f"resume it first: dockyard task resume {task.name}",
            )

    def may_exec(self, who: Principal, task: Task, *, root: bool = False) -> None:
        try:
            access.may_exec(
                access.access_of(task.policy),
                is_owner=task.owner == who.user,
                is_admin=who.is_admin,
                root=root,
            )
        except access.AccessDenied as exc:
            raise Forbidden(str(exc), hint="the template's `access:` section decides") from exc

    def workdir(self, task: Task) -> str:
        return str(task.policy.get("workdir") or "/workspace")

    def path(self, task: Task, path: str) -> str:
        try:
            return access.workspace_path(self.workdir(task), path)
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc

    def record(self, task: Task, kind: str, who: Principal, reason: str) -> None:
        self.store.record(task.id, kind, actor=who.actor, reason=reason)


def _helper_failure(code: int, stderr: bytes, what: str) -> DockyardError:
    message = stderr.decode("utf-8", "replace").strip().splitlines()
    text = message[-1][:300] if message else f"{what} failed with exit code {code}"
    if code == files_helper.NOT_FOUND:
        return PathNotFound(text)
    if code == files_helper.REFUSED:
        return ParameterError(text)
    if code == 127:
        return TaskConflict(f"{what}: the workspace has no python3", hint="use a base image")
    return DockyardError(text)


async def _stream_out(pump: SessionPump, session: WorkspaceSession) -> AsyncIterator[bytes]:
    try:
        while True:
            stream, data = await pump.next()
            if not data:
                break
            if stream == 1:
                yield data
    finally:
        pump.stop()
        await run_in_threadpool(session.close)


async def _pack_response(
    ctx: WorkspaceAccess, task: Task, path: str, *, gz: bool, filename: str
) -> StreamingResponse:
    """Run the pack helper; answer its failure as an error, else stream its tar."""
    argv = python_helper("pack", ctx.workdir(task), path, *(["gz"] if gz else []))
    session = await run_in_threadpool(ctx.engine.backend.open_session, task.id, argv, tty=False)
    pump = SessionPump(session, asyncio.get_running_loop())
    errors = b""
    first = b""
    while True:  # until the first stdout bytes, or the end
        stream, data = await pump.next()
        if not data:
            break
        if stream == 2:
            errors += data[:4096]
            continue
        first = data
        break
    if not first:
        pump.stop()
        code = await run_in_threadpool(session.wait, 30)
        await run_in_threadpool(session.close)
        raise _helper_failure(code, errors, "packing the files")

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in _stream_out(pump, session):
            yield chunk

    kind = "application/gzip" if gz else "application/x-tar"
    headers = {"content-disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(body(), media_type=kind, headers=headers)


def _check_upload(spool: IO[bytes]) -> str:
    """The uploaded tar's members checked (names, kinds, links, sizes); its top name."""
    spool.seek(0)
    members: list[tuple[str, str, str, int]] = []
    try:
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            for m in tar:
                kind = (
                    "file"
                    if m.isfile()
                    else "dir"
                    if m.isdir()
                    else "symlink"
                    if m.issym()
                    else "hard link"
                    if m.islnk()
                    else "device or special file"
                )
                members.append((m.name, kind, m.linkname, m.size))
                if len(members) > access.MAX_UPLOAD_MEMBERS:
                    break
    except tarfile.TarError as exc:
        raise ParameterError(f"the body is not a tar archive: {exc}") from exc
    try:
        return access.check_members(members)
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc
    finally:
        spool.seek(0)


def _feed(session: WorkspaceSession, spool: IO[bytes]) -> None:
    try:
        while chunk := spool.read(1 << 16):
            session.write(chunk)
    except OSError:
        pass  # the helper stopped reading: its exit code says why
    session.close_input()


def build_workspace_router(engine: Engine) -> APIRouter:
    """exec/shell, files and the workspace archive, bound to one engine."""
    r = APIRouter(prefix="/api/v2", responses=ERROR_RESPONSES)
    ctx = WorkspaceAccess(engine)

    @r.get(
        "/tasks/{ref}/files",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/x-tar": {}}}},
    )
    async def get_files(
        ref: str,
        path: str = Query(".", max_length=access.MAX_PATH_BYTES, description="In the workspace"),
        who: Principal = Depends(caller),
    ) -> StreamingResponse:
        """A file or directory of the workspace as a tar stream (`task cp TASK:PATH .`)."""
        task = await run_in_threadpool(ctx.task, who, ref, "task.cp")
        ctx.may_exec(who, task)
        ctx.running(task)
        target = ctx.path(task, path)
        await run_in_threadpool(ctx.record, task, "cp", who, f"out: {target}"[:200])
        return await _pack_response(ctx, task, target, gz=False, filename="files.tar")

    @r.put("/tasks/{ref}/files")
    async def put_files(
        ref: str,
        request: Request,
        path: str = Query(".", max_length=access.MAX_PATH_BYTES, description="In the workspace"),
        who: Principal = Depends(caller),
    ) -> dict[str, Any]:
        """Unpack a tar (one file or directory at its top) at `path`: into it when it is
        a directory, else as it (`task cp LOCAL TASK:PATH`)."""
        task = await run_in_threadpool(ctx.task, who, ref, "task.cp")
        ctx.may_exec(who, task)
        ctx.running(task)
        target = ctx.path(task, path)
        kind = (request.headers.get("content-type") or "").split(";")[0].strip()
        if kind not in ("application/x-tar", "application/octet-stream"):
            raise ParameterError("send the files as a tar (Content-Type: application/x-tar)")
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > access.MAX_UPLOAD_BYTES + 16 * 1024 * 1024:
                    raise PayloadTooLarge("the archive is larger than a copy may be")
                spool.write(chunk)
            top = await run_in_threadpool(_check_upload, spool)
            argv = python_helper("unpack", ctx.workdir(task), target)
            session = await run_in_threadpool(engine.backend.open_session, task.id, argv, tty=False)
            pump = SessionPump(session, asyncio.get_running_loop())
            try:
                feeding = asyncio.ensure_future(run_in_threadpool(_feed, session, spool))
                errors = b""
                while True:
                    stream, data = await pump.next()
                    if not data:
                        break
                    if stream == 2:
                        errors += data[:4096]
                await feeding
                code = await run_in_threadpool(session.wait, 60)
            finally:
                pump.stop()
                await run_in_threadpool(session.close)
        if code != 0:
            raise _helper_failure(code, errors, "unpacking the files")
        await run_in_threadpool(ctx.record, task, "cp", who, f"in: {top} -> {target}"[:200])
        return {"ok": True, "path": target, "bytes": size}

    @r.get(
        "/tasks/{ref}/archive",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/gzip": {}}}},
    )
    async def get_archive(ref: str, who: Principal = Depends(caller)) -> StreamingResponse:
        """The whole workspace directory as a gzipped tar, streamed (`task download`)."""
        task = await run_in_threadpool(ctx.task, who, ref, "task.download")
        ctx.may_exec(who, task)
        ctx.running(task)
        workdir = ctx.workdir(task)
        await run_in_threadpool(ctx.record, task, "cp", who, f"download: {workdir}")
        return await _pack_response(ctx, task, workdir, gz=True, filename=f"{task.name}.tar.gz")

    @r.websocket("/tasks/{ref}/exec")
    async def exec_socket(websocket: WebSocket, ref: str) -> None:
        await websocket.accept()
        held: str | None = None  # the task whose session count this socket holds

        def release() -> None:
            nonlocal held
            if held is not None:
                engine.sessions.release(held, who.user)
                held = None

        try:
            who = principal_of(websocket.state)
            first = await asyncio.wait_for(websocket.receive(), FIRST_MESSAGE_S)
            text = first.get("text")
            if text is None or len(text) > access.MAX_ARGV_BYTES * 2:
                raise ParameterError("the first message must be a JSON object under 256 KiB")
            try:
                request = access.parse_exec_request(json.loads(text))
            except (ValueError, ValidationError) as exc:
                raise ParameterError(f"bad exec request: {str(exc)[:300]}") from exc
            task = await run_in_threadpool(ctx.task, who, ref, "task.exec")
            ctx.may_exec(who, task, root=request.root)
            ctx.running(task)
            argv = request.argv or list(access.DEFAULT_SHELL)
            env = {"TERM": request.term} if request.tty else {}
            # counted from here until the socket ends, however it ends (session_limits)
            engine.sessions.acquire(task.id, task.name, who.user)
            held = task.id
            session = await run_in_threadpool(
                lambda: engine.backend.open_session(
                    task.id,
                    argv,
                    tty=request.tty,
                    size=(request.rows, request.cols),
                    root=request.root,
                    env=env,
                )
            )
        except (TimeoutError, WebSocketDisconnect):
            release()
            with contextlib.suppress(Exception):
                await websocket.close(code=1008)
            return
        except DockyardError as exc:
            release()
            status = _status_code(exc)
            with contextlib.suppress(Exception):
                await websocket.send_json(
                    {"error": exc.message, "hint": exc.hint, "status": status}
                )
                await websocket.close(code=4000 + status)
            return
        except BaseException:
            release()
            raise
        described = access.describe_argv(request.argv)
        code: int | None = None
        try:
            who_root = " as root" if request.root else ""
            await run_in_threadpool(
                ctx.record, task, "exec", who, f"started{who_root}: {described}"
            )
            await websocket.send_json({"started": True})
            code = await _run_session(websocket, session, request.tty)
        finally:
            release()  # the client left, was killed, or the command ended
            # the end is recorded however the session ended: a killed client can end the
            # handler with an error or a cancellation, and the shield lets the record
            # finish in its thread even then (a task's history never shows a session
            # that started and did not end)
            reason = "ended: client left" if code is None else f"ended: exit {code}"
            end = f"{reason}: {described}"[:200]
            await asyncio.shield(run_in_threadpool(ctx.record, task, "exec", who, end))

    return r


async def _run_session(websocket: WebSocket, session: WorkspaceSession, tty: bool) -> int | None:
    """Pump input and output until the command's output ends; its exit code (None if the
    client left first: the command is then ended)."""
    pump = SessionPump(session, asyncio.get_running_loop())

    async def inputs() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is not None:
                if len(data) > access.MAX_INPUT_FRAME:
                    continue  # bounded: a larger frame is dropped, not buffered
                await run_in_threadpool(session.write, data)
                continue
            try:
                control = json.loads(message.get("text") or "{}")
                if not isinstance(control, dict):
                    continue
                if "resize" in control:
                    rows, cols = access.check_size(*map(int, control["resize"]))
                    await run_in_threadpool(session.resize, rows, cols)
                elif control.get("eof"):
                    if tty:
                        await run_in_threadpool(session.write, b"\x04")
                    else:
                        await run_in_threadpool(session.close_input)
            except (ValueError, TypeError):
                continue  # a bad control is ignored: the session goes on

    reader = asyncio.ensure_future(inputs())
    try:
        while True:
            outputs = asyncio.ensure_future(pump.next())
            done, _ = await asyncio.wait({outputs, reader}, return_when=asyncio.FIRST_COMPLETED)
            if outputs not in done:
                outputs.cancel()
                return None
            stream, data = outputs.result()
            if not data:
                break
            await websocket.send_bytes(bytes([stream]) + data)
        code = await run_in_threadpool(session.wait, 30)
        await websocket.send_json({"exit": code})
        await websocket.close()
        return code
    except (WebSocketDisconnect, RuntimeError):
        return None
    finally:
        reader.cancel()
        pump.stop()
        # a command still running when the client left is hung up on
        await run_in_threadpool(session.close)
