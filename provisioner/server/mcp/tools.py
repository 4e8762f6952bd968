"""The MCP tools: CacheBash's task tools and ByteBrew's single manage_tasks, over
Dockyard's queue. Each tool only names its arguments for the agent and hands them to
TaskActions; the descriptions are written for the agent deciding which tool to call.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from provisioner.server.mcp.actions import TaskActions, readable
from provisioner.server.mcp.caller import current_caller

TaskRef = Annotated[
    str,
    Field(description="The task: its name (such as fix-login-1a2b), its id, or an id prefix"),
]
Priority = Annotated[
    int | str | None,
    Field(description="0-100, higher first, or low, normal, high (25, 50, 75); default normal"),
]
Completed = Annotated[str, Field(description="How it ended: SUCCESS, FAILED, SKIPPED or CANCELLED")]
ErrorCode = Annotated[str | None, Field(description="A short code for a failure")]
ErrorClass = Annotated[
    str | None,
    Field(description="TRANSIENT, PERMANENT, DEPENDENCY, POLICY, TIMEOUT or UNKNOWN"),
]
Output = Annotated[str | None, Field(description="The result in words (up to 64 KiB)")]
TokensIn = Annotated[int | None, Field(description="Input tokens spent (added to the task's)")]
TokensOut = Annotated[int | None, Field(description="Output tokens spent (added)")]
CostUsd = Annotated[float | None, Field(description="Dollars spent (added)")]
Model = Annotated[str | None, Field(description="The model that did the work")]
Title = Annotated[str | None, Field(description="A short title (one line)")]
Prompt = Annotated[
    str | None, Field(description="What the agent of the new task should do (up to 256 KiB)")
]
Instructions = Annotated[str | None, Field(description="CacheBash's name for `prompt`")]
Template = Annotated[
    str | None,
    Field(description="The template the task runs on, such as `scripted`; a target's if absent"),
]
Preset = Annotated[str | None, Field(description="A preset of the template; its default if absent")]
Target = Annotated[str | None, Field(description="A named target (route) of the server")]
Action = Annotated[
    str | None,
    Field(
        description="queue (default), interrupt, backlog (start when nothing else waits), "
        "parallel or sprint"
    ),
]
Tags = Annotated[list[str] | None, Field(description="Up to 20 short labels")]
DependsOn = Annotated[
    list[str] | None,
    Field(description="Tasks of yours (names or ids) that must complete before this one starts"),
]
Parent = Annotated[str | None, Field(description="A task of yours to fork: its disk and session")]
Epic = Annotated[str | None, Field(description="A name grouping tasks")]
StatusFilter = Annotated[
    str | None,
    Field(
        description="created (not started: backlog, pending), active (initializing or "
        "running), all (default), or Dockyard statuses (pending, active, paused, error, "
        "completed, failed, cancelled...); several separated by commas"
    ),
]
Limit = Annotated[int | None, Field(description="At most this many, newest first (1-200; 50)")]

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
ENDS = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)


def arguments(values: dict[str, Any]) -> dict[str, Any]:
    """A tool's arguments from its `locals()`, which also hold the closure's `actions`."""
    return {name: value for name, value in values.items() if name != "actions"}


def add_task_tools(server: MCPServer, actions: TaskActions) -> None:
    """Register every tool on `server`."""

    @server.tool(annotations=WRITE)
    def create_task(
        title: Title = None,
        prompt: Prompt = None,
        instructions: Instructions = None,
        template: Template = None,
        preset: Preset = None,
        target: Target = None,
        codebase: Annotated[
            str | None,
            Field(description="The codebase it works on: routes it to a target serving it"),
        ] = None,
        priority: Priority = None,
        action: Action = None,
        tags: Tags = None,
        depends_on: DependsOn = None,
        parent: Parent = None,
        epic: Epic = None,
        parameters: Annotated[
            dict[str, Any] | None, Field(description="Template parameter values")
        ] = None,
    ) -> dict[str, Any]:
        """Create a Dockyard task: a coding agent in its own workspace works on the prompt.

        Use it to hand work to another agent (fan out). The task starts when a workspace
        is free and its dependencies have completed; follow it with get_task and read its
        output there once it has ended. Returns the new task (taskId, name, status).
        """
        given = arguments(locals())
        with readable():
            return actions.create(current_caller(), given)

    @server.tool(annotations=READ)
    def get_tasks(
        status: StatusFilter = None,
        target: Target = None,
        tag: Annotated[str | None, Field(description="Only tasks with this tag")] = None,
        epic: Epic = None,
        limit: Limit = None,
        all_users: Annotated[
            bool, Field(description="Every user's tasks, not only yours (admins only)")
        ] = False,
    ) -> dict[str, Any]:
        """List your tasks, newest first, with their status, state, progress and outcome.

        Use it to find a task's name or to see what waits (status created) or runs
        (status active).
        """
        with readable():
            return actions.tasks(
                current_caller(),
                status=status,
                target=target,
                tag=tag,
                epic=epic,
                limit=limit,
                all_users=all_users,
            )

    @server.tool(annotations=READ)
    def get_task(taskId: TaskRef) -> dict[str, Any]:
        """One task in full: status (pending, active, completed...), state (working, idle,
        input_required), its question while it waits for an answer, progress, outcome,
        output, cost, and its prompt. Poll it to wait for a task you created."""
        with readable():
            return actions.get(current_caller(), taskId)

    @server.tool(annotations=READ)
    def get_task_logs(
        taskId: TaskRef,
        lines: Annotated[
            int | None, Field(description="How many entries (1-1000; 100): the last ones")
        ] = None,
        after: Annotated[
            int | None,
            Field(description="Read the entries after this id (a `last_id` you got) instead"),
        ] = None,
    ) -> dict[str, Any]:
        """A task's transcript: what its agent printed and was sent, oldest first.

        Without `after`, the last `lines` entries (`earlier`: older ones exist); with it,
        the entries after that id. Pass the answer's `last_id` as `after` to read on;
        `more` says entries after it were left out.
        """
        with readable():
            return actions.logs(current_caller(), taskId, lines, after)

    @server.tool(annotations=WRITE)
    def send_message(
        taskId: TaskRef,
        message: Annotated[str, Field(description="The follow-up prompt for the task's agent")],
    ) -> dict[str, Any]:
        """Send a follow-up prompt to a task's agent (it answers a question the task asks,
        too). It is queued and typed in once the agent is idle; a paused task resumes."""
        with readable():
            return actions.send(current_caller(), taskId, message)

    @server.tool(annotations=WRITE)
    def report_progress(
        taskId: TaskRef,
        note: Annotated[str, Field(description="What has been done so far (up to 2 KiB)")],
    ) -> dict[str, Any]:
        """Record a progress note on a task; the latest shows in get_task and get_tasks."""
        with readable():
            return actions.progress(current_caller(), taskId, note)

    @server.tool(annotations=WRITE)
    def request_input(
        taskId: TaskRef,
        question: Annotated[str, Field(description="What needs answering (up to 4 KiB)")],
    ) -> dict[str, Any]:
        """Ask for input on a running task: it shows state input_required and the question
        until an answer arrives (send_message, or `dockyard task send`)."""
        with readable():
            return actions.ask(current_caller(), taskId, question)

    @server.tool(annotations=ENDS)
    def complete_task(
        taskId: TaskRef,
        completed_status: Completed,
        output: Output = None,
        error_code: ErrorCode = None,
        error_class: ErrorClass = None,
        tokens_in: TokensIn = None,
        tokens_out: TokensOut = None,
        cost_usd: CostUsd = None,
        model: Model = None,
    ) -> dict[str, Any]:
        """End a task with an outcome: SUCCESS (completed), FAILED (failed; give
        error_class), SKIPPED or CANCELLED (cancelled). Its workspace stops, its logs stay.
        Tokens and cost are added to the task's totals."""
        fields = arguments(locals())
        del fields["taskId"]
        with readable():
            return actions.complete(current_caller(), taskId, fields)

    @server.tool(annotations=WRITE)
    def claim_task(
        taskId: TaskRef,
        sessionId: Annotated[
            str | None, Field(description="Your session's name: it holds the claim")
        ] = None,
        lease_s: Annotated[
            float | None,
            Field(description="Seconds the claim lasts unless renewed (5-86400, default 300)"),
        ] = None,
    ) -> dict[str, Any]:
        """Claim a queue-only task (one of a target whose tasks workers take): it becomes
        claimed by your session, under a lease; do the work, then complete_task. Of
        several sessions claiming at once exactly one wins; the others are told who holds
        it. A task waiting for its dependencies cannot be claimed yet."""
        with readable():
            return actions.claim(current_caller(), taskId, sessionId, lease_s)

    @server.tool(annotations=WRITE)
    def register_worker(
        name: Annotated[str, Field(description="The worker's name: lowercase, digits, dashes")],
        codebases: Annotated[
            list[str] | None,
            Field(description="Codebases it takes tasks for (`global` and `__pending__` too)"),
        ] = None,
        targets: Annotated[
            list[str] | None, Field(description="Workers targets it serves (none: all)")
        ] = None,
    ) -> dict[str, Any]:
        """Register a worker (yours), or update its codebases and targets. claim_next
        then claims the tasks it serves; registering again is a heartbeat."""
        with readable():
            return actions.register_worker(current_caller(), name, codebases, targets)

    @server.tool(annotations=WRITE)
    def claim_next(
        worker: Annotated[str, Field(description="Your registered worker's name")],
        sessionId: Annotated[str, Field(description="Your session's name: it holds the claim")],
        lease_s: Annotated[
            float | None,
            Field(description="Seconds the claim lasts unless renewed (5-86400, default 300)"),
        ] = None,
    ) -> dict[str, Any]:
        """Claim the best waiting task your worker serves: offers made to it first, then
        the highest priority task of its codebases and targets. `task` is null when none
        waits. Also the worker's heartbeat."""
        with readable():
            return actions.claim_next(current_caller(), worker, sessionId, lease_s)

    @server.tool(annotations=ENDS)
    def manage_tasks(
        action: Annotated[
            str,
            Field(
                description="create (a new task), list (your tasks) or update (priority, "
                "progress note, or completion of one task)"
            ),
        ],
        taskId: Annotated[str | None, Field(description="update: the task")] = None,
        title: Title = None,
        prompt: Prompt = None,
        description: Annotated[str | None, Field(description="create: the same as prompt")] = None,
        template: Template = None,
        preset: Preset = None,
        target: Target = None,
        priority: Priority = None,
        tags: Tags = None,
        depends_on: DependsOn = None,
        parent: Parent = None,
        status: StatusFilter = None,
        limit: Limit = None,
        progress: Annotated[str | None, Field(description="update: a progress note")] = None,
        completed_status: Annotated[
            str | None, Field(description="update: end it with SUCCESS, FAILED, SKIPPED...")
        ] = None,
        output: Output = None,
        error_code: ErrorCode = None,
        error_class: ErrorClass = None,
        tokens_in: TokensIn = None,
        tokens_out: TokensOut = None,
        cost_usd: CostUsd = None,
        model: Model = None,
    ) -> dict[str, Any]:
        """One tool for the whole queue, for agents that prefer it: action create takes
        the fields of create_task; list takes status, target and limit; update takes
        taskId and any of priority, progress, completed_status (with output, error and
        cost fields), applied in that order."""
        given = arguments(locals())
        with readable():
            return actions.manage(current_caller(), given)
