"""The import structure stays layered: domain types at the bottom, then templating, store,
images and backends side by side, the engine above them and the server on top. Read from
the source (AST), so a TYPE_CHECKING import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# a module (by prefix) -> module prefixes it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # the bottom: domain types and pure rules
    "provisioner.lifecycle": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.model": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.spec": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.templating",
        "provisioner.images",
    ),
    "provisioner.access": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.templating",
    ),
    "provisioner.capacity": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.routing": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.preemption": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.dependencies": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.auth": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.durations": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.retention": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # interactive sessions' bounds and preview grants: pure, below the server using them
    "provisioner.session_limits": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
    ),
    "provisioner.previews": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
    ),
    "provisioner.draining": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # the queue's pure decisions: retries, prices, cost totals
    "provisioner.retrying": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.pricing": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.spend": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.webhooks": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.claiming": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # what the process observes for Prometheus: the store and engine observe into it
    "provisioner.metrics": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.logcontext": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # the doctor's judgements: its probes (doctor.probes) do the I/O
    "provisioner.doctor.checks": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.images",
    ),
    "provisioner.doctor.swarm_checks": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.images",
    ),
    # schedules' and triggers' pure rules: fire times, overlap, signatures, rendering
    "provisioner.scheduling": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.triggers": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    "provisioner.trigger_limits": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
    ),
    # git in and out of workspaces: URL and ref checks, scripts, parsing (pure)
    "provisioner.gitwork": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.templating",
        "provisioner.images",
    ),
    # where a workspace goes on a cluster, and what a node's state means for it
    "provisioner.placement": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.templating",
    ),
    "provisioner.coder_compat": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # what the dashboard's live board is sent, from a read of tasks: pure
    "provisioner.live_board": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # the dashboard's session and CSRF rules: pure, below the middleware that applies them
    "provisioner.server.sessions": (
        "provisioner.engine",
        "provisioner.store",
        "provisioner.server.auth",
        "provisioner.server.dashboard_api",
    ),
    # side by side: none of them reaches up to the engine or the server, or across
    "provisioner.templating": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.images",
    ),
    "provisioner.store": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.backends",
        "provisioner.templating",
        "provisioner.images",
    ),
    "provisioner.images": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
        "provisioner.templating",
    ),
    "provisioner.backends": ("provisioner.engine", "provisioner.server", "provisioner.templating"),
    "provisioner.engine": ("provisioner.server",),
    # the bridge runs inside the workspace from a zipapp: it has only itself
    "provisioner.bridge.runtime": ("provisioner.engine", "provisioner.server", "provisioner.store"),
    # the CLI is a client of the HTTP API
    "cli": (
        "provisioner.engine",
        "provisioner.server",
        "provisioner.store",
        "provisioner.backends",
    ),
}

# Exceptions, each with its reason
ALLOWED = {
    # `dockyard server` runs the server in the foreground (imported inside that command)
    ("cli.main", "provisioner.server.main"),
    ("cli.main", "provisioner.server.main.run_server"),
}


def _modules() -> dict[str, set[str]]:
    """Every module of provisioner/ and cli/ with the provisioner/cli modules it imports."""
    found: dict[str, set[str]] = {}
    for package in ("provisioner", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(p for p in parts if p != "__init__")
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
                    imported.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names)
            found[name] = {i for i in imported if i.split(".")[0] in ("provisioner", "cli")}
    return found


def _under(name: str, prefix: str) -> bool:
    return (
        name == prefix
        or name.startswith(prefix.rstrip(".") + ".")
        or (prefix.endswith(".") and name.startswith(prefix))
    )


def test_no_layer_imports_one_above_or_beside_it() -> None:
    modules = _modules()
    assert len(modules) > 50
    broken = [
        f"{name} imports {imported}"
        for name, imports in sorted(modules.items())
        for prefix, banned in FORBIDDEN.items()
        if _under(name, prefix)
        for imported in sorted(imports)
        if any(_under(imported, b) for b in banned)
        and not _under(imported, prefix)
        and (name, imported) not in ALLOWED
    ]
    assert not broken, "\n".join(broken)


def test_the_bridge_runtime_imports_only_itself() -> None:
    # it is shipped alone as a zipapp into the workspace
    modules = _modules()
    outside = [
        f"{name} imports {imported}"
        for name, imports in modules.items()
        if _under(name, "provisioner.bridge.runtime")
        for imported in imports
        if not _under(imported, "provisioner.bridge.runtime")
    ]
    assert not outside, "\n".join(outside)


def test_no_engine_helper_calls_back_into_the_engine() -> None:
    # each takes the port it needs (engine/ports.py), so engine.py is used by nobody below it
    modules = _modules()
    users = {
        name
        for name, imports in modules.items()
        if _under(name, "provisioner.engine")
        and name != "provisioner.engine.engine"
        and any(_under(i, "provisioner.engine.engine") for i in imports)
    }
    assert not users, f"engine helpers importing engine.py: {sorted(users)}"
