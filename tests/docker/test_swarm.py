"""The Swarm backend on a real two-node swarm (tests/swarm.py): workspaces spread across
nodes, logs and send on each, pause/resume on the same node, delete, and a node drained or
lost turning its task to error with the node named, resumable once it is back."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from provisioner.backends.swarm import LABEL_NODE_NAME, SwarmBackend
from provisioner.backends.swarm_client import ServiceInfo
from provisioner.backends.swarm_jobs import LABEL_JOB
from provisioner.backends.swarm_volumes import LABEL_WIPE, volume_names
from provisioner.server.main import build_engine
from provisioner.store.store import Store
from tests.docker.conftest import ServerHandle
from tests.docker.templates import add_scripted_variant, cleanup_templates
from tests.docker.test_recovery import ServerProcess
from tests.docker.test_repo_work import FILES as REPO_FILES
from tests.docker.test_workspace_access import _cli
from tests.git_server import serve_repository
from tests.polling import HTTP_TIMEOUT, wait_until
from tests.postgres import PostgresCluster
from tests.serving import serve
from tests.swarm import HOST_IP, Swarm, remove_registry_images
from tests.variants import write_scripted_variant

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


@pytest.fixture(scope="module")
def server(
    swarm: Swarm, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    home = tmp_path_factory.mktemp("dockyard-swarm-home")
    config = {"backend": "swarm", "swarm": swarm.settings()}
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    engine = build_engine(home)
    engine.tick_s = 0.5
    instance = engine.backend.instance  # type: ignore[attr-defined]
    try:
        with serve(engine, home) as url:
            yield ServerHandle(url, home, engine, instance, docker_client)
    finally:
        remove_registry_images(docker_client, swarm.registry)


def _backend(server: ServerHandle) -> SwarmBackend:
    backend = server.engine.backend.backends["swarm"]  # type: ignore[attr-defined]
    assert isinstance(backend, SwarmBackend)
    return backend


def _service(server: ServerHandle, task_id: str) -> ServiceInfo:
    service = _backend(server)._service(task_id)
    assert service is not None
    return service


def _node_of(server: ServerHandle, task_id: str) -> str:
    return _service(server, task_id).labels[LABEL_NODE_NAME]


def _create(server: ServerHandle, prompt: str, wait: bool = True) -> str:
    args = ["task", "create", "--template", "scripted", "-q", prompt]
    task_id = server.cli(*args, *(["--wait"] if wait else [])).stdout.strip()
    assert len(task_id) == 36, task_id
    return task_id


@pytest.fixture(scope="module")
def two_tasks(server: ServerHandle) -> Iterator[list[str]]:
    """Two tasks, made at once: spread puts them on different nodes (placement is one
    at a time), whose pulls of the image then overlap."""
    tasks = [_create(server, "hello from one", False), _create(server, "hello from two", False)]
    for task in tasks:
        server.wait_idle(task, timeout=120)
    yield tasks
    for task in tasks:
        server.cli("task", "delete", "-y", task, check=False)


def test_tasks_spread_and_logs_send_work_on_each_node(
    server: ServerHandle, two_tasks: list[str]
) -> None:
    assert {_node_of(server, t) for t in two_tasks} == {"dys-n1", "dys-n2"}
    for n, task in enumerate(two_tasks):
        server.wait_idle(task, timeout=90)
        prompt = ("hello from one", "hello from two")[n]
        server.wait_output(task, f"Done: {prompt}")
        server.cli("task", "send", task, f"follow-up {n}")
        server.wait_output(task, f"Done: follow-up {n}")
        status = server.status(task)
        assert status["status"] == "active", status
        assert status["node"] == _node_of(server, task)  # recorded in the task


def test_pause_resume_stays_on_its_node_with_its_disk(
    server: ServerHandle, two_tasks: list[str]
) -> None:
    task = two_tasks[1]
    node = _node_of(server, task)
    server.wait_idle(task, timeout=90)
    server.cli("task", "pause", task)
    server.wait_for(task, lambda s: s["status"] == "paused", 60, "paused")
    assert _service(server, task).replicas == 0
    server.cli("task", "resume", task)
    server.wait_idle(task, timeout=90)
    assert _node_of(server, task) == node
    # the agent's context lives in the home volume on that node: it survived the pause
    resumed = [line for line in server.output(task) if line.startswith("Resumed")]
    assert resumed and "previous context: 0 inputs" not in resumed[-1], resumed


def test_exec_preview_and_diff_through_the_bridge_and_a_job_on_the_worker(
    server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Swarm has no cross-node exec: on the worker node, `task exec`, `cp`, a preview and
    the running task's diff go through its bridge; the paused task's diff (and the
    checkpoint before the pause) through a one-shot service on its node."""
    tmp = tmp_path_factory.mktemp("swarm-repo")
    pinned = {"placement": {"constraints": ["node.hostname==dys-n2"]}}
    server.cli("template", "push", str(write_scripted_variant(tmp, "on-n2", workspace=pinned)))
    with serve_repository(tmp / "git", REPO_FILES, host=HOST_IP) as (repo, base):
        created = server.cli(
            "task", "create", "-q", "-t", "on-n2", "--param=work_seconds=0.05",
            f"--param=repo={repo.url}", f"--param=repo_credential={repo.token}",
            "/write notes/todo.txt first thing",
        )  # fmt: skip
        task = created.stdout.strip().splitlines()[-1]
        try:
            server.wait_output(task, "Wrote notes/todo.txt", timeout=120)
            assert server.wait_idle(task)["base_commit"] == base
            assert _node_of(server, task) == "dys-n2"
            done = _cli(server, "task", "exec", task, "--", "sh", "-c", "id -u; pwd; exit 5")
            assert (done.returncode, done.stdout) == (5, "1000\n/workspace\n"), done.stderr
            out = tmp / "todo.txt"
            assert _cli(server, "task", "cp", f"{task}:notes/todo.txt", str(out)).returncode == 0
            assert out.read_text() == "first thing\n"
            running = json.loads(server.cli("task", "diff", task, "-o", "json").stdout)
            assert [f["path"] for f in running["files"]] == ["notes/todo.txt"]

            # an app in the workspace, previewed through the bridge's stream to its port
            app = "setsid -f python3 -m http.server 8123 >/dev/null 2>&1 </dev/null"
            assert _cli(server, "task", "exec", task, "--", "sh", "-c", app).returncode == 0
            url = f"{server.url}/api/dockyard/v1/tasks/{task}/apps/8123/notes/todo.txt"
            wait_until(
                lambda: (
                    httpx.get(url, headers=server.headers, timeout=HTTP_TIMEOUT).status_code == 200
                ),
                30,
                "the preview",
            )
            assert (
                httpx.get(url, headers=server.headers, timeout=HTTP_TIMEOUT).text == "first thing\n"
            )

            server.cli("task", "pause", task)
            paused = server.wait_for(task, lambda s: s["status"] == "paused", what="paused")
            assert paused["checkpoint_commit"]  # committed through the bridge before it
            shown = json.loads(server.cli("task", "diff", task, "-o", "json").stdout)
            assert "+first thing" in shown["diff"]
            assert shown["commits"][0]["author"] == "Dockyard"
            jobs = _backend(server).swarm.services({LABEL_JOB: task})
            assert jobs == [] and server.status(task)["status"] == "paused"
        finally:
            server.cli("task", "delete", "-y", task, check=False)


