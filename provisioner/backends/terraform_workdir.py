"""A task's Terraform working directory: what goes in it, and reading what Terraform left.

One directory per task, `$DOCKYARD_HOME/terraform/<task-id>/`, holds the rendered
Terraform files, `terraform.tfvars.json` (the task's parameters, the template's extra
variables and Dockyard's own), the bridge files to copy into the workspace, and
Terraform's local state. Everything a later start, stop or destroy needs is in it, so it
survives server restarts. Building the variables and parsing state are pure functions.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from provisioner.backends.base import BRIDGE_DIR, BRIDGE_PORT, BridgeBundle
from provisioner.errors import BackendError
from provisioner.images import recipes
from provisioner.spec import WorkspaceSpec

TFVARS_FILE = "terraform.tfvars.json"
STATE_FILE = "terraform.tfstate"
PLAN_FILE = "tfplan"
BRIDGE_SUBDIR = "bridge"
RENDERED_SUFFIXES = (".tf", ".tf.json")

# Outputs the template's Terraform must declare.
OUTPUT_ENDPOINT = "bridge_endpoint"
OUTPUT_CONTAINER = "container"

_TASK_ID = re.compile(r"[0-9a-f][0-9a-f-]{7,63}")
_BOX = "╷│╵"  # Terraform frames its diagnostics with these, even with -no-color


def task_workdir(root: Path, task_id: str) -> Path:
    """The working directory of one task (its id is checked: it becomes a path)."""
    if not _TASK_ID.fullmatch(task_id):
        raise BackendError(f"not a task id: {task_id!r}")
    return root / task_id


def is_task_dir(path: Path) -> bool:
    """True for a directory named like a task id."""
    return path.is_dir() and bool(_TASK_ID.fullmatch(path.name))


def dockyard_variables(
    *,
    task_id: str,
    task_name: str,
    instance: str,
    spec: WorkspaceSpec,
    image: str,
    bridge_dir: Path,
    bridge_port: int,
    running: bool,
) -> dict[str, Any]:
    """The variables Dockyard itself gives every Terraform template."""
    labels = {
        "dockyard.managed": "true",
        "dockyard.instance": instance,
        "dockyard.task": task_id,
        "dockyard.template": spec.template,
    }
    return {
        "task_id": task_id,
        "task_name": task_name,
        "instance": instance,
        "template": spec.template,
        "labels": labels,
        "image": image,
        "bridge_dir": str(bridge_dir),
        "bridge_port": bridge_port,
        "bridge_container_port": BRIDGE_PORT,
        "bridge_container_dir": BRIDGE_DIR,
        "running": running,
        "workdir": spec.workdir,
        "agent_user": f"{recipes.AGENT_UID}:{recipes.AGENT_UID}",
        "agent_home": recipes.AGENT_HOME,
        "memory": spec.memory,
        "cpus": spec.cpus,
        "pids": spec.pids,
        "cap_add": list(spec.cap_add),
        "restart": spec.lifecycle.restart,
    }


def terraform_variables(spec: WorkspaceSpec, dockyard: dict[str, Any]) -> dict[str, Any]:
    """terraform.tfvars.json: parameters, then the template's variables, then Dockyard's."""
    extra = spec.terraform.variables if spec.terraform else {}
    return {**spec.parameters, **extra, **dockyard}


def bridge_command() -> list[str]:
    """The workspace's command: the bridge, from the files copied in before start."""
    return ["python3", f"{BRIDGE_DIR}/bridge.pyz", "--config", f"{BRIDGE_DIR}/bridge.json"]


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def write_workdir(workdir: Path, spec: WorkspaceSpec, variables: dict[str, Any]) -> None:
    """Write the rendered Terraform files and the variables (replacing older renderings)."""
    if spec.terraform is None:
        raise BackendError(f"template {spec.template!r} has no terraform section")
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    targets = {rel: rendered_path(workdir, rel) for rel in spec.terraform.files}
    for old in workdir.iterdir():
        if old.is_file() and old.name.endswith(RENDERED_SUFFIXES):
            old.unlink()
    for rel, text in spec.terraform.files.items():
        _write(targets[rel], text.encode(), 0o600)
    write_variables(workdir, variables)


def rendered_path(workdir: Path, rel: str) -> Path:
    """Where a rendered file goes: inside the work dir and none of Dockyard's own files.
    (Rendering already keeps names inside the template; this holds even if it did not.)"""
    # main.tf.j2 says "Jinja" to editors; Terraform only reads main.tf.
    name = rel.removesuffix(".j2")
    base = workdir.resolve()
    target = (workdir / name).resolve()
    own = {TFVARS_FILE, STATE_FILE, PLAN_FILE, STATE_FILE + ".backup", BRIDGE_SUBDIR, ".terraform"}
    if not target.is_relative_to(base) or target == base:
        raise BackendError(f"Terraform file {rel[:80]!r} would be written outside the task's dir")
    if target.relative_to(base).parts[0] in own:
        raise BackendError(f"Terraform file {rel[:80]!r} would replace Dockyard's own {name!r}")
    return target


def write_variables(workdir: Path, variables: dict[str, Any]) -> None:
    """terraform.tfvars.json (private: it carries secret parameters too)."""
    _write(workdir / TFVARS_FILE, json.dumps(variables, indent=1).encode(), 0o600)


def read_variables(workdir: Path) -> dict[str, Any]:
    """The variables last written for the task; empty when there are none."""
    try:
        data = json.loads((workdir / TFVARS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_bridge(workdir: Path, bridge: BridgeBundle) -> Path:
    """The bridge files, ready for `docker cp` (or a provider's upload); returns their dir."""
    target = workdir / BRIDGE_SUBDIR
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write(target / "bridge.pyz", bridge.zipapp, 0o644)
    _write(target / "bridge.json", bridge.config_json, 0o600)
    _write(target / "token", bridge.token.encode(), 0o600)
    return target


def parse_outputs(text: str) -> dict[str, Any]:
    """Output values from a state file or from `terraform output -json` (name -> value)."""
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    is_state = isinstance(data.get("version"), int)  # a state file, not `output -json`
    outputs = (data.get("outputs") or {}) if is_state else data
    return {name: item.get("value") for name, item in outputs.items() if isinstance(item, dict)}


def has_resources(text: str) -> bool:
    """True when a state file records at least one resource instance."""
    try:
        data = json.loads(text)
    except ValueError:
        return True  # unreadable: assume there is something to destroy
    resources = data.get("resources") if isinstance(data, dict) else None
    return any(r.get("instances") for r in resources or [] if isinstance(r, dict))


def error_summary(stderr: str, lines: int = 12) -> str:
    """Terraform's error, unframed: from its first `Error:` line, at most `lines` lines."""
    clean = [line.strip().lstrip(_BOX).strip() for line in stderr.splitlines()]
    clean = [line for line in clean if line]
    first = next((i for i, line in enumerate(clean) if line.startswith("Error:")), None)
    if first is not None:
        clean = clean[first:]
    return "\n".join(clean[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
