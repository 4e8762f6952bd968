"""A real multi-node Docker Swarm on this one machine, for the `swarm` test tier.

Each node is its own `dockerd` in its own network namespace (`dys-nN`), joined to the
others by a veth pair on a host bridge (`dys-br0`), with its own data root, exec root,
pidfile, socket and `--bip`, and its own UTS namespace (so `docker node ls` names the
nodes `dys-n1`, `dys-n2`...). `nsenter --net` enters the namespace: `ip netns exec`
remounts /sys and hides the cgroup mounts dockerd needs.

Images reach every node through a registry (Debian's `docker-registry`) listening on the
bridge. Its name is `127.0.0.1:PORT` everywhere, because Docker talks plain HTTP to a
loopback registry without `--insecure-registry` (the machine's own daemon, which builds
and pushes workspace images, must not be reconfigured or restarted): on the host a
forwarder thread carries 127.0.0.1:PORT to the bridge, and in each node's namespace a
DNAT rule does.

Everything is named `dys-...` or lives under one temporary root recorded in STATE, so
the start of a run removes what a crashed run left (daemons by their recorded pids,
namespaces, links, the FORWARD rule, mounts, data). The machine's own dockerd is never a
member, and nothing of it is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker

STATE = Path(tempfile.gettempdir()) / "dockyard-swarm-harness.json"
BRIDGE = "dys-br0"
SUBNET = "10.213.0"  # the host is .1, node N is .1N
HOST_IP = f"{SUBNET}.1"
# the FORWARD rule that lets bridged traffic between nodes through Docker's DROP policy
# (br_netfilter sends bridged frames through iptables)
FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]
TMPFS_SIZE = "8g"  # an upper bound, not a reservation: only what is written uses memory
LABEL = "dockyard.test"  # every object the tests make in the swarm carries it


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


def tools_missing() -> list[str]:
    """The programs the harness needs that this machine lacks."""
    needed = ("dockerd", "nsenter", "unshare", "ip", "iptables", "docker-registry")
    return [t for t in needed if shutil.which(t) is None]


@dataclass
class Node:
    """One swarm node: a dockerd in its own network namespace."""

    index: int
    root: Path
    pid: int = 0

    @property
    def name(self) -> str:
        return f"dys-n{self.index}"

    @property
    def ip(self) -> str:
        return f"{SUBNET}.1{self.index}"

    @property
    def socket(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    @property
    def dir(self) -> Path:
        return self.root / self.name

    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.socket, version="auto", timeout=30)


@dataclass
class Swarm:
    """A running swarm: its nodes (the first is the manager), registry and network."""

    root: Path
    nodes: list[Node]
    registry: str  # host:port, the same name on the host and on every node
    network: str
    pids: list[int] = field(default_factory=list)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def kill_daemon(self, node: Node) -> None:
        """SIGKILL a node's dockerd, as a crashed host would lose it: its containerd, shims
        and containers go too (the host is gone)."""
        victims = _pids_under(node.dir) + _container_pids(node)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(victims)
        _unmount_under(node.dir / "data")
        _unmount_under(node.dir / "exec")

    def start_daemon(self, node: Node) -> None:
        """Start (again) a node's dockerd; it rejoins the swarm by itself. A loaded machine
        can make dockerd give up waiting for its containerd: then it is tried again, with
        whatever the failed start left killed first."""
        for attempt in range(3):
            try:
                _start_dockerd(node, self.registry)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                leftovers = _pids_under(node.dir)
                for pid in leftovers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                _wait_gone(leftovers)
        self._save()

    def _save(self) -> None:
        STATE.write_text(json.dumps({"root": str(self.root), "pids": self.all_pids()}))

    def all_pids(self) -> list[int]:
        return [*self.pids, *(n.pid for n in self.nodes if n.pid)]

    def settings(self) -> dict[str, str]:
        """The `swarm:` section of a server's config.yaml that uses this swarm."""
        return {"manager": self.manager.socket, "registry": self.registry, "network": self.network}


