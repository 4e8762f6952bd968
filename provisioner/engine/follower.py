"""Following one active task's bridge: logs into the store, working/idle into the task."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from provisioner import metrics
from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.bridge.runtime.task_command import COMPLETE, ReportError, check_report
from provisioner.bridge.runtime.wire import (
    EXITED,
    IDLE,
    OUTPUT,
    SETUP_FAILED,
    SOURCE_AGENT,
    SOURCE_SCREEN,
    STOPPING,
    WORKING,
    DockyardStatus,
    LogEntry,
    LogReply,
    reply_status,
)
from provisioner.engine.mcp_relay import McpRelay
from provisioner.errors import BackendUnavailable, TaskConflict, TaskNotFound
from provisioner.lifecycle import ErrorClass, State, Status
from provisioner.logcontext import task_context
from provisioner.model import Task, utcnow
from provisioner.prompts import FINISHED

if TYPE_CHECKING:
    from provisioner.engine.ports import FollowerPort

log = logging.getLogger(__name__)

POLL_WAIT_S = 10.0
FETCH_LIMIT = 10000  # a flood comes over in a few large batches, not many small ones
_REPORT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def report_for_engine(item: object) -> dict[str, Any] | None:
    """A report as the bridge handed it ({"seq", "id", "time", "kind", ...fields}) as
    Engine.apply_report takes it ({"id", "kind", ...fields}), checked again here: the
    bridge runs in the workspace, as trusted as its agent. None when it is not a report."""
    if not isinstance(item, dict):
        return None
    report_id = item.get("id")
    if not isinstance(report_id, str) or not _REPORT_ID.match(report_id):
        return None
    fields = {k: v for k, v in item.items() if k not in ("seq", "id", "time")}
    try:
        return {"id": report_id, **check_report(fields)}
    except ReportError:
        return None


def message_from(entries: Sequence[LogEntry], previous: str) -> str:
    """The agent's latest meaningful output line: the task's status message.

    What the agent said through its hooks (source "agent") wins over any other line of the
    batch. Lines cut from the screen of an agent whose hooks speak for it (source "screen")
    are a TUI's chrome ("(shift+tab to cycle)"): they never make the message, else the
    redraw after a reply would replace it.
    """
    lines = [
        (entry.get("source"), text)
        for entry in entries
        if entry.get("type") == OUTPUT
        and entry.get("source") != SOURCE_SCREEN
        and (text := str(entry.get("content", "")).strip())
        and text not in (">",)
    ]
    said = [text for source, text in lines if source == SOURCE_AGENT]
    if said:
        return said[-1][:200]
    return lines[-1][1][:200] if lines else previous


def _counted(value: object) -> int:
    return value if isinstance(value, int) else 0


def exit_message(code: object, status: DockyardStatus, *, oom_killed: bool = False) -> str:
    """Why the agent stopped, from its exit code and the limits its cgroup enforced."""
    if _counted(status.get("oom_kills")) or oom_killed:
        return (
            f"agent was OOM-killed (exit code {code}): it needs more memory than the "
            "template's limit; raise the memory parameter"
        )
    refused = _counted(status.get("pids_limit_hits"))
    if refused:
        return (
            f"agent exited with code {code} after hitting the workspace's process limit "
            f"({refused} process starts refused); raise resources.pids in the template"
        )
    return f"agent exited with code {code}"


# what applying a reply's reports did (Follower._apply_reports)
CHANGED, ENDED = 1, 2


@dataclass(frozen=True)
class Step:
    """What one bridge reply means for the task (decide() says; the follower acts)."""

    kind: Literal["setup_failed", "exited", "update", "none"]
    exit_code: object = None
    state: str = ""
    message: str = ""
    reason: str = ""


def decide(
    bridge_state: str,
    status: DockyardStatus,
    entries: Sequence[LogEntry],
    prompts_untaken: bool,
    task_state: str | None,
    task_message: str,
) -> Step:
    """The task's next step from the bridge's reply (pure: no I/O)."""
    if bridge_state == SETUP_FAILED:
        return Step("setup_failed", exit_code=status.get("exit_code"))
    if bridge_state == EXITED:
        # drain everything the agent printed before judging its exit
        return Step("none") if entries else Step("exited", exit_code=status.get("exit_code"))
    if bridge_state == STOPPING:
        return Step("none")  # someone is stopping the workspace; its end will show itself
    if task_state == State.INPUT_REQUIRED.value:
        return Step("none")  # the agent asked a question: it waits for the next prompt
    # Idle only once the agent has taken every prompt sent to it.
    idle = bridge_state == IDLE and not prompts_untaken
    state = State.IDLE.value if idle else State.WORKING.value
    message = message_from(entries, task_message)
    if state == task_state and message == task_message:
        return Step("none")
    # the bridge says why when the agent's hooks decide ("hook stop")
    reason = status.get("state_reason") if state == bridge_state else ""
    return Step("update", state=state, message=message, reason=str(reason or ""))


class _Poll(threading.Thread):
    """A bridge long-poll in its own thread, so the follower can act while it waits.

    Two uses: in a flood, the next page crosses the network (and the bridge prepares it)
    while the follower stores this one; and a prompt sent meanwhile is handed over at
    once (the bridge then answers the poll, its prompts having moved).
    """

    def __init__(
        self,
        call: Callable[[], LogReply],
        name: str,
        done: threading.Event | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._call = call
        self._reply: LogReply | None = None
        self._error: BaseException | None = None
        self.finished = threading.Event()
        self._done = done  # also set when the reply is in: the follower's wake-up
        self.start()

    def run(self) -> None:
        try:
            self._reply = self._call()
        except BaseException as exc:  # raised again in the follower's thread
            self._error = exc
        finally:
            self.finished.set()
            if self._done is not None:
                self._done.set()

    def result(self) -> LogReply:
        """The reply, or the poll's exception raised here."""
        self.join()
        if self._error is not None:
            raise self._error
        assert self._reply is not None
        return self._reply


