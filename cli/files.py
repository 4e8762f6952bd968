"""`dockyard task cp` (files in and out of a workspace, as tar streams through the
server) and `dockyard task download` (the whole workspace directory, gzipped, streamed
to a file: never whole in memory)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

import click

from cli.client import API, Client, CliError, ServerUnreachable, current_client, error_from_response
from cli.wsclient import segment

# `TASK:PATH`: a task name or id, a colon, a path in its workspace. A local path with a
# colon in it is written ./a:b
REMOTE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,99}):(.*)$")
CHUNK = 1 << 16


def remote(value: str) -> tuple[str, str] | None:
    """(task, path) of `TASK:PATH`, or None for a local path."""
    if value.startswith(("/", ".")):
        return None
    found = REMOTE.match(value)
    return (found.group(1), found.group(2) or ".") if found else None


def _check(response: Any) -> None:
    if response.status_code >= 400:
        response.read()
        raise error_from_response(response)


def _stream_to(client: Client, path: str, params: dict[str, str], out: IO[bytes]) -> int:
    """GET an API path, its body written to `out` as it comes; the bytes written."""
    import httpx

    total = 0
    try:
        with client.http().stream("GET", API + path, params=params, timeout=None) as response:
            _check(response)
            for chunk in response.iter_raw(CHUNK):
                out.write(chunk)
                total += len(chunk)
    except httpx.TransportError as exc:
        raise ServerUnreachable(client.base_url, str(exc) or type(exc).__name__) from exc
    return total


def _copy_out(client: Client, task: str, path: str, local: Path) -> None:
    """The tar of TASK:PATH unpacked at `local` (into it when it is a directory)."""
    into = local if local.is_dir() else local.parent
    if not into.is_dir():
        raise CliError(f"{into} is not a directory here")
    with tempfile.TemporaryFile() as spool:
        _stream_to(client, f"/tasks/{segment(task)}/files", {"path": path}, spool)
        spool.seek(0)
        with tempfile.TemporaryDirectory(dir=into, prefix=".dockyard-cp-") as staging:
            skipped: list[str] = []

            def safe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
                # the data filter refuses absolute names, `..`, links pointing out and
                # device files: a hostile workspace cannot write outside `staging`. A
                # link pointing out (an agent's `x -> /etc`) is left out, not fatal.
                try:
                    return tarfile.data_filter(member, dest)
                except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
                    skipped.append(member.name)
                    return None

            with tarfile.open(fileobj=spool, mode="r|") as tar:
                tar.extractall(staging, filter=safe)
            if skipped:
                shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
                click.echo(f"left out {len(skipped)} link(s) pointing outside: {shown}", err=True)
            entries = os.listdir(staging)
            if len(entries) != 1:
                raise CliError(f"the server sent {len(entries)} entries; expected one")
            top = Path(staging) / entries[0]
            target = local / entries[0] if local.is_dir() else local
            if entries[0] == ".":  # the workspace directory itself
                target = local
            if target.is_dir() and not target.is_symlink() and top.is_dir():
                shutil.copytree(top, target, symlinks=True, dirs_exist_ok=True)
            else:
                if target.is_symlink() or target.exists():
                    if target.is_dir() and not target.is_symlink():
                        raise CliError(f"{target} is a directory; {path} is not")
                    target.unlink()
                os.replace(top, target)


def _copy_in(client: Client, local: Path, task: str, path: str) -> dict[str, Any]:
    import httpx

    if not local.exists() and not local.is_symlink():
        raise CliError(f"{local} does not exist")
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            name = local.resolve().name if local.name in ("", ".", "..") else local.name
            tar.add(local, arcname=name)
        size = spool.tell()
        spool.seek(0)
        headers = {"content-type": "application/x-tar", "content-length": str(size)}
        try:
            response = client.http().put(
                API + f"/tasks/{segment(task)}/files",
                params={"path": path},
                content=_chunks(spool),
                headers=headers,
                timeout=None,
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(client.base_url, str(exc) or type(exc).__name__) from exc
    if response.status_code >= 400:
        raise error_from_response(response)
    answer: dict[str, Any] = response.json()
    return answer


def _chunks(spool: IO[bytes]) -> Any:
    while chunk := spool.read(CHUNK):
        yield chunk


@click.command("cp")
@click.argument("source")
@click.argument("destination")
def cp_command(source: str, destination: str) -> None:
    """Copy files between a workspace and here: TASK:PATH LOCAL, or LOCAL TASK:PATH.

    PATH is relative to the workspace directory (or absolute under it). A directory
    is copied whole; links are copied as links. A local path with a colon: ./a:b
    """
    src, dst = remote(source), remote(destination)
    if (src is None) == (dst is None):
        raise click.UsageError("one side must be TASK:PATH, the other local (a local a:b is ./a:b)")
    client = current_client()
    if src is not None:
        _copy_out(client, src[0], src[1], Path(destination))
        click.echo(f"copied {source} to {destination}", err=True)
    else:
        assert dst is not None
        answer = _copy_in(client, Path(source), dst[0], dst[1])
        click.echo(f"copied {source} to {dst[0]}:{answer.get('path')}", err=True)


@click.command("download")
@click.argument("task")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    metavar="FILE",
    help="Where to write the .tar.gz (- for stdout).",
)
def download_command(task: str, output: str) -> None:
    """Download TASK's workspace directory as a gzipped tar, streamed."""
    client = current_client()
    path = f"/tasks/{segment(task)}/archive"
    if output == "-":
        _stream_to(client, path, {}, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.part")
    try:
        with partial.open("wb") as out:
            total = _stream_to(client, path, {}, out)
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    click.echo(f"wrote {target} ({total} bytes)", err=True)
