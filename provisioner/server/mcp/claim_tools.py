"""The MCP tools of a claim's life after claim_task: renewing its lease, starting it, and
accepting or rejecting an offer (Agent Swarm's offer mode), as the REST routes of
claims_api.py do; and Agent Swarm's single `task-action` tool over them.

Claims are a user's or a worker's: a task's own token is refused (it acts on its task
and the tasks it creates only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from provisioner.auth.tokens import Principal
from provisioner.prompts import check_prompt, check_strings, shorten
from provisioner.server.mcp import args as parse
from provisioner.server.mcp.actions import TaskActions, readable
from provisioner.server.mcp.caller import current_caller
from provisioner.server.mcp.tools import WRITE, TaskRef, Title, arguments

Session = Annotated[str, Field(description="Your session's name: the one holding the claim")]
Lease = Annotated[
    float | None,
    Field(description="Seconds the claim lasts unless renewed (5-86400, default 300)"),
]
Reason = Annotated[str | None, Field(description="Why, for the task's history (up to 512)")]
MAX_REASON = 512
# Agent Swarm's task-action: action -> the fields it takes (besides action)
SWARM_ACTIONS: dict[str, tuple[str, ...]] = {
    "create": ("task", "title", "template", "preset", "target", "priority", "tags"),
    "claim": ("taskId", "sessionId", "lease_s"),
    "renew": ("taskId", "sessionId", "lease_s"),
    "start": ("taskId", "sessionId"),
    "accept": ("taskId", "sessionId", "lease_s"),
    "reject": ("taskId", "reason"),
}


class ClaimActions:
    """What each claim tool does, for one caller (the engine checks the claim itself)."""

    def __init__(self, actions: TaskActions) -> None:
        self.actions = actions
        self.engine = actions.engine

    def _shown(self, task: Any) -> dict[str, Any]:
        return {"success": True, **parse.task_summary(task)}

    def _checked(self, who: Principal, tool: str, ref: object) -> str:
        TaskActions.not_for_a_task(who, tool)
        check_strings(ref, "taskId")
        return str(ref)

    def renew(self, who: Principal, ref: str, session: object, lease: object) -> dict[str, Any]:
        ref = self._checked(who, "renew_claim", ref)
        task = self.engine.renew_claim(
            ref, user=who.user, session_id=session, lease_s=lease, admin=who.is_admin
        )
        return self._shown(task)

    def start(self, who: Principal, ref: str, session: object) -> dict[str, Any]:
        ref = self._checked(who, "start_task", ref)
        task = self.engine.start_claimed(ref, user=who.user, session_id=session, admin=who.is_admin)
        return self._shown(task)

    def accept(self, who: Principal, ref: str, session: object, lease: object) -> dict[str, Any]:
        ref = self._checked(who, "accept_task", ref)
        task = self.engine.accept_offer(
            ref, user=who.user, session_id=session, lease_s=lease, admin=who.is_admin
        )
        return self._shown(task)

    def reject(self, who: Principal, ref: str, reason: object) -> dict[str, Any]:
        ref = self._checked(who, "reject_task", ref)
        if reason is not None and not isinstance(reason, str):
            raise ToolError("reason is text: why the offer is declined")
        if reason is not None:
            # it goes into the task's history: one plain line or a few, never escapes
            reason = check_prompt(reason, "the reason", limit=MAX_REASON)
        task = self.engine.reject_offer(ref, user=who.user, reason=reason, admin=who.is_admin)
        return self._shown(task)

    def swarm(self, who: Principal, given: Mapping[str, Any]) -> dict[str, Any]:
        """task-action: Agent Swarm's one tool (create, claim, renew, start, accept,
        reject); a field the action does not take is refused by name."""
        action = given.get("action")
        if action not in SWARM_ACTIONS:
            shown = shorten(str(action), 40)
            raise ToolError(f"Unknown action {shown!r}: use one of {', '.join(SWARM_ACTIONS)}")
        fields = {k: v for k, v in given.items() if k != "action" and v is not None}
        extra = sorted(set(fields) - set(SWARM_ACTIONS[action]))
        if extra:
            raise ToolError(
                f"action {action} does not take {', '.join(extra)}: it takes "
                f"{', '.join(SWARM_ACTIONS[action])}"
            )
        if action == "create":
            created = dict(fields)
            if "task" in created:
                created["prompt"] = created.pop("task")
            return self.actions.create(who, created)
        if "taskId" not in fields:
            raise ToolError(f"action {action} needs taskId: the task to {action}")
        ref = fields["taskId"]
        if action in ("claim", "renew", "start", "accept") and "sessionId" not in fields:
            raise ToolError(f"action {action} needs sessionId: your session's name")
        if action == "claim":
            return self.actions.claim(who, ref, fields["sessionId"], fields.get("lease_s"))
        if action == "renew":
            return self.renew(who, ref, fields["sessionId"], fields.get("lease_s"))
        if action == "start":
            return self.start(who, ref, fields["sessionId"])
        if action == "accept":
            return self.accept(who, ref, fields["sessionId"], fields.get("lease_s"))
        return self.reject(who, ref, fields.get("reason"))


def add_claim_tools(server: MCPServer, task_actions: TaskActions) -> None:
    """Register the claim tools on `server`."""
    actions = ClaimActions(task_actions)

    @server.tool(annotations=WRITE)
    def renew_claim(taskId: TaskRef, sessionId: Session, lease_s: Lease = None) -> dict[str, Any]:
        """Extend the lease of a claim your session holds (its heartbeat): renew before
        claim_until, or the task returns to the queue with the attempt counted."""
        with readable():
            return actions.renew(current_caller(), taskId, sessionId, lease_s)

    @server.tool(annotations=WRITE)
    def start_task(taskId: TaskRef, sessionId: Session) -> dict[str, Any]:
        """Mark a task your session claimed as started (claimed -> active, working).
        Optional: a claimed task may be completed at once with complete_task."""
        with readable():
            return actions.start(current_caller(), taskId, sessionId)

    @server.tool(annotations=WRITE)
    def accept_task(taskId: TaskRef, sessionId: Session, lease_s: Lease = None) -> dict[str, Any]:
        """Accept a task offered to one of your workers: it becomes claimed by your
        session, under a lease (Agent Swarm's offer mode). Then start or complete it."""
        with readable():
            return actions.accept(current_caller(), taskId, sessionId, lease_s)

    @server.tool(annotations=WRITE)
    def reject_task(taskId: TaskRef, reason: Reason = None) -> dict[str, Any]:
        """Decline a task offered to one of your workers: it returns to the pool for
        anyone to claim; the reason goes into its history."""
        with readable():
            return actions.reject(current_caller(), taskId, reason)

    @server.tool(name="task-action", annotations=WRITE)
    def task_action(
        action: Annotated[str, Field(description="create, claim, renew, start, accept or reject")],
        taskId: Annotated[str | None, Field(description="The task (all but create)")] = None,
        sessionId: Annotated[
            str | None, Field(description="claim, renew, start, accept: your session")
        ] = None,
        lease_s: Lease = None,
        reason: Reason = None,
        task: Annotated[str | None, Field(description="create: what to do (the prompt)")] = None,
        title: Title = None,
        template: Annotated[str | None, Field(description="create: the template")] = None,
        preset: Annotated[str | None, Field(description="create: a preset")] = None,
        target: Annotated[str | None, Field(description="create: a named target")] = None,
        priority: Annotated[
            int | str | None, Field(description="create: 0-100 or low, normal, high")
        ] = None,
        tags: Annotated[list[str] | None, Field(description="create: labels")] = None,
    ) -> dict[str, Any]:
        """Agent Swarm's one tool for the task pool: create a task, claim one, renew or
        start your claim, accept or reject an offer made to your worker."""
        given = arguments(locals())
        with readable():
            return actions.swarm(current_caller(), given)
