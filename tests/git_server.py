"""A real git repository served for tests: over HTTP, `git http-backend` behind a tiny
threaded server that asks for a token (HTTP Basic, any user name), as a forge does; over
ssh, a real sshd on an unprivileged port that takes one deploy key (serve_ssh)."""

from __future__ import annotations

import base64
import getpass
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.polling import wait_until

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


# --- the same repository over ssh: a real sshd on an unprivileged port ---------------------

SSHD = "/usr/sbin/sshd"


@dataclass
class SshServer:
    """An sshd serving bare repositories under its root (git-shell, as a forge's forced
    command), to one deploy key; what a task needs to clone from it, and wrong values."""

    url: str  # ssh://USER@HOST:PORT/ABSOLUTE/PATH/org/repo.git
    key: str  # the deploy key's private key (authorized)
    known_hosts: str  # the server's host key, as `ssh-keyscan -p PORT HOST` prints it
    stranger_key: str  # a well-formed private key the server does not know
    impostor_known_hosts: str  # another host key for the same address


def _keygen(path: Path) -> tuple[str, str]:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as conn:
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@contextmanager
def serve_ssh(root: Path, bare: Path, host: str = "127.0.0.1") -> Iterator[SshServer]:
    """Serve `bare` (under `root`) over ssh at HOST on a free port, as the user running the
    tests (sshd, unprivileged or not, logs in only as that user here), to one deploy key
    whose forced command is git-shell: fetch and push, nothing else."""
    folder = root / "sshd"
    folder.mkdir(mode=0o700)
    key, key_pub = _keygen(folder / "deploy")
    stranger, _ = _keygen(folder / "stranger")
    _, host_pub = _keygen(folder / "host")
    _, impostor_pub = _keygen(folder / "impostor")
    forced = 'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",restrict'
    (folder / "authorized_keys").write_text(f"{forced} {key_pub}\n")
    port = _free_port(host)
    user = getpass.getuser()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress {host}\nHostKey {folder / 'host'}\nPidFile none\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel VERBOSE\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
    log = (folder / "sshd.log").open("wb")
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=log, stderr=log
    )
    try:
        wait_until(lambda: proc.poll() is not None or _accepts(host, port), timeout=30, what="sshd")
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited: {(folder / 'sshd.log').read_text()}")
        where = f"[{host}]:{port}"
        yield SshServer(
            url=f"ssh://{user}@{host}:{port}{bare}",
            key=key,
            known_hosts=f"{where} {' '.join(host_pub.split()[:2])}\n",
            stranger_key=stranger,
            impostor_known_hosts=f"{where} {' '.join(impostor_pub.split()[:2])}\n",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def serve_repository_ssh(
    root: Path, files: dict[str, str], host: str = "127.0.0.1"
) -> Iterator[tuple[SshServer, GitServer, str]]:
    """A new repository holding `files`, served over ssh; yields the ssh server, the
    repository (its `bare` path and branches; no HTTP URL) and the first commit."""
    bare, commit = make_repository(root, files)
    with serve_ssh(root, bare, host) as ssh:
        yield ssh, GitServer(url="", token="", bare=bare), commit