def remove_registry_images(client: docker.DockerClient, registry: str) -> int:
    """Remove the names this machine's daemon gave images for the swarm's registry (tags,
    and the digests a push records), which the swarm backend pushed there: the registry
    goes with the swarm. An image that has other names keeps them. Returns how many."""
    removed = 0
    # the low-level list: images.list() inspects each image, and one that another test
    # removes meanwhile fails the whole listing
    for image in client.api.images():
        names = [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]
        for name in names:
            if name.startswith(f"{registry}/"):
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(name)
                    removed += 1
    return removed


def _pids_under(root: Path) -> list[int]:
    """Pids of processes whose command line names a path under `root` (ours only: the
    root is a fresh temporary directory)."""
    found = []
    needle = str(root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return [p for p in found if p != os.getpid() and _alive(p)]


def _container_pids(node: Node) -> list[int]:
    """Pids of the processes in the node's containers."""
    return _container_pids_in(node.dir)


def _container_pids_in(root: Path) -> list[int]:
    """Pids of the processes in the containers of the nodes under `root` (by their
    cgroup, named by the container ids in the nodes' own data roots)."""
    ids = [p.name for p in root.glob("dys-n*/data/containers/*") if len(p.name) == 64]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not ids:
            continue
        with contextlib.suppress(OSError):
            cgroup = (entry / "cgroup").read_text()
            if any(i in cgroup for i in ids):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, which only its parent can reap, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            # our own children must be reaped, or they stay as zombies
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid):
                break
            time.sleep(0.05)


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever a killed daemon left mounted under `root`, deepest first."""
    prefix = str(root)
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            _run("umount", "-l", point, check=False)


def cleanup(root: Path | None = None) -> None:
    """Remove a harness run: its processes, namespaces, links, rule, mounts and data."""
    if root is None and STATE.exists():
        with contextlib.suppress(ValueError, OSError):
            saved = json.loads(STATE.read_text())
            root = Path(saved["root"])
    # SIGKILL at once: the data goes with the run, and a dockerd stopping politely stops
    # each container with a grace period first
    # (only processes naming the root: a recorded pid may since be someone else's)
    for _ in range(3):
        victims = _pids_under(root) + _container_pids_in(root) if root is not None else []
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(victims, timeout=15)
    namespaces = _run("ip", "netns", "list", check=False).stdout.split()
    for ns in (n for n in namespaces if n.startswith("dys-")):
        _run("ip", "netns", "delete", ns, check=False)
    links = _run("ip", "-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith("dys-"):
            _run("ip", "link", "delete", name, check=False)
    while _run("iptables", "-D", *FORWARD_RULE, check=False).returncode == 0:
        pass
    if root is not None:
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
    STATE.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Forwarder:
    """127.0.0.1:port on the host -> the registry on the bridge (a thread per direction)."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.target = target
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