class Follower(threading.Thread):
    """One thread per active task; ends when the task stops being active.

    It is the one that hands the task's prompts to its bridge: the API stores a prompt
    and nudges the follower, which hands it over at once, even in the middle of a long
    poll. One place delivers, in the order sent, through one client.
    """

    def __init__(self, engine: FollowerPort, task_id: str, endpoint: str | None = None) -> None:
        """`endpoint`: the bridge's address as the provisioner just reached it: the first
        client goes there without asking the backend (a stale one fails its poll, and the
        backend is asked then)."""
        super().__init__(name=f"follow-{task_id[:8]}", daemon=True)
        self.engine = engine
        self.task_id = task_id
        self._endpoint = endpoint
        self.stopping = threading.Event()
        self._nudged = threading.Event()  # a prompt was stored: hand it over
        self._wake = threading.Event()  # a nudge, or the poll in flight has its reply
        # the bridge's seq of the last report of the agent applied (read from the store)
        self.report_seq = 0

    def stop(self) -> None:
        """Ask the thread to end after its current poll."""
        self.stopping.set()

    def nudge(self) -> None:
        """A prompt was stored for the task: hand it to the bridge now."""
        self._nudged.set()
        self._wake.set()

    def run(self) -> None:
        ended = threading.Event()
        # an engine without a server (a test's stand-in too) relays nothing
        call = getattr(self.engine, "mcp_call", None)
        if call is not None:
            # the agent's MCP messages are answered while this follower follows
            alive = lambda: not (ended.is_set() or self.stopping.is_set())  # noqa: E731
            McpRelay(self.engine, self.task_id, call, alive, self._endpoint).start()
        with task_context(self.task_id):  # its log lines carry the task's id
            try:
                self._follow()
            except (TaskNotFound, TaskConflict):
                pass  # deleted or moved on by someone else: nothing left to follow
            except Exception:
                log.exception("follower of task %s crashed", self.task_id)
            finally:
                ended.set()
                self.engine.follower_done(self)

    def _client(self) -> BridgeClient | None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            observed = self.engine.backend.observe(self.task_id)
            if not observed.running or not observed.endpoint:
                return None
            endpoint = observed.endpoint
        task = self.engine.store.get(self.task_id)
        return BridgeClient(endpoint, task.bridge_token, timeout=POLL_WAIT_S + 5)

    def _follow(self) -> None:
        store = self.engine.store
        last_seq = store.last_seq(self.task_id)
        self.report_seq = store.report_seq(self.task_id)
        client: BridgeClient | None = None
        bridge_state = ""
        prompts_version = 0  # the bridge's prompt counter last seen: it answers on a change
        failures = 0
        ahead: _Poll | None = None  # the next poll, sent before the last reply was stored
        while not self.stopping.is_set():
            task = store.get(self.task_id)
            if task.status != Status.ACTIVE:
                return
            if client is None:
                try:
                    client = self._client()
                except BackendUnavailable:
                    time.sleep(1.0)  # Docker is away (restarting?): the truth can wait
                    continue
                if client is None:
                    self._workspace_died()
                    return
            self._hand_over(task, client)
            try:
                if ahead is None:
                    ahead = self._poll(client, last_seq, bridge_state, prompts_version)
                # sent with the very arguments this iteration would use; taken off first,
                # so a poll that failed is not asked for its answer again
                poll, ahead = ahead, None
                reply = self._await(poll, task, client)
                prompts_version = int(reply.get("prompts_version", prompts_version))
                failures = 0
            except (BridgeUnreachable, BridgeError) as exc:
                failures += 1
                kind = "unreachable" if isinstance(exc, BridgeUnreachable) else "error"
                metrics.BRIDGE_ERRORS.labels(kind=kind).inc()
                client.close()
                client = None
                if self.stopping.is_set():
                    return
                try:
                    observed = self.engine.backend.observe(self.task_id)
                except BackendUnavailable:
                    time.sleep(1.0)
                    continue
                if not observed.running and not observed.restarting:
                    self._workspace_died()
                    return
                if failures in (3, 30):
                    log.warning("bridge of task %s unreachable: %s", self.task_id, exc)
                time.sleep(min(0.2 * failures, 2.0))
                continue
            if self.stopping.is_set():
                return  # a pause or delete is stopping the workspace: its exit is expected
            entries = reply.get("entries", [])
            status = reply_status(reply)
            bridge_state = str(status.get("state", ""))
            if entries:
                last_seq = max(int(e["seq"]) for e in entries)
                if bridge_state == WORKING:  # more is likely on its way: ask for it now
                    ahead = self._poll(client, last_seq, bridge_state, prompts_version)
                store.append_logs(self.task_id, entries)
                lag = metrics.seconds_between(entries[-1].get("time"), utcnow())
                if lag is not None:
                    metrics.FOLLOWER_LAG.observe(lag)
            # Delivery states first: a prompt the agent took just before it exited is taken.
            untaken = [p for p in store.prompts(self.task_id) if p["state"] not in FINISHED]
            if untaken:
                reported = reply.get("prompts")
                known = {p.get("id") for p in reported or []}
                if reported is None or any(p["id"] not in known for p in untaken):
                    reported = client.prompts()  # an older bridge, or a long queue
                for prompt_id, reason in store.sync_prompts(self.task_id, reported):
                    self.engine.prompt_failure_logged(self.task_id, prompt_id, reason)
                untaken = [p for p in store.prompts(self.task_id) if p["state"] not in FINISHED]
            applied = self._apply_reports(reply)
            if applied:  # the task changed (or ended): judge the reply against it as it is
                task = store.get(self.task_id)
                if applied == ENDED or task.status != Status.ACTIVE:
                    return
            step = decide(bridge_state, status, entries, bool(untaken), task.state, task.message)
            if step.kind == "setup_failed":
                self.engine.fail_active(
                    self.task_id,
                    f"setup script failed (exit code {step.exit_code})",
                    ErrorClass.PERMANENT,
                    stop=False,
                )
                return
            if step.kind == "exited":
                self._agent_exited(step.exit_code, status)
                return
            if step.kind == "update":
                store.update(
                    self.task_id,
                    Status.ACTIVE,
                    actor="bridge",
                    reason=step.reason,
                    state=step.state,
                    message=step.message,
                )
        if client is not None:
            client.close()

    def _hand_over(self, task: Task, client: BridgeClient) -> None:
        """Hand the bridge every prompt it does not have yet (the engine says how)."""
        self._nudged.clear()  # before: a prompt stored from here on nudges again
        try:
            self.engine.deliver_prompts(task, client)
        except BridgeError as exc:
            # e.g. 409: the agent has exited; the poll shows why. Keep it queued.
            log.warning("could not hand a prompt to task %s: %s", self.task_id, exc)
        except BridgeUnreachable:
            pass  # the poll sees it too and handles it

    def _poll(self, client: BridgeClient, after: int, state: str, prompts_version: int) -> _Poll:
        """Send the next poll; its reply wakes the follower. The first poll learns the
        state; once the agent has exited nothing will change: both are answered at once
        rather than long-polled."""
        wait = 0.0 if state in ("", EXITED) else POLL_WAIT_S

        def call() -> LogReply:
            return client.log(
                after=after,
                wait=wait,
                state=state or None,
                limit=FETCH_LIMIT,
                prompts_version=prompts_version,
                reports_after=self.report_seq,
            )

        return _Poll(call, name=f"{self.name}-poll", done=self._wake)

    def _await(self, poll: _Poll, task: Task, client: BridgeClient) -> LogReply:
        """The poll's reply; prompts stored meanwhile are handed over as they come."""
        while not poll.finished.is_set():
            self._wake.wait()
            self._wake.clear()  # then look at why: a set from here on is seen next time
            if self._nudged.is_set():
                self._hand_over(task, client)
        return poll.result()

    def _apply_reports(self, reply: LogReply) -> int:
        """Apply the agent's reports in the reply (`dockyard-task`), oldest first, each once.

        0: none changed the task; CHANGED: one did; ENDED: a `complete` was applied (the
        engine stopped the workspace: this follower is done). The cursor goes into the
        store after each, so a restarted follower reads on from there.
        """
        reports = reply.get("reports")
        if not isinstance(reports, list):
            return 0  # a bridge older than reports, or not asked
        newest = reply.get("reports_last_seq")
        if isinstance(newest, int) and newest < self.report_seq:
            # the bridge numbers from scratch (its state dir was lost): read it all again;
            # ids keep a report that was applied from being applied twice
            log.warning(
                "task %s: the bridge's reports start afresh; reading them again", self.task_id
            )
            self.report_seq = 0
            self.engine.store.set_report_seq(self.task_id, 0)
            return 0
        result = 0
        for item in reports:
            seq = item.get("seq") if isinstance(item, dict) else None
            if not isinstance(seq, int) or isinstance(seq, bool) or seq <= self.report_seq:
                continue
            report = report_for_engine(item)
            if report is None:
                log.warning(
                    "task %s: report %s from the bridge is not a report; skipped", self.task_id, seq
                )
            elif self.engine.apply_report(self.task_id, report):
                result = CHANGED
            self.report_seq = seq
            self.engine.store.set_report_seq(self.task_id, seq)
            if report is not None and report["kind"] == COMPLETE:
                return ENDED
        return result

    def _agent_exited(self, code: object, status: DockyardStatus) -> None:
        observed = self.engine.backend.observe(self.task_id)
        message = exit_message(code, status, oom_killed=observed.oom_killed)
        message += self.engine.last_output(self.task_id)
        self.engine.fail_active(self.task_id, message, ErrorClass.PERMANENT, stop=True)

    def _workspace_died(self) -> None:
        self.engine.workspace_died(self.task_id)
