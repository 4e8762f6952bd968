"""`dockyard doctor`'s checks of the Swarm backend: the manager, the nodes, the overlay
network, the registry (reachable, pushable from this server) and the nodes' pulls.

Pure, like checks.py: each check asks a SwarmProbes (swarm_probes.py does the I/O; tests
pass fakes) and returns one Result. `swarm_checks(probes)` gives them as a table that
replaces checks.py's `swarm` placeholder when config.yaml has a `swarm:` section.

What a pull check can see: with `swarm.node_endpoints`, each such node pulls a tiny image
this server pushed (a real pull, as a workspace's start does it). A node without one is
not asked; the manager's recent task errors still show a node that failed to pull, and a
loopback registry name (127.0.0.1:PORT, as the test harness uses) is said to need a
forward on every node, which only the nodes can show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from provisioner.doctor.checks import Check, Level, ProbeError, Probes, Result
from provisioner.net import is_loopback_host
from provisioner.placement import NodeView, problem

MANAGER_FIX = (
    "check swarm.manager in config.yaml and that the manager's dockerd runs (a manager: "
    "docker swarm init there; docker node ls shows the nodes)"
)


class SwarmProbes(Protocol):
    """What the Swarm checks ask; every method may raise ProbeError."""

    def config(self) -> Mapping[str, Any]: ...  # manager, registry, network, node_endpoints
    def manager(self) -> Mapping[str, Any]: ...  # `docker info`'s Swarm section
    def nodes(self) -> list[NodeView]: ...
    def network(self, name: str) -> Mapping[str, Any] | None: ...  # inspect, None if absent
    def registry(self, registry: str) -> tuple[str, int]: ...  # (URL asked, HTTP status)
    def push(self, registry: str) -> str: ...  # the probe image's reference, pushed
    def pull(self, node: str, endpoint: str, ref: str) -> None: ...  # on that node's daemon
    def pull_errors(self) -> list[tuple[str, str]]: ...  # (node hostname, error), recent


def _config(sp: SwarmProbes, name: str) -> Mapping[str, Any] | Result:
    try:
        return sp.config()
    except ProbeError as exc:
        return Result(
            name,
            Level.FAIL,
            f"the swarm settings are not usable: {exc}",
            "fix the swarm: section of config.yaml (see docs/swarm.md)",
        )


def check_manager(sp: SwarmProbes) -> Result:
    config = _config(sp, "swarm-manager")
    if isinstance(config, Result):
        return config
    where = str(config.get("manager"))
    try:
        info = sp.manager()
    except ProbeError as exc:
        return Result(
            "swarm-manager", Level.FAIL, f"the manager at {where} is not reachable: {exc}",
            MANAGER_FIX,
        )  # fmt: skip
    if not info.get("ControlAvailable"):
        state = info.get("LocalNodeState") or "inactive"
        return Result(
            "swarm-manager",
            Level.FAIL,
            f"the Docker engine at {where} is not a swarm manager (swarm state: {state})",
            "point swarm.manager at a manager node, or run docker swarm init there",
            {"manager": where, "state": state},
        )
    managers = info.get("Managers")
    details = {"manager": where, "node": info.get("NodeID"), "managers": managers}
    return Result(
        "swarm-manager",
        Level.OK,
        f"{where} is a swarm manager ({managers or '?'} managers, {info.get('Nodes') or '?'} "
        "nodes)",
        details=details,
    )


def _nodes(sp: SwarmProbes, name: str) -> list[NodeView] | Result:
    try:
        return sp.nodes()
    except ProbeError as exc:
        return Result(name, Level.SKIP, f"needs the manager (see swarm-manager): {exc}")


def check_nodes(sp: SwarmProbes) -> Result:
    nodes = _nodes(sp, "swarm-nodes")
    if isinstance(nodes, Result):
        return nodes
    problems = {n.hostname: why for n in nodes if (why := problem(n)) is not None}
    ready = sorted(n.hostname for n in nodes if n.hostname not in problems)
    details = {"ready": ready, "problems": problems}
    if not ready:
        listed = "; ".join(problems.values()) or "the swarm has no nodes"
        return Result(
            "swarm-nodes",
            Level.FAIL,
            f"no node can take a workspace: {listed}",
            "start the nodes' dockerd, or docker node update --availability active NODE",
            details,
        )
    if problems:
        drained = [h for h, why in problems.items() if why.endswith("is drained")]
        return Result(
            "swarm-nodes",
            Level.WARN,
            f"{len(ready)} of {len(nodes)} nodes take workspaces; {'; '.join(problems.values())}",
            "their tasks are in error until they are back: docker node update "
            f"--availability active {' '.join(drained)}".rstrip()
            if drained
            else "start the node's dockerd (docker node ls shows its state)",
            details,
        )
    return Result(
        "swarm-nodes",
        Level.OK,
        f"{len(ready)} nodes ready and active: {', '.join(ready)}",
        details=details,
    )


def check_network(sp: SwarmProbes) -> Result:
    config = _config(sp, "swarm-network")
    if isinstance(config, Result):
        return config
    name = str(config.get("network"))
    fix = f"docker network create -d overlay --attachable {name} (on the manager)"
    try:
        found = sp.network(name)
    except ProbeError as exc:
        return Result("swarm-network", Level.SKIP, f"needs the manager (see swarm-manager): {exc}")
    if found is None:
        return Result("swarm-network", Level.FAIL, f"the network {name} does not exist", fix)
    driver, attachable = found.get("Driver"), bool(found.get("Attachable"))
    details = {"network": name, "driver": driver, "attachable": attachable}
    if driver != "overlay" or not attachable:
        what = f"a {driver} network" if driver != "overlay" else "an overlay network"
        return Result(
            "swarm-network",
            Level.FAIL,
            f"{name} is {what}{'' if attachable else ', not attachable'}: workspaces need an "
            "attachable overlay network",
            f"docker network rm {name}; {fix}",
            details,
        )
    return Result("swarm-network", Level.OK, f"{name}: attachable overlay", details=details)


def is_loopback(registry: str) -> bool:
    """Whether the registry's host is a loopback address (localhost included)."""
    if registry.startswith("["):  # [IPv6]:port
        host = registry[1 : registry.find("]")]
    else:
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return is_loopback_host(host)


