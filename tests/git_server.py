"""A real git repository served over HTTP for tests: `git http-backend` behind a tiny
threaded server that asks for a token (HTTP Basic, any user name), as a forge does."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; its stdout (raises with its stderr on a failure)."""
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd)}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class GitServer:
    """The server's address, its token, the bare repository and what it was asked."""

    url: str  # the repository's URL
    token: str
    bare: Path
    authorizations: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def branches(self) -> dict[str, str]:
        fmt = "--format=%(refname:short) %(objectname)"
        out = git(self.bare, "for-each-ref", fmt, "refs/heads")
        return dict(line.split(" ", 1) for line in out.splitlines())


def make_repository(root: Path, files: dict[str, str]) -> tuple[Path, str]:
    """A bare repository with one commit of `files` on main; (its path, the commit)."""
    work = root / "seed"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    commit = git(work, "rev-parse", "HEAD").strip()
    bare = root / "org" / "repo.git"
    bare.parent.mkdir()
    git(root, "clone", "-q", "--bare", str(work), str(bare))
    git(bare, "config", "http.receivepack", "true")
    shutil.rmtree(work)
    return bare, commit


def _handler(server: GitServer, root: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _serve(self) -> None:
            auth = self.headers.get("Authorization", "")
            server.authorizations.append(auth)
            server.paths.append(self.path)
            if not (auth.startswith("Basic ") and self._token_ok(auth)):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "x-access-token",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            done = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _token_ok(self, auth: str) -> bool:
            try:
                user_pass = base64.b64decode(auth[6:]).decode()
            except ValueError:
                return False
            return secrets.compare_digest(user_pass.partition(":")[2], server.token)

        do_GET = _serve
        do_POST = _serve

    return Handler


@contextmanager
def serve_repository(
    root: Path, files: dict[str, str], host: str = "127.0.0.1"
) -> Iterator[tuple[GitServer, str]]:
    """Serve a new repository holding `files` at http://HOST:PORT/org/repo.git; yields
    the server and the first commit."""
    bare, commit = make_repository(root, files)
    token = "tok_" + secrets.token_hex(16)
    server = GitServer(url="", token=token, bare=bare)
    httpd = ThreadingHTTPServer((host, 0), _handler(server, root))
    server.url = f"http://{host}:{httpd.server_address[1]}/org/repo.git"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, commit
    finally:
        httpd.shutdown()
        httpd.server_close()