def test_draining_a_node_errors_its_task_or_pauses_it_as_its_template_says(
    server: ServerHandle, swarm: Swarm, two_tasks: list[str]
) -> None:
    task = next(t for t in two_tasks if _node_of(server, t) == "dys-n2")
    other = next(t for t in two_tasks if t != task)
    # a template asking for a pause on drain, its task pinned to the node drained below
    placement = {"constraints": ["node.hostname==dys-n2"], "on_drain": "pause"}
    name = add_scripted_variant(server, "swarm-drain-pauses", workspace={"placement": placement})
    args = ["task", "create", "--template", name, "-q", "--wait", "pause me on drain"]
    pausing = server.cli(*args).stdout.strip()
    server.wait_idle(pausing, timeout=120)
    server.wait_idle(task, timeout=90)
    manager = swarm.manager.client()
    node = next(n for n in manager.nodes() if n["Description"]["Hostname"] == "dys-n2")
    spec = {**node["Spec"], "Availability": "drain"}
    manager.update_node(node["ID"], node["Version"]["Index"], spec)
    try:
        status = server.wait_for(task, lambda s: s["status"] == "error", 60, "error")
        assert "node dys-n2 is drained" in status["message"], status
        status = server.wait_for(pausing, lambda s: s["status"] == "paused", 60, "paused")
        assert "node dys-n2 is drained" in status["message"], status
        assert _service(server, pausing).replicas == 0  # Swarm won't restart it by itself
        assert server.status(other)["status"] == "active"  # the other node's task runs on
        # while it is drained, a resume says why it cannot start
        server.cli("task", "resume", task, check=False)
        status = server.wait_for(task, lambda s: s["status"] == "error", 60, "error again")
        assert "dys-n2" in status["message"], status
    finally:
        node = manager.inspect_node(node["ID"])
        spec = {**node["Spec"], "Availability": "active"}
        manager.update_node(node["ID"], node["Version"]["Index"], spec)
        manager.close()
    server.cli("task", "resume", task)
    server.wait_idle(task, timeout=90)
    assert _node_of(server, task) == "dys-n2"
    try:  # the paused one resumes on its node, with its disk and the agent's session
        server.cli("task", "resume", pausing)
        server.wait_idle(pausing, timeout=90)
        assert _node_of(server, pausing) == "dys-n2"
        resumed = [line for line in server.output(pausing) if line.startswith("Resumed")]
        assert resumed and "previous context: 0 inputs" not in resumed[-1], resumed
        moves = [(e["from_value"], e["to_value"]) for e in server.engine.store.events(pausing)]
        assert ("active", "error") not in moves and ("active", "paused") in moves
    finally:
        server.cli("task", "delete", "-y", pausing, check=False)
        cleanup_templates(server)


