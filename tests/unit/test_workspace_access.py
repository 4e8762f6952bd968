"""A way into the workspace, and files out (fast tier): the pure rules, then `task exec`,
`task shell` (driven through a real pty), `task cp`, `task download`, `task
port-forward` and preview URLs against a real server, engine and bridge on the fake
backend (its sessions are host processes under a real pty), with the abuse cases."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pexpect
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from provisioner import access
from provisioner.model import Task
from provisioner.templating.schema import TemplateConfig
from tests.fake_engine import FAST, Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.serving import admin_token, free_port, serve

__all__ = ["bridge_cache"]  # the session's fixture, used by `served`

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "workspace_app.py"


# --- the pure rules ---------------------------------------------------------------------


def test_paths_stay_inside_the_workspace() -> None:
    assert access.workspace_path("/workspace", "a/b") == "/workspace/a/b"
    assert access.workspace_path("/workspace", ".") == "/workspace"
    assert access.workspace_path("/workspace", "/workspace/x/../y") == "/workspace/y"
    for bad in ("../etc", "/etc/passwd", "a/../../x", "/workspacex", "a\nb", "a\x00b"):
        with pytest.raises(ValueError):
            access.workspace_path("/workspace", bad)
    with pytest.raises(ValueError):
        access.workspace_path("/workspace", "a" * 5000)


def test_tar_members_are_checked() -> None:
    assert access.check_members([("d", "dir", "", 0), ("d/f", "file", "", 3)]) == "d"
    assert access.check_members([("./f", "file", "", 1)]) == "f"
    assert access.check_members([("d", "dir", "", 0), ("d/l", "symlink", "f", 0)]) == "d"
    refused = [
        [("../x", "file", "", 1)],
        [("/etc/passwd", "file", "", 1)],
        [("d/../../x", "file", "", 1)],
        [("d", "dir", "", 0), ("d/l", "symlink", "/etc", 0)],
        [("d", "dir", "", 0), ("d/l", "symlink", "../../etc", 0)],
        [("d", "hard link", "d/x", 0)],
        [("d", "device or special file", "", 0)],
        [("a", "file", "", 1), ("b", "file", "", 1)],  # two tops
        [("a\x1b[2J", "file", "", 1)],
        [("big", "file", "", access.MAX_UPLOAD_BYTES + 1)],
        [],
    ]
    for members in refused:
        with pytest.raises(ValueError):
            access.check_members(members)


def test_exec_requests_are_bounded() -> None:
    ok = access.parse_exec_request({"argv": ["ls", "-la; rm -rf /"], "rows": 40, "cols": 120})
    assert ok.argv == ["ls", "-la; rm -rf /"]  # passed as they are: exec, never a shell
    assert access.parse_exec_request({}).argv is None  # a login shell
    for bad in (
        [],
        {"argv": []},
        {"argv": ["a"] * 300},
        {"argv": ["x" * 40000]},
        {"argv": ["a\x00b"]},
        {"rows": 0},
        {"cols": 5000},
        {"term": "xterm; rm -rf /"},
        {"argv": ["ls"], "extra": 1},
        {"argv": "ls"},
    ):
        with pytest.raises(ValueError):
            access.parse_exec_request(bad)


def test_who_may_exec() -> None:
    owner = access.AccessConfig()
    access.may_exec(owner, is_owner=True, is_admin=False, root=False)
    access.may_exec(owner, is_owner=False, is_admin=True, root=False)
    with pytest.raises(access.AccessDenied, match="root"):
        access.may_exec(owner, is_owner=True, is_admin=True, root=True)
    access.may_exec(access.AccessConfig(root=True), is_owner=True, is_admin=False, root=True)
    admins = access.AccessConfig(exec="admin")
    with pytest.raises(access.AccessDenied, match="admins only"):
        access.may_exec(admins, is_owner=True, is_admin=False, root=False)
    with pytest.raises(access.AccessDenied, match="no commands"):
        access.may_exec(access.AccessConfig(exec="none"), is_owner=True, is_admin=True, root=False)
    with pytest.raises(access.AccessDenied):
        access.check_port(7777)  # the bridge's own
    with pytest.raises(ValueError):
        access.check_port(70000)


def test_template_apps_are_checked() -> None:
    base = {"name": "t", "agent": {"command": ["a"]}}
    config = TemplateConfig.model_validate(
        {**base, "apps": [{"name": "web", "port": 3000, "health": "/healthz"}]}
    )
    assert config.apps[0].port == 3000 and config.access.exec == "owner"
    for apps in (
        [{"name": "web", "port": 3000}, {"name": "api", "port": 3000}],
        [{"name": "web", "port": 3000}, {"name": "web", "port": 3001}],
        [{"name": "b", "port": 7777}],
        [{"name": "Bad Name", "port": 1}],
        [{"name": "web", "port": 0}],
        [{"name": "web", "port": 1, "health": "no-slash"}],
    ):
        with pytest.raises(ValueError):
            TemplateConfig.model_validate({**base, "apps": apps})


# --- against a real server on the fake backend ------------------------------------------


@dataclass
class Served:
    h: Harness
    url: str
    tokens: dict[str, str]
    task: Task  # alice's, of a template with an app
    app_port: int

    def env(self, who: str = "alice") -> dict[str, str]:
        return {
            **os.environ,
            "DOCKYARD_URL": self.url,
            "DOCKYARD_TOKEN": self.tokens[who],
            "PYTHONPATH": str(ROOT),
        }

    def cli(
        self, *args: str, who: str = "alice", stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            env=self.env(who),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )

    def headers(self, who: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def ws(self, path: str, who: str | None = "alice") -> Any:
        headers = self.headers(who) if who else {}
        return connect(
            self.url.replace("http://", "ws://") + "/api/dockyard/v1" + path,
            additional_headers=headers,
            open_timeout=30,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("workspace-access") / "home"
    with harness_at(home, bridge_cache) as h:
        port = free_port()
        h.add_scripted_variant("with-app", apps=[{"name": "web", "port": port, "health": "/"}])
        h.add_scripted_variant("locked", access={"exec": "none"})
        with serve(h.engine, h.home) as url:
            tokens = {"admin": admin_token(h.home)}
            for name in ("alice", "bob"):
                h.store.create_user(name, "member")
                tokens[name], _ = h.store.create_token(name, "laptop", None)
            task = h.create("hello", template="with-app", owner="alice", name="alices")
            h.wait_idle(task.id)
            yield Served(h, url, tokens, task, port)


def test_exec_returns_output_and_exit_code(served: Served) -> None:
    done = served.cli(
        "task",
        "exec",
        "alices",
        "--",
        "sh",
        "-c",
        'echo "out $1"; echo err >&2; exit 3',
        "-",
        "a b; c",
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "out a b; c\n"  # arguments pass as they are, quoting and all
    assert done.stderr == "err\n"
    piped = served.cli("task", "exec", "alices", "--", "tr", "a-z", "A-Z", stdin="piped in\n")
    assert (piped.returncode, piped.stdout) == (0, "PIPED IN\n")
    reasons = [e["reason"] for e in served.h.store.events(served.task.id) if e["kind"] == "exec"]
    assert any(r.startswith("started: sh -c") for r in reasons)
    assert any(r.startswith("ended: exit 3") for r in reasons)


def test_shell_through_a_real_pty_resizes_and_exits_with_its_code(served: Served) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "cli.main", "task", "shell", "alices"],
        env=served.env(),
        cwd=str(ROOT),
        dimensions=(24, 80),
        timeout=30,
    )
    try:
        child.sendline("echo MARK-$((6*7)); tty")
        child.expect("MARK-42")
        child.expect("/dev/pts/")  # a real terminal in the workspace
        child.sendline("stty size")
        child.expect(r"24 80\s")
        child.setwinsize(40, 132)  # the kernel sends the CLI SIGWINCH; it tells the server
        wait_until(
            lambda: (
                child.sendline("stty size"),
                child.expect([r"40 132\s", pexpect.TIMEOUT], timeout=1) == 0,
            )[1],
            20,
            "the workspace's terminal to take the new size",
        )
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 7
    assert any(s[2] for s in served.h.backend.sessions), "a shell runs under a terminal"


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def test_cp_both_ways_and_its_abuse_cases(served: Served, tmp_path: Path) -> None:
    workspace = served.h.backend.host_path(served.task.id, "/workspace")
    local = tmp_path / "project"
    (local / "src").mkdir(parents=True)
    (local / "src" / "main.py").write_text("print('hi')\n")
    (local / "link").symlink_to("src/main.py")
    done = served.cli("task", "cp", str(local), "alices:")
    assert done.returncode == 0, done.stderr
    assert (workspace / "project" / "src" / "main.py").read_text() == "print('hi')\n"
    assert os.readlink(workspace / "project" / "link") == "src/main.py"
    # a file to a new name, then back out, to a directory and to a file name
    (tmp_path / "notes.txt").write_text("notes")
    assert (
        served.cli("task", "cp", str(tmp_path / "notes.txt"), "alices:renamed.txt").returncode == 0
    )
    assert (workspace / "renamed.txt").read_text() == "notes"
    out = tmp_path / "out"
    out.mkdir()
    assert served.cli("task", "cp", "alices:project", str(out)).returncode == 0
    assert (out / "project" / "src" / "main.py").read_text() == "print('hi')\n"
    assert (
        served.cli("task", "cp", "alices:/workspace/renamed.txt", str(out / "n.txt")).returncode
        == 0
    )
    assert (out / "n.txt").read_text() == "notes"
    assert served.cli("task", "cp", "alices:.", str(tmp_path / "whole")).returncode == 0
    assert (tmp_path / "whole" / "renamed.txt").read_text() == "notes"

    # hostile: outside the workspace, through a link the agent planted, odd members
    (workspace / "escape").symlink_to("/etc")
    for source in ("alices:../../etc/passwd", "alices:/etc/passwd", "alices:escape/passwd"):
        done = served.cli("task", "cp", source, str(out))
        assert done.returncode != 0 and "outside" in done.stderr, (source, done.stderr)
    done = served.cli("task", "cp", str(tmp_path / "notes.txt"), "alices:escape/x")
    assert done.returncode != 0 and "outside" in done.stderr, done.stderr
    assert not Path("/etc/x").exists()
    whole = served.cli("task", "cp", "alices:.", str(tmp_path / "again"))
    assert whole.returncode == 0 and "left out 1 link(s) pointing outside: " in whole.stderr
    assert not (tmp_path / "again" / "escape").exists()
    assert (tmp_path / "again" / "project" / "link").is_symlink()  # links inside are kept
    missing = served.cli("task", "cp", "alices:nothing-here", str(out))
    assert missing.returncode != 0 and "does not exist" in missing.stderr

    put = f"{served.url}/api/dockyard/v1/tasks/alices/files"
    tar_headers = {**served.headers(), "content-type": "application/x-tar"}
    hostile = [
        _tar([(_info("../evil"), b"x")]),
        _tar([(_info("/abs"), b"x")]),
        _tar([(_info("d", tarfile.DIRTYPE), b""), (_info("d/l", tarfile.SYMTYPE, "/etc"), b"")]),
        _tar([(_info("h", tarfile.LNKTYPE, "renamed.txt"), b"")]),
        _tar([(_info("dev", tarfile.CHRTYPE), b"")]),
        b"not a tar at all" * 100,
    ]
    for body in hostile:
        reply = httpx.put(
            put, params={"path": "."}, content=body, headers=tar_headers, timeout=HTTP_TIMEOUT
        )
        assert reply.status_code == 400, reply.text
    assert not (workspace.parent / "evil").exists()
    assert sorted(p.name for p in workspace.iterdir()) == ["escape", "project", "renamed.txt"]
    # sizes: the declared length is checked before anything is read
    assert _declared_too_big(served) == 413
    json_body = httpx.put(
        put, params={"path": "."}, json={}, headers=served.headers(), timeout=HTTP_TIMEOUT
    )
    assert json_body.status_code == 400
    events = [e["reason"] for e in served.h.store.events(served.task.id) if e["kind"] == "cp"]
    assert "in: project -> /workspace" in events


def _declared_too_big(served: Served) -> int:
    """The status of a PUT that declares 2 GiB and sends none of it (a raw socket:
    clients refuse to send fewer bytes than they declare)."""
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            (
                "PUT /api/dockyard/v1/tasks/alices/files?path=. HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {served.tokens['alice']}\r\n"
                "Content-Type: application/x-tar\r\n"
                f"Content-Length: {2 * 1024**3}\r\n\r\n"
            ).encode()
        )
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_download_streams_the_workspace(served: Served, tmp_path: Path) -> None:
    workspace = served.h.backend.host_path(served.task.id, "/workspace")
    (workspace / "downloaded.txt").write_text("in the archive")
    target = tmp_path / "work.tar.gz"
    done = served.cli("task", "download", "alices", "-o", str(target))
    assert done.returncode == 0, done.stderr
    with tarfile.open(target) as tar:
        member = tar.extractfile("./downloaded.txt")
        assert member is not None and member.read() == b"in the archive"
    assert not list(tmp_path.glob(".*.part"))


def _start_app(served: Served) -> None:
    workspace = served.h.backend.host_path(served.task.id, "/workspace")
    shutil.copy(APP, workspace / "workspace_app.py")
    done = served.cli(
        "task",
        "exec",
        "alices",
        "--",
        "sh",
        "-c",
        f"nohup python3 workspace_app.py {served.app_port} 127.0.0.1 >app.log 2>&1 &",
    )
    assert done.returncode == 0, done.stderr
    headers = served.headers()
    wait_until(
        lambda: (
            httpx.get(
                f"{served.url}/api/dockyard/v1/tasks/alices/apps/web/",
                headers=headers,
                timeout=HTTP_TIMEOUT,
            ).status_code
            == 200
        ),
        20,
        "the workspace's app to answer through the preview URL",
    )


def test_port_forward_and_preview_urls_reach_the_workspace(served: Served) -> None:
    _start_app(served)
    workspace = served.h.backend.host_path(served.task.id, "/workspace")
    try:
        base = f"{served.url}/api/dockyard/v1/tasks/alices/apps"
        reply = httpx.get(
            f"{base}/web/some/page?x=1", headers=served.headers(), timeout=HTTP_TIMEOUT
        )
        assert reply.status_code == 200
        # the path arrives, the caller's API token does not
        assert reply.text == "hello from the workspace: /some/page?x=1 auth=none"
        assert reply.headers["x-app"] == "workspace"
        # the path the issue names, /api/v2/..., is an alias of Dockyard's own prefix
        alias = f"{served.url}/api/v2/tasks/alices/apps/web/old"
        assert httpx.get(alias, headers=served.headers(), timeout=HTTP_TIMEOUT).text.startswith(
            "hello from the workspace: /old"
        )
        posted = httpx.post(
            f"{base}/{served.app_port}/p",
            content=b"data",
            headers=served.headers(),
            timeout=HTTP_TIMEOUT,
        )
        assert posted.text == "posted: data"
        with served.ws("/tasks/alices/apps/web/echo") as ws:
            ws.send("ping")
            assert ws.recv(timeout=HTTP_TIMEOUT) == "echo: ping"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=HTTP_TIMEOUT) == b"echo: \x00\x01"
        # status and the API show the app, and that it answers its health path
        status = served.cli("task", "status", "alices")
        assert f"app: web port {served.app_port}, health / (up): " in status.stdout
        apps = httpx.get(f"{base}", headers=served.headers(), timeout=HTTP_TIMEOUT).json()["apps"]
        assert apps == [
            {
                "name": "web",
                "port": served.app_port,
                "health": "/",
                "path": "/api/dockyard/v1/tasks/alices/apps/web/",
                "up": True,
            }
        ]

        # port-forward: a local port, through the server, to the workspace's
        child = pexpect.spawn(
            sys.executable,
            ["-m", "cli.main", "task", "port-forward", "alices", f"{served.app_port}:0"],
            env=served.env(),
            cwd=str(ROOT),
            timeout=30,
        )
        try:
            child.expect(r"Forwarding 127\.0\.0\.1:(\d+)")
            local = int(child.match.group(1))
            for _ in range(2):  # each connection its own tunnel
                got = httpx.get(f"http://127.0.0.1:{local}/fwd", timeout=HTTP_TIMEOUT)
                assert got.text == "hello from the workspace: /fwd auth=none"
            with connect(f"ws://127.0.0.1:{local}/echo", open_timeout=HTTP_TIMEOUT) as ws:
                ws.send("through the tunnel")
                assert ws.recv(timeout=HTTP_TIMEOUT) == "echo: through the tunnel"
        finally:
            child.terminate(force=True)
    finally:
        pid = (workspace / "app.pid").read_text().strip()
        served.cli("task", "exec", "alices", "--", "kill", pid)


def test_nobody_else_gets_in(served: Served) -> None:
    # bob: alice's task is not found, by any way in
    for path in ("/tasks/alices/exec", "/tasks/alices/ports/3000", "/tasks/alices/apps/web/"):
        with served.ws(path, who="bob") as ws:
            if path.endswith("exec"):
                ws.send(json.dumps({"argv": ["id"]}))
            answer = json.loads(ws.recv(timeout=HTTP_TIMEOUT))
            # as for a task that does not exist: nothing tells it is there
            assert answer == {"error": "No task 'alices'", "hint": ANY, "status": 404}, answer
    for method, path in [
        ("GET", "/apps/web/"),
        ("POST", "/apps/web/x"),
        ("GET", "/files?path=."),
        ("GET", "/archive"),
    ]:
        reply = httpx.request(
            method,
            f"{served.url}/api/dockyard/v1/tasks/alices{path}",
            headers=served.headers("bob"),
            timeout=HTTP_TIMEOUT,
        )
        assert reply.status_code == 404, (path, reply.text)
    # nobody without a token: refused at the handshake
    for path in ("/tasks/alices/exec", "/tasks/alices/ports/3000", "/tasks/alices/apps/web/"):
        with pytest.raises(InvalidStatus) as refused:
            served.ws(path, who=None)
        assert refused.value.response.status_code == 401
    assert (
        httpx.get(
            f"{served.url}/api/dockyard/v1/tasks/alices/apps/web/", timeout=HTTP_TIMEOUT
        ).status_code
        == 401
    )
    # a page elsewhere cannot open a shell, even with a token
    with pytest.raises(InvalidStatus):
        connect(
            served.url.replace("http://", "ws://") + "/api/dockyard/v1/tasks/alices/exec",
            additional_headers=served.headers(),
            origin="http://evil.example",  # type: ignore[arg-type]
        )
    # root is the template's to allow; the bridge's port is not forwarded
    done = served.cli("task", "exec", "--root", "alices", "--", "id")
    assert done.returncode == 1 and "does not allow root" in done.stderr
    with served.ws("/tasks/alices/ports/7777") as ws:
        assert json.loads(ws.recv(timeout=HTTP_TIMEOUT))["status"] == 400
    # a template that allows no commands: not even its owner
    locked = served.h.create("x", template="locked", owner="alice", name="locked", parameters=FAST)
    served.h.wait_idle(locked.id)
    done = served.cli("task", "exec", "locked", "--", "id")
    assert done.returncode == 1 and "allows no commands" in done.stderr
    done = served.cli("task", "cp", "locked:.", "/tmp")
    assert done.returncode == 1 and "allows no commands" in done.stderr
    # a malformed first message ends the session with a 400
    with served.ws("/tasks/alices/exec") as ws:
        ws.send(json.dumps({"argv": ["ls"], "rows": 99999}))
        assert json.loads(ws.recv(timeout=HTTP_TIMEOUT))["status"] == 400
