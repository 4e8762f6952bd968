"""Provisioning one task: the startup phases, each timed and each with a time limit.

image -> create -> start -> setup -> agent. Every step is idempotent (an existing image,
container or running workspace is reused), so a provisioning cut short by a crash is
simply run again by whichever engine next holds the task's lease.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.bridge.runtime.wire import (
    EXITED,
    IDLE,
    SETUP,
    SETUP_FAILED,
    STARTING,
    WORKING,
    LogEntry,
    LogReply,
    reply_status,
)
from provisioner.engine.follower import message_from
from provisioner.engine.forks import copy_parent_disk
from provisioner.engine.workspace import spec_for
from provisioner.errors import BridgeFailure, PhaseTimeout, StartupFailure, TaskConflict
from provisioner.gitwork.parse import base_commit_in, clone_failure
from provisioner.lifecycle import Phase, State, Status
from provisioner.model import Task
from provisioner.spec import WorkspaceSpec

if TYPE_CHECKING:
    from provisioner.engine.ports import ProvisionPort

T = TypeVar("T")

PROGRESS_EVERY_S = 1.0
# waiting for a starting bridge: a refused connection is tried again after BRIDGE_RETRY_S
BRIDGE_RETRY_S = 0.005
# ... and after BRIDGE_SLOW_RETRY_S when it has no address yet or answered with an error
BRIDGE_SLOW_RETRY_S = 0.05
DOCKER_RECHECK_S = 0.25


class Provisioner:
    """Runs the startup phases of one task in the calling (pool) thread."""

    def __init__(self, engine: ProvisionPort, task_id: str) -> None:
        self.engine = engine
        self.store = engine.store
        self.backend = engine.backend
        self.task_id = task_id
        self._deadline = 0.0
        self._phase_name = ""
        # the bridge's address once it answered (None before, or when it did not)
        self.endpoint: str | None = None

    # phases ------------------------------------------------------------------
    def _enter(self, phase: Phase, message: str, limits: dict[str, Any]) -> None:
        if not self.store.update(
            self.task_id, Status.INITIALIZING, actor="engine", phase=phase.value, message=message
        ):
            raise TaskConflict("task left initializing")
        self._phase_name = phase.value
        self._limit = float(limits.get(phase.value, 600))
        self._deadline = time.monotonic() + self._limit

    def _timeout(self, what: str) -> PhaseTimeout:
        return PhaseTimeout(
            f"phase {self._phase_name} timed out after {self._limit:g}s: {what}; "
            "the workspace is left for inspection",
            phase=self._phase_name,
            hint="raise lifecycle.timeouts in the template if this phase needs longer",
        )

    def _bounded(self, fn: Callable[[], T], what: str) -> T:
        """Run a blocking step under the phase's deadline (the step may finish later)."""
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = fn()
            except BaseException as exc:
                result["error"] = exc

        worker = threading.Thread(  # in this thread's context: its lines name the task
            target=contextvars.copy_context().run,
            args=(target,),
            name=f"{self._phase_name}-{self.task_id[:8]}",
        )
        worker.daemon = True
        worker.start()
        worker.join(max(self._deadline - time.monotonic(), 0))
        if worker.is_alive():
            raise self._timeout(what)
        if "error" in result:
            raise result["error"]
        return result["value"]

    def _progress(self) -> Callable[[str], None]:
        """Build output goes to the task's logs; about once a second also to its message."""
        last = 0.0

        def report(line: str) -> None:
            nonlocal last
            self.store.system_log(self.task_id, line)
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                self.store.update(
                    self.task_id, Status.INITIALIZING, actor="engine", message=line[:200]
                )

        return report

    @property
    def current_phase(self) -> str:
        """The phase being run (or last run); empty before the first."""
        return self._phase_name

    # the run -------------------------------------------------------------------
    def run(self) -> None:
        """Take the task from wherever its provisioning stands to active."""
        task = self.store.get(self.task_id)
        if task.status != Status.INITIALIZING:
            return
        secrets = self.engine.secrets.load(task.id)
        spec = spec_for(self.engine.catalog, task, secrets)
        limits = dict(task.policy.get("timeouts") or spec.lifecycle.timeouts.model_dump())
        bundle = self.engine.bundler.bundle(task, spec, secret=bool(secrets))
        if not self.backend.observe(self.task_id).exists:
            self._enter(Phase.IMAGE, "preparing the image", limits)
            image = self._bounded(
                lambda: self.backend.ensure_image(spec, self._progress()), "building the image"
            )
            self._enter(Phase.CREATE, "creating the workspace", limits)
            if task.parent_id:
                self._bounded(
                    lambda: copy_parent_disk(self.store, self.backend, task, spec, image),
                    "copying the parent's disk",
                )
            self._bounded(
                lambda: self.backend.create(
                    self.task_id, task.name, spec, image, bundle, progress=self._progress()
                ),
                "creating the container",
            )
        self._enter(Phase.START, "starting the workspace", limits)
        self._bounded(
            lambda: self.backend.start(self.task_id, bundle, progress=self._progress()),
            "starting the container",
        )
        client = self._wait_for_bridge(task)
        self.endpoint = client.base_url  # the follower starts from it: no Docker call
        try:
            said = self._wait_for_agent(client, spec, limits)
        finally:
            client.close()
        self.store.transition(
            self.task_id,
            Status.INITIALIZING,
            Status.ACTIVE,
            actor="engine",
            reason="agent started",
            state=State.WORKING.value,
            # what the agent already said: the follower only sees what comes after
            message=message_from(said, "agent started"),
            error_class=None,
        )

    def _record_node(self, task: Task, node: str | None) -> None:
        """Record the node a cluster backend placed the workspace on (its disk is there,
        so every later start is too), once, with an event."""
        if node and node != task.node:
            self.store.record(
                self.task_id,
                "node",
                actor="engine",
                reason=f"the workspace and its disk are on node {node}",
                from_value=task.node,
                to_value=node,
                node=node,
            )

    def _died(self) -> BridgeFailure:
        cause = self.backend.observe(self.task_id).death_cause()
        return BridgeFailure(
            f"workspace stopped while starting: {cause}" + self.engine.last_output(self.task_id)
        )

    def _wait_for_bridge(self, task: Task) -> BridgeClient:
        # The bridge binds its port first thing, so a connection made after that waits in
        # its backlog and is answered the moment it serves; before that it is refused, and
        # is tried again soon. Docker is asked again (is it still running? a new
        # address?) only every DOCKER_RECHECK_S, not on every refusal.
        last_error = "no address yet"
        client: BridgeClient | None = None
        checked = 0.0
        recorded = False
        try:
            while time.monotonic() < self._deadline:
                if client is None or time.monotonic() - checked >= DOCKER_RECHECK_S:
                    observed = self.backend.observe(self.task_id)
                    checked = time.monotonic()
                    if not recorded:  # where it started, from the first look
                        self._record_node(task, observed.node)
                        recorded = True
                    if not observed.running:
                        raise self._died()
                    endpoint = (observed.endpoint or "").rstrip("/")
                    if client is not None and client.base_url != endpoint:
                        client.close()
                        client = None
                    if client is None and endpoint:
                        # one client for all tries: making one costs more than a refused try
                        client = BridgeClient(endpoint, task.bridge_token, timeout=5)
                pause = BRIDGE_RETRY_S
                if client is None:
                    pause = BRIDGE_SLOW_RETRY_S  # no address yet: Docker is asked again
                else:
                    try:
                        client.status()
                        found, client = client, None
                        return found
                    except BridgeUnreachable as exc:  # not listening yet: soon, surely
                        last_error = str(exc)
                    except BridgeError as exc:  # it answered, with an error: not so soon
                        last_error = str(exc)
                        pause = BRIDGE_SLOW_RETRY_S
                time.sleep(pause)
        finally:
            if client is not None:
                client.close()
        raise self._timeout(f"the bridge did not answer ({last_error})")

    def _record_base_commit(self, entries: list[LogEntry]) -> None:
        """The commit the clone started the task branch from, as the setup printed it."""
        lines = [str(e.get("content", "")) for e in entries if e.get("source") == "setup"]
        base = base_commit_in(lines)
        if base is None:
            return
        if self.store.update(self.task_id, Status.INITIALIZING, actor="engine", base_commit=base):
            self.store.record(self.task_id, "repo", actor="engine", reason="cloned", to_value=base)

    def _wait_for_agent(
        self, client: BridgeClient, spec: WorkspaceSpec, limits: dict[str, Any]
    ) -> list[LogEntry]:
        """Follow setup then agent start through the bridge, storing their output live;
        the entries the agent printed once started."""
        after = self.store.last_seq(self.task_id)
        said: list[LogEntry] = []
        current = ""
        seen_state: str | None = None
        while True:
            try:
                # Passing the state seen last makes the bridge answer the moment it changes.
                reply: LogReply | None = client.log(after=after, wait=0.5, state=seen_state)
            except (BridgeUnreachable, BridgeError) as exc:
                if not self.backend.observe(self.task_id).running:
                    raise self._died() from exc
                time.sleep(0.1)
                reply = None
            entries = reply.get("entries", []) if reply is not None else []
            if entries:
                self.store.append_logs(self.task_id, entries)
                after = max(int(e["seq"]) for e in entries)
                self._record_base_commit(entries)
            status = reply_status(reply)
            state = status.get("state")
            seen_state = str(state) if state else None
            if state == SETUP_FAILED:
                self._phase_name = Phase.SETUP.value
                code = (status.get("setup") or {}).get("exit_code", status.get("exit_code"))
                clone = clone_failure(self.store.tail(self.task_id, 20))
                raise StartupFailure(
                    clone
                    or f"setup script failed with exit code {code}"
                    + self.engine.last_output(self.task_id),
                    phase=Phase.SETUP.value,
                )
            wanted = {SETUP: Phase.SETUP, STARTING: Phase.AGENT}.get(str(state))
            setup_state = (status.get("setup") or {}).get("state")
            if state == STARTING and spec.setup_script and setup_state not in ("done", None):
                wanted = Phase.SETUP  # the bridge has not begun the script yet: still setup
            if state in (WORKING, IDLE):
                wanted = Phase.AGENT
            if wanted is not None and wanted.value != current:
                current = wanted.value
                message = (
                    "running the setup script" if wanted == Phase.SETUP else ("starting the agent")
                )
                self._enter(wanted, message, limits)
            if current == Phase.AGENT.value:
                said.extend(entries)
            if state in (WORKING, IDLE):
                return said
            if state == EXITED:
                raise StartupFailure(
                    f"the agent exited with code {status.get('exit_code')} while starting"
                    + self.engine.last_output(self.task_id),
                    phase=Phase.AGENT.value,
                )
            if time.monotonic() >= self._deadline:
                what = (
                    "the setup script is still running"
                    if state == SETUP
                    else ("the agent never showed its input prompt")
                )
                raise self._timeout(what)
