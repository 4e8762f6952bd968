"""Connections to workspace ports through the backend's `open_port`, for httpx.

The preview proxy speaks HTTP to a workspace's port with httpx. Where the server reaches
the workspace's address (Docker) `open_port` is a plain TCP connection; on Swarm it is a
stream the task's bridge carries. Either way httpx gets it through this network backend:
the URL's host is the task's id, and connecting means asking the backend for a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx
from fastapi.concurrency import run_in_threadpool

from provisioner.errors import DockyardError

OpenPort = Callable[[str, int], socket.socket]


class _Stream(httpcore.AsyncNetworkStream):
    """An asyncio stream over a connected socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.read(max_bytes), timeout)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self.writer.write(buffer)
            await asyncio.wait_for(self.writer.drain(), timeout)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a workspace port is reached over plain HTTP")

    def get_extra_info(self, info: str) -> Any:
        return None


class PortDialer(httpcore.AsyncNetworkBackend):
    """httpcore's network backend: host = a task id, port = the workspace's port."""

    def __init__(self, open_port: OpenPort) -> None:
        self.open_port = open_port

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            sock = await run_in_threadpool(self.open_port, host, port)
        except (DockyardError, OSError) as exc:
            raise httpcore.ConnectError(str(getattr(exc, "message", exc))) from exc
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        return _Stream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets here")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def port_client(open_port: OpenPort, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An httpx client whose connections are the backend's streams to workspace ports
    (URLs: http://TASK_ID:PORT/...)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend of its own: its pool is replaced by one that has ours
    transport._pool = httpcore.AsyncConnectionPool(
        network_backend=PortDialer(open_port), max_connections=100, keepalive_expiry=5.0
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)