def test_delete_removes_the_service(server: ServerHandle) -> None:
    task = _create(server, "short lived")
    server.wait_idle(task, timeout=90)
    server.cli("task", "delete", "-y", task)
    backend = _backend(server)
    assert backend._service(task) is None
    assert task not in backend.task_ids()


def _one_each(store: Store, task_id: str) -> None:
    """The task was provisioned once, by one server: each move of its provisioning
    recorded once, its node chosen once, and one service on the swarm."""
    history = store.events(task_id)
    moves = [(e["from_value"], e["to_value"]) for e in history if e["kind"] == "status"]
    for move in (("pending", "initializing"), ("initializing", "active")):
        assert moves.count(move) == 1, (task_id, moves)
    assert len([e for e in history if e["kind"] == "node"]) == 1, history


def test_two_servers_on_one_database_share_the_swarm_and_one_takes_over(
    server: ServerHandle,  # its teardown removes the registry's names of pushed images
    swarm: Swarm,
    postgres_cluster: PostgresCluster,
    tmp_path: Path,
) -> None:
    """Two server processes (one home, as several servers must share: docs/swarm.md),
    one PostgreSQL, one swarm manager: each provisions a task, the other sends to it;
    then the first is killed -9 and the second serves every task's logs and send."""
    url = postgres_cluster.database()
    home = tmp_path / "home"
    home.mkdir()
    config = {
        "backend": "swarm",
        "swarm": {"manager": swarm.manager.socket, "registry": swarm.registry,
                  "network": swarm.network},
    }  # fmt: skip
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    templates = tmp_path / "templates"
    templates.mkdir()
    first, second = ServerProcess(home, templates), ServerProcess(home, templates)
    for proc in (first, second):
        proc.env["DOCKYARD_DATABASE_URL"] = url
        proc.start()
    store = Store(url)
    tasks: list[str] = []
    try:
        for n, proc in enumerate((first, second)):
            tasks.append(proc.cli("task", "create", "-t", "scripted", "-q", f"hi {n}").strip())
        for task in tasks:
            first.wait(task, lambda t: t["status"] == "active" and t["state"] == "idle", 120)
        for n, task in enumerate(tasks):  # each acts on the task the other made
            (second, first)[n].cli("task", "send", task, f"across {n}")
        for n, task in enumerate(tasks):
            _wait_reply(first, task, f"Done: across {n}")
            _one_each(store, task)

        first.kill9()  # no cleanup: its followers, leases and connections just stop
        for n, task in enumerate(tasks):
            second.cli("task", "send", task, f"after the kill {n}")
        for n, task in enumerate(tasks):
            _wait_reply(second, task, f"Done: after the kill {n}")
            inputs = [e["content"] for e in second.logs(task) if e["type"] == "input"]
            assert inputs == [f"hi {n}", f"across {n}", f"after the kill {n}"], inputs
            assert second.task(task)["status"] == "active"
            _one_each(store, task)
            assert _count_services(swarm, task) == 1
    finally:
        for task in tasks:
            with contextlib.suppress(AssertionError):
                second.cli("task", "delete", "-y", task)
        first.stop()
        second.stop()
        store.close()
        postgres_cluster.drop(url)


def _wait_reply(proc: ServerProcess, task_id: str, line: str) -> None:
    def seen() -> bool:
        return any(line in e["content"] for e in proc.logs(task_id))

    wait_until(seen, 60, f"{line!r} via {proc.url}", interval=0.2)


def _count_services(swarm: Swarm, task_id: str) -> int:
    with contextlib.closing(swarm.manager.client()) as manager:
        return len(manager.services(filters={"label": f"dockyard.task={task_id}"}))


