"""What each engine helper may use of the engine: one small Protocol per helper.

The helpers (admission, warm pools, provisioning, following a bridge) used to take the
whole Engine and reach into it; now each names the few parts and callbacks it needs, and
none imports engine.py. The Engine satisfies every port; a test can hand a helper
anything that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from provisioner.backends.base import Backend
from provisioner.engine.secrets import SecretStore
from provisioner.lifecycle import ErrorClass
from provisioner.model import Task
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog

if TYPE_CHECKING:
    from provisioner.bridge.client import BridgeClient
    from provisioner.engine.admission import Admissions
    from provisioner.engine.follower import Follower
    from provisioner.engine.mcp_relay import McpCall
    from provisioner.engine.workspace import BridgeBundler


class AdmissionPort(Protocol):
    """What starting waiting tasks needs: the store, who we are, a nudge, and the acts
    on other tasks it takes (removing a warm member, preempting an idle task)."""

    store: Store
    worker_id: str

    def wake(self) -> None:
        """Run a reconcile pass soon."""

    def delete(self, ref: str, *, actor: str = ...) -> Task:
        """Remove a task and its workspace."""

    def pause(
        self, ref: str, *, actor: str = ..., reason: str = ..., expect_idle: bool = ...
    ) -> Task:
        """Stop a task's workspace, keeping its disk (an interrupt's preemption)."""


class RetryPort(Protocol):
    """What retrying tasks needs: the store, and a nudge for admission."""

    store: Store

    def wake(self) -> None:
        """Run a reconcile pass soon."""


class PoolsPort(AdmissionPort, Protocol):
    """What keeping warm workspaces needs, beyond admission's parts."""

    backend: Backend
    catalog: Catalog
    secrets: SecretStore
    owner: str  # who owns members until a claim


class RoutingPort(Protocol):
    """What routing tasks to targets needs: the config's targets (on admissions), and
    what rendering a task's template takes."""

    store: Store
    catalog: Catalog
    secrets: SecretStore
    admissions: Admissions

    def wake(self) -> None:
        """Run a reconcile pass soon."""


class ProvisionPort(Protocol):
    """What running a task's startup phases needs."""

    store: Store
    backend: Backend
    catalog: Catalog
    secrets: SecretStore
    bundler: BridgeBundler

    def last_output(self, task_id: str) -> str:
        """The workspace's last lines, to end a failure message with."""


class FollowerPort(Protocol):
    """What following one task's bridge needs, and what it reports back."""

    store: Store
    backend: Backend
    # the server's /mcp for the in-workspace MCP relay (None: no relay, e.g. no server)
    mcp_call: McpCall | None

    def deliver_prompts(self, task: Task, client: BridgeClient) -> None:
        """Hand the task's prompts the bridge does not have yet to it, in order."""

    def prompt_failure_logged(self, task_id: str, prompt_id: str, reason: str) -> None:
        """Record, once, that the bridge refused a prompt."""

    def fail_active(self, task_id: str, message: str, klass: ErrorClass, *, stop: bool) -> None:
        """Fail an active task (unless a pause or delete holds it)."""

    def last_output(self, task_id: str) -> str:
        """The workspace's last lines, to end a failure message with."""

    def workspace_died(self, task_id: str) -> None:
        """The workspace stopped by itself: decide what becomes of the task."""

    def follower_done(self, follower: Follower) -> None:
        """The follower ended."""

    def apply_report(self, task_id: str, report: Mapping[str, Any]) -> bool:
        """Apply a report the task's agent made (`dockyard-task`): {"id", "kind",
        ...fields}; at most once per id; True when it changed the task. A `complete`
        ends the task and stops its workspace."""