def check_registry(sp: SwarmProbes) -> Result:
    config = _config(sp, "registry")
    if isinstance(config, Result):
        return config
    registry = str(config.get("registry"))
    try:
        url, status = sp.registry(registry)
    except ProbeError as exc:
        return Result(
            "registry",
            Level.FAIL,
            f"the registry {registry} is not reachable: {exc}",
            "start it (Debian: apt-get install docker-registry; systemctl start "
            "docker-registry) or fix swarm.registry in config.yaml",
            {"registry": registry},
        )
    details = {"registry": registry, "url": url, "status": status}
    if status in (200, 401):  # 401: it asks for credentials; `docker login` gives them
        how = "answers" if status == 200 else "answers and asks for credentials"
        return Result("registry", Level.OK, f"{url} {how} (HTTP {status})", details=details)
    return Result(
        "registry",
        Level.FAIL,
        f"{url} answered HTTP {status}: not a Docker registry (API v2)",
        "point swarm.registry at the registry's HOST:PORT",
        details,
    )


def _push(sp: SwarmProbes, registry: str) -> str | ProbeError:
    # asked by two checks; the probes remember the answer
    try:
        return sp.push(registry)
    except ProbeError as exc:
        return exc


def check_push(sp: SwarmProbes) -> Result:
    config = _config(sp, "registry-push")
    if isinstance(config, Result):
        return config
    registry = str(config.get("registry"))
    try:
        sp.registry(registry)
    except ProbeError:
        return Result("registry-push", Level.SKIP, "needs the registry (see registry)")
    pushed = _push(sp, registry)
    if isinstance(pushed, ProbeError):
        return Result(
            "registry-push",
            Level.FAIL,
            f"this server's Docker engine cannot push to {registry}: {pushed}",
            "give that engine access: TLS the registry or list it in insecure-registries "
            "(/etc/docker/daemon.json; a loopback registry needs neither), and docker login "
            "if it asks for credentials",
            {"registry": registry},
        )
    return Result(
        "registry-push", Level.OK, f"pushed {pushed} from this server", details={"ref": pushed}
    )


