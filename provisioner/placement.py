"""Where a workspace goes on a cluster of nodes, and what a node's state means for it.

Pure rules (no I/O): the Swarm backend reads the nodes and the load, these decide. A
task's disk is a volume on one node, so the node is chosen once, at create, and every
later start is pinned to it; hence the choice is Dockyard's (the least loaded node that
meets the template's constraints), and Swarm gets it as a `node.id==` constraint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Swarm's constraint grammar: an attribute, == or !=, a value.
_CONSTRAINT = re.compile(
    r"^(?P<attr>node\.(?:id|hostname|role|platform\.os|platform\.arch)"
    r"|(?:node|engine)\.labels\.[A-Za-z0-9_.-]{1,128})"
    r"\s*(?P<op>==|!=)\s*(?P<value>[A-Za-z0-9_.:/=-]{1,256})$"
)
MAX_CONSTRAINTS = 16
SPREAD = "spread"
# what a drained node's workspaces become (the template's placement.on_drain)
ON_DRAIN = "on_drain"
ON_DRAIN_DEFAULT = "error"
PAUSE = "pause"


class PlacementError(ValueError):
    """A constraint that is not Swarm's syntax, or no node that can take a workspace."""


@dataclass(frozen=True)
class NodeView:
    """What placement needs to know of one node."""

    id: str
    hostname: str
    role: str = "worker"  # worker or manager
    state: str = "ready"  # ready, down, unknown, disconnected
    availability: str = "active"  # active, pause, drain
    addr: str = ""
    message: str = ""  # the manager's word on its state ("heartbeat failure", ...)
    labels: Mapping[str, str] = field(default_factory=dict)
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    os: str = "linux"
    arch: str = "x86_64"


def check_constraint(text: str) -> str:
    """The constraint, if it is one Swarm understands (and this module can evaluate)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise PlacementError(f"constraint {text!r} holds a control character")
    if not _CONSTRAINT.match(text.strip()):
        raise PlacementError(
            f"constraint {text!r} is not ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE, where ATTRIBUTE "
            "is node.id, node.hostname, node.role, node.platform.os, node.platform.arch, "
            "node.labels.NAME or engine.labels.NAME"
        )
    return text.strip()


def _attribute(node: NodeView, attr: str) -> str | None:
    simple = {
        "node.id": node.id,
        "node.hostname": node.hostname,
        "node.role": node.role,
        "node.platform.os": node.os,
        "node.platform.arch": node.arch,
    }
    if attr in simple:
        return simple[attr]
    if attr.startswith("node.labels."):
        return node.labels.get(attr.removeprefix("node.labels."))
    return node.engine_labels.get(attr.removeprefix("engine.labels."))


def satisfies(node: NodeView, constraint: str) -> bool:
    """Whether the node meets one constraint (Swarm's meaning: a missing label is unequal)."""
    match = _CONSTRAINT.match(check_constraint(constraint))
    assert match is not None  # checked above
    actual = _attribute(node, match["attr"])
    equal = actual is not None and actual == match["value"]
    return equal if match["op"] == "==" else not equal


def problem(node: NodeView) -> str | None:
    """Why the node cannot run workspaces now, in words naming it; None when it can."""
    if node.state != "ready":
        why = f": {node.message}" if node.message else ""
        return f"node {node.hostname} is {node.state}{why}"
    if node.availability == "drain":
        return f"node {node.hostname} is drained"
    if node.availability == "pause":
        return f"node {node.hostname} is paused (it takes no new workspaces)"
    return None


def drained(node: NodeView) -> bool:
    """The node is up but drained: Swarm stopped its workspaces on purpose, and their
    disks are intact there (unlike a node that is down, whose state is unknown)."""
    return node.state == "ready" and node.availability == "drain"


def settling(node: NodeView) -> bool:
    """The manager has not heard from the node since it (re)started or a new leader was
    elected: Swarm marks every node `unknown` then, until it reports again (or, after a
    grace period, `down`). Its workspaces are likely running: wait, don't fail them."""
    return node.state == "unknown"


def on_lost(policy: Mapping[str, object], lost: str, was_drained: bool) -> str:
    """What a task whose workspace's node went away becomes: `pause` when the node was
    drained and the task's template asked for it (placement.on_drain: pause), else
    `error`. A node that is down or gone errors whatever the template says: nothing
    there can be paused, and the task says which node to wait for."""
    if lost and was_drained and policy.get(ON_DRAIN, ON_DRAIN_DEFAULT) == PAUSE:
        return PAUSE
    return "error"


def choose(
    nodes: Iterable[NodeView],
    constraints: Iterable[str],
    load: Mapping[str, int],
    per_node: int | None = None,
) -> NodeView:
    """The node a new workspace goes to: among ready, active nodes meeting every
    constraint and below `per_node` workspaces, the one running the fewest (spread);
    ties go to the first hostname. Raises PlacementError saying why none fits."""
    wanted = [check_constraint(c) for c in constraints]
    reasons: list[str] = []
    fits: list[NodeView] = []
    for node in nodes:
        why = problem(node)
        if why is None:
            unmet = [c for c in wanted if not satisfies(node, c)]
            if unmet:
                why = f"node {node.hostname} does not meet {', '.join(unmet)}"
            elif per_node is not None and load.get(node.id, 0) >= per_node:
                why = f"node {node.hostname} is full ({load.get(node.id, 0)} of {per_node})"
        if why is None:
            fits.append(node)
        else:
            reasons.append(why)
    if not fits:
        detail = "; ".join(reasons) or "the swarm has no nodes"
        raise PlacementError(f"no swarm node can take the workspace: {detail}")
    return min(fits, key=lambda n: (load.get(n.id, 0), n.hostname, n.id))