def test_a_lost_node_errors_its_task_and_resume_works_once_it_returns(
    server: ServerHandle, swarm: Swarm, two_tasks: list[str]
) -> None:
    task = next(t for t in two_tasks if _node_of(server, t) == "dys-n2")
    server.wait_idle(task, timeout=90)
    worker = swarm.node("dys-n2")
    swarm.kill_daemon(worker)
    status = server.wait_for(task, lambda s: s["status"] == "error", 90, "error")
    assert "node dys-n2" in status["message"], status
    swarm.start_daemon(worker)
    _wait_node_ready(swarm, "dys-n2")
    server.cli("task", "resume", task)
    server.wait_idle(task, timeout=120)
    assert _node_of(server, task) == "dys-n2"


def _wait_node_ready(swarm: Swarm, hostname: str) -> None:
    from tests.polling import wait_until

    with contextlib.closing(swarm.manager.client()) as manager:

        def ready() -> bool:
            nodes = manager.nodes()
            return any(
                n["Description"]["Hostname"] == hostname and n["Status"]["State"] == "ready"
                for n in nodes
            )

        wait_until(ready, timeout=60, what=f"{hostname} ready again", interval=0.2)


def test_a_manager_restart_converges_as_on_docker(
    server: ServerHandle, swarm: Swarm, two_tasks: list[str]
) -> None:
    """The manager's dockerd is killed while tasks run and started again: the worker's
    task runs on (never errored), the manager's own task, whose container died with its
    daemon, errors with the cause; one service per task, no orphan."""
    on_manager = next(t for t in two_tasks if _node_of(server, t) == "dys-n1")
    on_worker = next(t for t in two_tasks if t != on_manager)
    for task in two_tasks:
        server.wait_idle(task, timeout=90)
    seen = len(server.engine.store.events(on_worker))
    swarm.kill_daemon(swarm.manager)
    swarm.start_daemon(swarm.manager)
    _wait_node_ready(swarm, "dys-n1")
    _wait_node_ready(swarm, "dys-n2")
    status = server.wait_for(on_manager, lambda s: s["status"] == "error", 90, "error")
    assert status["message"].startswith("workspace stopped: "), status
    server.cli("task", "send", on_worker, "after the manager restart")
    server.wait_output(on_worker, "Done: after the manager restart")
    moves = [e["to_value"] for e in server.engine.store.events(on_worker)[seen:]]
    assert "error" not in moves and server.status(on_worker)["status"] == "active", moves
    # (a resume on its node after such an error: the lost-node test above)
    backend = _backend(server)
    assert backend.task_ids() == set(two_tasks)  # no orphan service
    assert all(_count_services(swarm, t) == 1 for t in two_tasks)  # no duplicate


def _volume_data(swarm: Swarm, node: str, volume: str) -> Path:
    """A node's volume as its dockerd keeps it (the node's data root is on this host)."""
    return swarm.node(node).dir / "data" / "volumes" / volume / "_data"


def test_delete_frees_the_disk_on_its_node(server: ServerHandle, swarm: Swarm) -> None:
    """Without the node's endpoint a wipe empties the task's volumes there; with it, the
    orphan sweep removes a deleted task's volume left on the node."""
    task = _create(server, "disk")
    node = swarm.node(_node_of(server, task))
    backend = _backend(server)
    home = _volume_data(swarm, node.name, volume_names(task)[1])
    assert any(home.iterdir()), "the agent's context is on the node"
    server.cli("task", "delete", "-y", task)
    volumes = [_volume_data(swarm, node.name, volume) for volume in volume_names(task)]
    wait_until(lambda: not any(any(data.iterdir()) for data in volumes), 60, "the wipe")
    assert all(data.is_dir() for data in volumes), "empty named volumes stay"
    # the sweep's listing removes the wipe service once it has ended
    wait_until(
        lambda: (backend.task_ids(), not backend.swarm.services({LABEL_WIPE: task}))[1],
        60,
        "the wipe service's removal",
        interval=0.2,
    )

    # a volume a delete could not free (its node was away, say): found and removed
    # through the node's endpoint (what a delete does too, when the config names it)
    lost = "0123abcd-0000-4000-8000-000000000000"
    with contextlib.closing(node.client()) as client:
        labels = {**backend._labels(lost), "dockyard.test": "1"}
        client.create_volume(volume_names(lost)[0], labels=labels)
    assert lost not in backend.task_ids(), "not without the node's endpoint"
    backend.volumes.endpoints[node.name] = node.socket
    try:
        assert lost in backend.task_ids()
        server.engine._sweep_orphans()
        assert not _volume_data(swarm, node.name, volume_names(lost)[0]).parent.exists()
    finally:
        del backend.volumes.endpoints[node.name]
