"""The SDK's TaskStore over Dockyard's store: an A2A task is read from the Dockyard task
of the same id (its status, prompts and logs), as the caller may see it.

There is no second copy of a task: `save` keeps only what A2A adds (the context id),
and a task's state, messages and artifacts are always derived from the store, so two
servers sharing a database answer alike and nothing is lost on a restart.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.tasks.task_store import TaskStore
from a2a.types.a2a_pb2 import ListTasksRequest, ListTasksResponse, Task
from a2a.utils.errors import InvalidParamsError, UnsupportedOperationError
from fastapi.concurrency import run_in_threadpool

from provisioner.auth.tokens import Principal
from provisioner.errors import DockyardError, TaskNotFound, Unauthenticated
from provisioner.model import Task as DockyardTask
from provisioner.server.a2a.mapping import TaskFacts, Turn, a2a_state, a2a_task, turns
from provisioner.store.store import Store
from provisioner.templating.catalog import Catalog

# the transcript read for one view: beyond this many rows the oldest turns show no reply
MAX_LOG_ROWS = 50_000
LOG_PAGE = 10_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def principal_of(context: ServerCallContext) -> Principal:
    """Who calls: the Authenticator middleware's principal, put in the context by
    routes.CallContextBuilder. Never absent behind the middleware."""
    who = context.state.get("principal")
    if not isinstance(who, Principal):
        raise Unauthenticated("This server needs an API token")
    return who


def facts_of(task: DockyardTask) -> TaskFacts:
    return TaskFacts(
        id=task.id,
        name=task.name,
        status=task.status,
        state=task.state,
        message=task.message,
        updated_at=task.updated_at,
        retry_at=task.retry_at,
        question=task.question,
        template=task.template,
        preset=task.preset,
    )


@dataclass
class View:
    """One task as A2A shows it, with the parts a stream compares between reads."""

    task: DockyardTask
    context_id: str
    turns: list[Turn]

    def a2a(self, history: bool = True) -> Task:
        return a2a_task(facts_of(self.task), self.context_id, self.turns, history)


class DockyardTaskStore(TaskStore):
    """Owner-scoped reads of Dockyard tasks as A2A tasks (members see their own only;
    another's task is not found, as in the REST API)."""

    def __init__(self, store: Store, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog

    # reading (sync: run in a thread) ----------------------------------------------------
    def find(self, who: Principal, task_id: str) -> DockyardTask | None:
        """The task `who` may see by its id (A2A ids are ids, never names)."""
        try:
            task = self.store.get(task_id)
        except TaskNotFound:
            return None
        if task.id != task_id or task.kind != "task":
            return None  # a name that happens to match, or a warm workspace
        if task.owner != who.user and not who.is_admin:
            return None
        return task

    def view(self, task: DockyardTask, rows: list[dict[str, Any]] | None = None) -> View:
        """The task as A2A shows it; `rows`: its log rows as already read (a stream keeps
        them and reads only the new ones, see more_rows), else all are read here."""
        context = self.store.a2a_contexts([task.id]).get(task.id, task.id)
        if rows is None:
            rows = []
            self.more_rows(task.id, rows)
        return View(
            task,
            context,
            turns(self.store.prompts(task.id), rows, self.prompt_line(task)),
        )

    def more_rows(self, task_id: str, rows: list[dict[str, Any]]) -> None:
        """Append the task's log rows after the last of `rows` (up to MAX_LOG_ROWS)."""
        after = int(rows[-1]["id"]) if rows else 0
        while len(rows) < MAX_LOG_ROWS:
            page = self.store.logs(task_id, after, LOG_PAGE)
            rows += page
            if len(page) < LOG_PAGE:
                break
            after = int(page[-1]["id"])

    def prompt_line(self, task: DockyardTask) -> re.Pattern[str] | None:
        return _prompt_line(self.catalog, task.template, task.template_version)

    def read(self, who: Principal, task_id: str) -> View | None:
        task = self.find(who, task_id)
        return None if task is None else self.view(task)

    def page(self, who: Principal, params: ListTasksRequest) -> ListTasksResponse:
        """The caller's own tasks, newest first, filtered by context and A2A state."""
        size = params.page_size if params.HasField("page_size") else DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidParamsError(message=f"page_size must be 1 to {MAX_PAGE_SIZE}")
        try:
            offset = int(params.page_token or "0")
        except ValueError:
            raise InvalidParamsError(message="page_token is not one this server gave") from None
        if offset < 0:
            raise InvalidParamsError(message="page_token is not one this server gave")
        found = self.store.list_tasks(owner=who.user)
        contexts = self.store.a2a_contexts([t.id for t in found])
        if params.context_id:
            found = [t for t in found if contexts.get(t.id, t.id) == params.context_id]
        if params.status:
            found = [t for t in found if a2a_state(t.status, t.state, t.retry_at) == params.status]
        if params.HasField("status_timestamp_after"):
            after = params.status_timestamp_after.ToJsonString()
            found = [t for t in found if t.updated_at > after]
        chosen = found[offset : offset + size]
        history = not params.HasField("history_length") or params.history_length > 0
        # neither artifacts nor history asked for: the transcripts need not be read
        bare = not history and not params.include_artifacts
        tasks = [self.view(t, [] if bare else None).a2a(history) for t in chosen]
        more = offset + size < len(found)
        return ListTasksResponse(
            tasks=tasks,
            next_page_token=str(offset + size) if more else "",
            page_size=size,
            total_size=len(found),
        )

    # the SDK's interface ----------------------------------------------------------------
    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        who = principal_of(context)
        view = await run_in_threadpool(self.read, who, task_id)
        return None if view is None else view.a2a()

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        return await run_in_threadpool(self.page, principal_of(context), params)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        """Keep the A2A context id of a task this caller may see. Its state, messages
        and artifacts come from the engine and the transcript, so they are not written."""
        who = principal_of(context)

        def keep() -> None:
            found = self.find(who, task.id)
            if found is None:
                raise TaskNotFound(f"No task {task.id[:80]!r}")
            own = not task.context_id or task.context_id == task.id
            if not own and not self.store.a2a_contexts([task.id]):
                self.store.set_a2a_context(task.id, task.context_id)

        await run_in_threadpool(keep)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        raise UnsupportedOperationError(
            message="A2A does not delete tasks: cancel it (CancelTask), or delete it with "
            "`dockyard task delete` (DELETE /api/v2/tasks/{ref})"
        )


@functools.lru_cache(maxsize=256)
def _prompt_regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _prompt_line(catalog: Catalog, template: str, version: str) -> re.Pattern[str] | None:
    """The template's prompt_regex: the agent's own input prompt, left out of replies."""
    try:
        pattern = catalog.get(template, version).config.agent.profile.prompt_regex
    except DockyardError:
        return None  # its template is gone: replies keep a trailing prompt line
    return _prompt_regex(pattern)
