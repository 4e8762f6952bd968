"""What each MCP tool does to the queue, for one caller: find the task as the caller may
see it, check the arguments (args.py), call the engine, show the result.

Blocking (the store, a bridge), so the SDK runs the tools on worker threads. Failures
are ToolErrors the agent reads: each names the task and says what to do instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from provisioner.auth.scope import in_scope
from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.errors import DockyardError, TaskNotFound
from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.prompts import check_prompt, check_strings, shorten
from provisioner.queueing import check_label
from provisioner.server.mcp import args as parse
from provisioner.server.tasks_api import audit_act, check_scoped_refs, find_task
from provisioner.store.records import LOG_KEYS


@contextmanager
def readable() -> Iterator[None]:
    """Dockyard's refusals as tool errors the agent reads (any other exception stays a
    crash: the SDK shows the agent only a generic error and logs the traceback)."""
    try:
        yield
    except DockyardError as exc:
        raise ToolError(str(exc)) from exc


class TaskActions:
    """The queue as the tools use it, bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store

    def find(self, who: Principal, ref: str, act: str | None = None) -> Task:
        """The task `ref` (a name, id or id prefix) names, among those `who` may see; a
        member asking for another member's task is told it does not exist. `act` (an
        act an admin does on another user's task) is audited."""
        check_strings(ref, "taskId")
        try:
            task = find_task(self.store, who, ref)
        except TaskNotFound:
            raise ToolError(
                f"task {shorten(ref, 80)!r} not found: no task of yours has that name or id "
                "(get_tasks lists them)"
            ) from None
        if act is not None:
            audit_act(self.store, who, task, act)
        return task

    def create(self, who: Principal, arguments: Mapping[str, Any]) -> dict[str, Any]:
        new = parse.parse_new_task(arguments)
        with readable():
            check_scoped_refs(self.store, who, [new.queue.parent, *new.queue.depends_on])
        task = self.engine.create_task(
            template=new.template,
            preset=new.preset,
            prompt=new.prompt,
            parameters=new.parameters,
            name=None,
            owner=who.user,
            actor=who.actor,
            queue=new.queue,
        )
        return {"success": True, **parse.task_summary(task)}

    def tasks(
        self,
        who: Principal,
        *,
        status: str | None,
        target: str | None,
        tag: str | None,
        epic: str | None,
        limit: int | None,
        all_users: bool,
    ) -> dict[str, Any]:
        if all_users and not who.is_admin:
            raise ToolError(
                "Only an admin may list every user's tasks: leave all_users out for yours"
            )
        statuses = parse.parse_status_filter(status)
        for value, what in ((target, "target"), (tag, "tag"), (epic, "epic")):
            check_label(value, what)
        most = parse.bounded(limit, parse.DEFAULT_LIST_LIMIT, parse.MAX_LIST_LIMIT, "limit")
        owner = None if all_users else who.user
        found = self.store.list_tasks(statuses, owner=owner, tag=tag, target=target, epic=epic)
        found = [t for t in found if in_scope(who, t)]
        return {
            "tasks": [parse.task_summary(t) for t in found[:most]],
            "count": min(len(found), most),
            "more": len(found) > most,  # newest first: the oldest were left out
        }

    def get(self, who: Principal, ref: str) -> dict[str, Any]:
        task = self.find(who, ref)
        return {
            **parse.task_summary(task),
            "prompt": parse.clipped(task.prompt, parse.MAX_SHOWN_PROMPT),
        }

    def logs(
        self, who: Principal, ref: str, lines: int | None, after: int | None
    ) -> dict[str, Any]:
        task = self.find(who, ref)
        count = parse.bounded(lines, parse.DEFAULT_LOG_LINES, parse.MAX_LOG_LINES, "lines")
        if after is not None and (isinstance(after, bool) or not 0 <= after < 2**63):
            raise ToolError(f"Invalid after {after!r}: the id of an entry already read")
        start = after if after is not None else self.store.tail_start(task.id, count)
        rows = self.store.log_rows(task.id, start, count)
        entries, cut = parse.log_page(rows, LOG_KEYS)
        last = entries[-1]["id"] if entries else start
        return {
            "taskId": task.id,
            "name": task.name,
            "status": task.status.value,
            "state": task.state,
            "entries": entries,
            "last_id": last,  # pass as `after` to read on from here
            # entries after last_id left out of this answer: read on with after=last_id
            "more": cut or (after is not None and len(rows) == count),
            # the last entries were asked for and there are older ones before them
            "earlier": after is None and start > 0,
        }

    def send(self, who: Principal, ref: str, message: str) -> dict[str, Any]:
        task = self.find(who, ref, "task.send")
        ended = parse.ended_message(task, "send to it")
        if ended:
            raise ToolError(ended)
        text = check_prompt(message, "the message")
        if task.status == Status.ERROR:
            raise ToolError(
                f"task {task.name} is in error ({shorten(task.message, 200)}); "
                "it takes messages again once resumed (dockyard task resume)"
            )
        sent = self.engine.send(task.id, text, actor=who.actor)
        after = self.store.get(task.id)
        return {
            "success": True,
            "taskId": task.id,
            "name": task.name,
            "prompt_id": sent["prompt_id"],
            "delivery": sent["state"],  # queued: it reaches the agent once it is idle
            "status": after.status.value,
            "state": after.state,
        }

    def progress(self, who: Principal, ref: str, note: str) -> dict[str, Any]:
        task = self.find(who, ref, "task.progress")
        ended = parse.ended_message(task, "note progress on it")
        if ended:
            raise ToolError(ended)
        check_strings(note, "note")
        noted = self.engine.progress(task.id, note, actor=who.actor)
        return {"success": True, **parse.task_summary(noted)}

    def ask(self, who: Principal, ref: str, question: str) -> dict[str, Any]:
        task = self.find(who, ref, "task.ask")
        ended = parse.ended_message(task, "ask on it")
        if ended:
            raise ToolError(ended)
        if task.status != Status.ACTIVE:
            raise ToolError(
                f"task {task.name} is {task.status.value}: a question waits for an answer "
                "only while its agent runs (status active)"
            )
        check_strings(question, "question")
        asked = self.engine.ask(task.id, question, actor=who.actor)
        return {"success": True, **parse.task_summary(asked)}

    @staticmethod
    def not_for_a_task(who: Principal, tool: str) -> None:
        """Workers and claims are for users' tokens: a task's token acts on its task and
        the tasks it creates only."""
        if who.task_id is not None:
            raise ToolError(
                f"{tool} is not open to a task's own token: it acts on its task and the "
                "tasks it creates only (create_task, get_task, send_message, complete_task)"
            )

    def claim(self, who: Principal, ref: str, session: object, lease_s: object) -> dict[str, Any]:
        """claim_task: any caller may claim a queue-only task (CacheBash's rule)."""
        self.not_for_a_task(who, "claim_task")
        check_strings(ref, "taskId")
        if session is None:
            raise ToolError("sessionId is required: a name for your session (it holds the claim)")
        try:
            task = self.engine.claim(
                ref, user=who.user, session_id=session, lease_s=lease_s, admin=who.is_admin
            )
        except TaskNotFound:
            raise ToolError(
                f"task {shorten(ref, 80)!r} not found: no queue-only task, nor one of yours, "
                "has that name or id (get_tasks lists yours)"
            ) from None
        return {"success": True, **parse.task_summary(task)}

    def register_worker(
        self, who: Principal, name: object, codebases: object, targets: object
    ) -> dict[str, Any]:
        self.not_for_a_task(who, "register_worker")
        self.engine.register_worker(name, codebases, targets, owner=who.user)
        shown = [w for w in self.engine.workers_view(who.user) if w["name"] == name]
        return {"success": True, **shown[0]}

    def claim_next(
        self, who: Principal, worker: str, session: object, lease_s: object
    ) -> dict[str, Any]:
        self.not_for_a_task(who, "claim_next")
        check_strings(worker, "worker")
        try:
            task = self.engine.claim_next(
                worker, user=who.user, session_id=session, lease_s=lease_s
            )
        except TaskNotFound:
            raise ToolError(
                f"worker {shorten(worker, 64)!r} not found: register it first (register_worker)"
            ) from None
        return {"success": True, "task": parse.task_summary(task) if task else None}

    def complete(self, who: Principal, ref: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        completion = parse.parse_completion_args(fields)
        try:
            task = self.find(who, ref, "task.complete")
        except ToolError:
            if who.task_id is not None:
                raise
            task = self._held(who, ref)  # the holder of a claim ends what it claimed
        ended = parse.ended_message(task, "complete it again")
        if ended:
            raise ToolError(ended)
        done = self.engine.complete(task.id, completion, actor=who.actor)
        return {"success": True, **parse.task_summary(done)}

    def _held(self, who: Principal, ref: str) -> Task:
        """The queue-only task `ref` whose claim `who` holds (else the find's not-found)."""
        try:
            task = self.engine.claimable(ref, who.user)
        except TaskNotFound:
            task = None
        if task is None or task.claimed_by != who.user:
            return self.find(who, ref)  # raises its readable not-found
        return task

    def set_priority(self, who: Principal, ref: str, priority: int | str) -> dict[str, Any]:
        task = self.find(who, ref, "task.priority")
        ended = parse.ended_message(task, "change its priority")
        if ended:
            raise ToolError(ended)
        changed = self.engine.set_priority(task.id, priority, actor=who.actor)
        return {"success": True, **parse.task_summary(changed)}

    def manage(self, who: Principal, given: Mapping[str, Any]) -> dict[str, Any]:
        """manage_tasks: create, list, or update (priority, then progress, then completion,
        each applied by the tool of its own name)."""
        action, fields = parse.parse_manage(given)
        if action == "create":
            return self.create(who, fields)
        if action == "list":
            return self.tasks(
                who,
                status=fields.get("status"),
                target=fields.get("target"),
                tag=None,
                epic=None,
                limit=fields.get("limit"),
                all_users=False,
            )
        ref = fields["taskId"]
        result: dict[str, Any] = {}
        if "priority" in fields:
            result = self.set_priority(who, ref, fields["priority"])
        if "progress" in fields:
            result = self.progress(who, ref, fields["progress"])
        if "completed_status" in fields:
            done = {k: fields[k] for k in parse.COMPLETION_FIELDS if k in fields}
            result = self.complete(who, ref, done)
        return result