def _make_node(node: Node, port: int) -> None:
    ns, host_end, node_end = node.name, f"{node.name}h", f"{node.name}c"
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end)
    _run("ip", "link", "set", host_end, "master", BRIDGE, "up")
    _run("ip", "link", "set", node_end, "netns", ns)
    _run("ip", "-n", ns, "link", "set", node_end, "name", "eth0")
    _run("ip", "-n", ns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
    _run("ip", "-n", ns, "link", "set", "eth0", "up")
    _run("ip", "-n", ns, "link", "set", "lo", "up")
    _run("ip", "-n", ns, "route", "add", "default", "via", HOST_IP)
    # 127.0.0.1:port in the namespace reaches the registry on the bridge
    netns = f"--net=/run/netns/{ns}"
    _run("nsenter", netns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
    dnat = ["-d", "127.0.0.1/32", "-p", "tcp", "--dport", str(port)]
    _run("nsenter", netns, "iptables", "-t", "nat", "-A", "OUTPUT", *dnat, "-j", "DNAT",
         "--to-destination", f"{HOST_IP}:{port}")  # fmt: skip
    _run("nsenter", netns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-d", f"{HOST_IP}/32",
         "-p", "tcp", "--dport", str(port), "-j", "MASQUERADE")  # fmt: skip


def _start_dockerd(node: Node, registry: str) -> None:
    node.dir.mkdir(parents=True, exist_ok=True)
    script = f"hostname {node.name} && exec dockerd " + " ".join(
        [
            f"--data-root={node.dir}/data",
            f"--exec-root={node.dir}/exec",
            f"--pidfile={node.dir}/dockerd.pid",
            f"-H={node.socket}",
            f"--bip=10.214.{node.index}.1/24",
            f"--insecure-registry={registry}",
        ]
    )
    log = (node.dir / "dockerd.log").open("ab")
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{node.name}", "unshare", "--uts", "sh", "-c", script],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    node.pid = proc.pid  # nsenter and unshare exec: this is dockerd's pid
    deadline = time.monotonic() + 60
    while True:
        try:
            with contextlib.closing(node.client()) as client:
                client.ping()
                return
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (node.dir / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"dockerd of {node.name} did not start:\n{tail}") from None
            time.sleep(0.1)


def _registry_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answers
    except OSError:  # not listening yet: refused, or reset by the forwarder
        return False


def _wait_registry(registry: str, timeout: float = 30) -> None:
    """docker-registry binds its port some time after it starts: nothing may use it before."""
    deadline = time.monotonic() + timeout
    while not _registry_answers(f"http://{registry}/v2/"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the registry at {registry} did not answer in {timeout:.0f} s")
        time.sleep(0.1)


def _start_registry(root: Path, port: int) -> int:
    (root / "registry").mkdir(parents=True)
    config = root / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root}/registry\nhttp:\n  addr: {HOST_IP}:{port}\n"
    )
    log = (root / "registry.log").open("ab")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc.pid


@contextlib.contextmanager
def swarm_cluster(nodes: int = 2, network: str = "dys-net") -> Iterator[Swarm]:
    """Build a swarm of `nodes` nodes, a registry and an attachable overlay network;
    remove all of it afterwards (and first, whatever a crashed run left)."""
    cleanup()
    root = Path(tempfile.mkdtemp(prefix="dys-swarm-"))
    # Everything on a tmpfs: images pull and unpack faster, and removing the nodes' data
    # (tens of thousands of files) is one unmount instead of a minute of unlinking.
    _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "dys-swarm", str(root))
    port = _free_port()
    registry = f"127.0.0.1:{port}"
    swarm = Swarm(root, [Node(i + 1, root) for i in range(nodes)], registry, network)
    forwarder: _Forwarder | None = None
    try:
        swarm._save()
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _run("iptables", "-I", *FORWARD_RULE)
        swarm.pids.append(_start_registry(root, port))
        forwarder = _Forwarder(port, (HOST_IP, port))
        for node in swarm.nodes:
            _make_node(node, port)
        starters = [
            threading.Thread(target=_start_dockerd, args=(n, registry)) for n in swarm.nodes
        ]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        if not all(n.pid for n in swarm.nodes):
            raise RuntimeError("a node's dockerd did not start (see its dockerd.log)")
        swarm._save()
        with contextlib.closing(swarm.manager.client()) as manager:
            manager.init_swarm(advertise_addr=swarm.manager.ip, listen_addr="0.0.0.0:2377")
            token = manager.inspect_swarm()["JoinTokens"]["Worker"]
            for node in swarm.nodes[1:]:
                with contextlib.closing(node.client()) as worker:
                    worker.join_swarm([f"{swarm.manager.ip}:2377"], token, listen_addr="0.0.0.0")
            manager.create_network(network, driver="overlay", attachable=True, labels={LABEL: "1"})
        _wait_registry(registry)  # started first: long since listening, as a rule
        yield swarm
    finally:
        if forwarder is not None:
            forwarder.close()
        cleanup(root)


class SharedSwarm:
    """The one swarm of a test session: started by the first test that needs it, stopped
    once the last one has run (starting one costs ~20 s, and its daemons and tmpfs are
    not left running through the tests after it), or at the session's end. A test needing
    it after it stopped starts it again."""

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None
        self._swarm: Swarm | None = None

    def get(self) -> Swarm:
        if self._swarm is None:
            stack = contextlib.ExitStack()
            self._swarm = stack.enter_context(swarm_cluster(nodes=2))
            self._stack = stack
        return self._swarm

    def close(self) -> None:
        stack, self._stack, self._swarm = self._stack, None, None
        if stack is not None:
            stack.close()