def check_pull(sp: SwarmProbes) -> Result:
    config = _config(sp, "swarm-pull")
    if isinstance(config, Result):
        return config
    registry = str(config.get("registry"))
    endpoints: Mapping[str, str] = config.get("node_endpoints") or {}
    nodes = _nodes(sp, "swarm-pull")
    if isinstance(nodes, Result):
        return nodes
    failed: dict[str, str] = {}
    pulled: list[str] = []
    asked = sorted(n.hostname for n in nodes if n.hostname in endpoints)
    if asked:
        pushed = _push(sp, registry)
        if isinstance(pushed, ProbeError):
            return Result("swarm-pull", Level.SKIP, "needs a pushed image (see registry-push)")
        for name in asked:
            try:
                sp.pull(name, endpoints[name], pushed)
                pulled.append(name)
            except ProbeError as exc:
                failed[name] = str(exc)
    try:
        for node, error in sp.pull_errors():
            if node not in asked:  # a node asked just now has pulled, or said why not
                failed.setdefault(node, f"a recent task there: {error}")
    except ProbeError:
        pass  # the manager is away: swarm-manager says so
    unasked = sorted(n.hostname for n in nodes if n.hostname not in endpoints)
    details = {"pulled": pulled, "failed": failed, "not_checked": unasked}
    if failed:
        return Result(
            "swarm-pull",
            Level.FAIL,
            "cannot pull from "
            f"{registry}: {'; '.join(f'node {n}: {why}' for n, why in sorted(failed.items()))}",
            f"each node's dockerd must reach {registry}: TLS it or list it in that node's "
            "insecure-registries; a loopback name needs a forward to the registry on every "
            "node",
            details,
        )
    if unasked:
        loop = is_loopback(registry)
        note = (
            f"; {registry} is a loopback name: each node must forward it to the registry "
            "(as tests/swarm.py does), which only the nodes can show"
            if loop
            else ""
        )
        said = f"pulled on {', '.join(pulled)}; " if pulled else ""
        return Result(
            "swarm-pull",
            Level.WARN if loop else Level.SKIP,
            f"{said}not checked on {', '.join(unasked)} (no swarm.node_endpoints for them){note}",
            "set swarm.node_endpoints (HOSTNAME: that node's Docker API) so the doctor pulls "
            "there, or docker pull an image from the registry on each node",
            details,
        )
    return Result(
        "swarm-pull",
        Level.OK,
        f"every node pulled from {registry}: {', '.join(pulled)}",
        details=details,
    )


SWARM_CHECKS = {
    "swarm-manager": check_manager,
    "swarm-nodes": check_nodes,
    "swarm-network": check_network,
    "registry": check_registry,
    "registry-push": check_push,
    "swarm-pull": check_pull,
}


def configured(settings: Mapping[str, Any]) -> bool:
    """Whether the server has the Swarm backend (a `swarm:` section, or backend: swarm)."""
    return settings.get("swarm") is not None or settings.get("backend") == "swarm"


def with_swarm(checks: Mapping[str, Check], sp: SwarmProbes) -> dict[str, Check]:
    """The checks table with the Swarm checks, bound to `sp`, in place of `swarm`."""
    table: dict[str, Check] = {}
    for name, check in checks.items():
        if name != "swarm":
            table[name] = check
            continue
        for swarm_name, swarm_check in SWARM_CHECKS.items():
            table[swarm_name] = _bound(swarm_check, sp)
    return table


def _bound(check: Any, sp: SwarmProbes) -> Check:
    def run(_: Probes) -> Result:
        result: Result = check(sp)
        return result

    return run
