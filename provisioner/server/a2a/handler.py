"""The A2A JSON-RPC methods over Dockyard's engine: SendMessage creates a task or sends
a follow-up prompt, GetTask/ListTasks read the store, CancelTask completes the task
CANCELLED, the streaming methods follow the task's transcript, and push notification
configs are stored with the task (and delivered by the webhook dispatcher: push.py).

The SDK's DefaultRequestHandler runs an AgentExecutor inside the server process and
keeps live tasks in an in-memory registry. A Dockyard task's life is the engine's (its
follower, its state machine, possibly another server sharing the database), so this
handler asks the engine to act and reads the result back from the store, through the
TaskStore (taskstore.py), each time.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
    validate_request_params,
)
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskPushNotificationConfig,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length, validate_history_length
from fastapi.concurrency import run_in_threadpool
from google.protobuf.json_format import MessageToDict, ParseDict

from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.engine.workspace import initial_prompt_id
from provisioner.errors import DockyardError, ParameterError, TaskConflict
from provisioner.model import QueueFields
from provisioner.model import Task as DockyardTask
from provisioner.prompts import check_prompt, check_strings, shorten
from provisioner.queueing import parse_completion
from provisioner.server.a2a.mapping import (
    FINAL,
    Skill,
    a2a_error,
    message_prompt,
    reply_text,
    requested_skill,
    turn_over,
)
from provisioner.server.a2a.push import PROTOCOL_KEY, V10, check_authentication, protocol_of
from provisioner.server.a2a.taskstore import DockyardTaskStore, View, facts_of, principal_of
from provisioner.server.tasks_api import audit_act
from provisioner.server.waiting import wait_for

log = logging.getLogger(__name__)

# a blocking SendMessage answers by then even if the turn goes on (the task then shows
# WORKING; the client polls GetTask or subscribes)
MAX_SEND_WAIT = 300.0
# a stream looks at the task this often when no log line of this process woke it
STREAM_RECHECK = 0.25
# the longest a stream waits between two events before it reads the task again anyway
STREAM_WAIT = 15.0
MAX_ID_CHARS = 128
MAX_URL_CHARS = 2048
MAX_TOKEN_CHARS = 1024

P = ParamSpec("P")
R = TypeVar("R")


def answering_errors(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Dockyard's errors as JSON-RPC errors with their words (the SDK answers any other
    exception as an internal error with its text, which must not happen for bad input)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except DockyardError as exc:
            raise a2a_error(exc) from exc

    return wrapper


def streaming_errors(
    method: Callable[P, AsyncGenerator[Event]],
) -> Callable[P, AsyncGenerator[Event]]:
    """answering_errors for the streaming methods."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Event]:
        try:
            async for event in method(*args, **kwargs):
                yield event
        except DockyardError as exc:
            raise a2a_error(exc) from exc

    return wrapper


@dataclass(frozen=True)
class Started:
    """The task a message went to and the prompt it became."""

    task_id: str
    prompt_id: str


class DockyardRequestHandler(RequestHandler):
    """Every A2A method, for the caller the Authenticator let in."""

    def __init__(
        self,
        engine: Engine,
        tasks: DockyardTaskStore,
        default_skill: Skill | None,
        check_push_url: Callable[[Principal, str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.tasks = tasks
        self.default_skill = default_skill
        # the webhooks' address policy for a push URL (ParameterError saying why not)
        self.check_push_url = check_push_url or (lambda who, url: None)

    def _audit(self, who: Principal, task: DockyardTask, action: str) -> None:
        """An admin acting on another's task is audited, as through the REST API."""
        audit_act(self.tasks.store, who, task, action)

    # SendMessage --------------------------------------------------------------------------
    def _start(self, who: Principal, params: SendMessageRequest) -> Started:
        """Create a task for a new message, or send a follow-up to the task it names."""
        message = params.message
        prompt = check_prompt(message_prompt(message), "the message")
        message_meta = MessageToDict(message.metadata)
        request_meta = MessageToDict(params.metadata)
        check_strings(message_meta, "message.metadata")
        check_strings(request_meta, "metadata")
        if message.task_id:
            task = self.tasks.find(who, message.task_id)
            if task is None:
                raise TaskNotFoundError(message=f"No task {shorten(message.task_id)!r}")
            context = self.tasks.store.a2a_contexts([task.id]).get(task.id, task.id)
            if message.context_id and message.context_id != context:
                raise InvalidParamsError(
                    message=f"Context {shorten(message.context_id)!r} is not the context "
                    f"of task {task.id} ({context})"
                )
            self._audit(who, task, "task.send")
            sent = self.engine.send(task.id, prompt, actor=who.actor)
            return Started(task.id, str(sent["prompt_id"]))
        if len(message.context_id) > MAX_ID_CHARS:
            raise InvalidParamsError(message=f"contextId is longer than {MAX_ID_CHARS}")
        skill = requested_skill(message_meta, request_meta) or self.default_skill
        if skill is None:
            raise ParameterError(
                "The message names no skill and this server has no default",
                hint="set metadata.skill to one of the agent card's skills "
                "(TEMPLATE or TEMPLATE/PRESET), or an admin sets a2a.default_skill "
                "in config.yaml",
            )
        parameters = message_meta.get("parameters", request_meta.get("parameters", {}))
        if not isinstance(parameters, dict):
            raise ParameterError("metadata.parameters must be an object of parameter values")
        task = self.engine.create_task(
            template=skill.template,
            preset=skill.preset,
            prompt=prompt,
            parameters=parameters,
            name=None,
            owner=who.user,
            actor=who.actor,
            queue=QueueFields(source="a2a"),
        )
        return Started(task.id, initial_prompt_id(task))

    async def _send(self, params: SendMessageRequest, context: ServerCallContext) -> Started:
        validate_history_length(params.configuration)
        who = principal_of(context)
        push = None
        if params.configuration.HasField("task_push_notification_config"):
            push = TaskPushNotificationConfig()
            push.CopyFrom(params.configuration.task_push_notification_config)
            _check_push_config(push)  # before a task exists for it
            await run_in_threadpool(self.check_push_url, who, push.url)
        started = await run_in_threadpool(self._start, who, params)
        if params.message.context_id and not params.message.task_id:
            # the client's conversation: the one thing A2A keeps beside the task
            await self.tasks.save(
                Task(id=started.task_id, context_id=params.message.context_id), context
            )
        if push is not None:
            push.task_id = started.task_id
            # a new task's config gets its changes from its start: the engine may have
            # taken it up already
            new = not params.message.task_id
            protocol = protocol_of(context.state.get("method"))
            await run_in_threadpool(self._put_push_config, who, push, new, protocol)
        return started

    async def _view(self, who: Principal, task_id: str) -> View:
        view = await run_in_threadpool(self.tasks.read, who, task_id)
        if view is None:  # deleted meanwhile
            raise TaskNotFoundError(message=f"Task {task_id} was deleted")
        return view

    def _turn_over(self, who: Principal, task_id: str, prompt_id: str) -> bool:
        """Whether the turn of `prompt_id` is over: two small reads, no transcript."""
        task = self.tasks.find(who, task_id)
        if task is None:
            return True
        prompt = self.tasks.store.prompt(prompt_id)
        return turn_over(facts_of(task), prompt["state"] if prompt else None)

    @answering_errors
    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        """Returns once the agent is done with the message (idle at its prompt, asking,
        or the task ended), or after MAX_SEND_WAIT, or at once with returnImmediately."""
        who = principal_of(context)
        started = await self._send(params, context)
        if not params.configuration.return_immediately:
            await wait_for(
                self.tasks.store,
                lambda: self._turn_over(who, started.task_id, started.prompt_id),
                bool,
                MAX_SEND_WAIT,
                recheck=STREAM_RECHECK,
            )
        view = await self._view(who, started.task_id)
        return apply_history_length(view.a2a(), params.configuration)

    @streaming_errors
    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        who = principal_of(context)
        started = await self._send(params, context)
        async for event in self._follow(who, started.task_id, started.prompt_id):
            yield event

    @streaming_errors
    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        who = principal_of(context)
        view = await run_in_threadpool(self.tasks.read, who, params.id)
        if view is None:
            raise TaskNotFoundError(message=f"No task {shorten(params.id)!r}")
        state = view.a2a(history=False).status.state
        if state in FINAL:
            raise UnsupportedOperationError(
                message=f"Task {view.task.id} has ended ({view.task.status.value}): "
                "nothing more will come; read it with GetTask"
            )
        last = view.turns[-1].prompt_id if view.turns else ""
        async for event in self._follow(who, view.task.id, last):
            yield event

    async def _follow(self, who: Principal, task_id: str, prompt_id: str) -> AsyncIterator[Event]:
        """The task, then its reply lines as artifact chunks and its state changes as
        status updates, until the turn of `prompt_id` is over. The transcript is read
        once, then only its new rows at each look."""
        rows: list[dict[str, Any]] = []

        def look() -> tuple[View | None, bool]:
            task = self.tasks.find(who, task_id)
            if task is None:
                return None, True  # deleted: nothing more will come
            self.tasks.more_rows(task.id, rows)
            prompt = self.tasks.store.prompt(prompt_id) if prompt_id else None
            state = prompt["state"] if prompt else None
            return self.tasks.view(task, rows), turn_over(facts_of(task), state)

        first, _ = await run_in_threadpool(look)
        if first is None:
            raise TaskNotFoundError(message=f"Task {task_id} was deleted")
        task = first.a2a()
        yield task
        sent = {t.prompt_id: len(t.reply) for t in first.turns}
        state = task.status.state
        over = False
        while not over:

            def changed(seen: tuple[View | None, bool], state: int = state) -> bool:
                current, done = seen
                if current is None or done:
                    return True
                grew = any(len(t.reply) > sent.get(t.prompt_id, 0) for t in current.turns)
                return grew or current.a2a(history=False).status.state != state

            current, over = await wait_for(
                self.tasks.store, look, changed, STREAM_WAIT, recheck=STREAM_RECHECK
            )
            if current is None:
                return
            now = current.a2a(history=False)
            for turn in current.turns:
                have = sent.get(turn.prompt_id, 0)
                if len(turn.reply) <= have:
                    continue
                artifact = TaskArtifactUpdateEvent(
                    task_id=task_id,
                    context_id=now.context_id,
                    append=have > 0,
                    last_chunk=over,
                )
                artifact.artifact.artifact_id = f"reply-{turn.prompt_id}"
                artifact.artifact.name = "reply"
                artifact.artifact.parts.append(Part(text=reply_text(turn.reply[have:])))
                sent[turn.prompt_id] = len(turn.reply)
                yield artifact
            if now.status.state != state or over:
                state = now.status.state
                yield TaskStatusUpdateEvent(
                    task_id=task_id, context_id=now.context_id, status=now.status
                )

    # reading ------------------------------------------------------------------------------
    @answering_errors
    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        validate_history_length(params)
        task = await self.tasks.get(params.id, context)
        if task is None:
            raise TaskNotFoundError(message=f"No task {shorten(params.id)!r}")
        return apply_history_length(task, params)

    @answering_errors
    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        validate_history_length(params)
        page = await self.tasks.list(params, context)
        for task in page.tasks:
            if not params.include_artifacts:
                task.ClearField("artifacts")
            task.CopyFrom(apply_history_length(task, params))
        return page

    @answering_errors
    @validate_request_params
    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        """CANCELLED through the engine: the workspace stops, the record and logs stay."""
        who = principal_of(context)

        def cancel() -> None:
            task = self.tasks.find(who, params.id)
            if task is None:
                raise TaskNotFoundError(message=f"No task {shorten(params.id)!r}")
            self._audit(who, task, "task.complete")
            try:
                self.engine.complete(
                    task.id, parse_completion({"outcome": "CANCELLED"}), actor=who.actor
                )
            except TaskConflict as exc:
                raise TaskNotCancelableError(message=exc.message) from exc

        await run_in_threadpool(cancel)
        return (await self._view(who, params.id)).a2a()

    # push notification configs ------------------------------------------------------------
    def _owned(self, who: Principal, task_id: str) -> str:
        task = self.tasks.find(who, task_id)
        if task is None:
            raise TaskNotFoundError(message=f"No task {shorten(task_id)!r}")
        return task.id

    def _put_push_config(
        self,
        who: Principal,
        config: TaskPushNotificationConfig,
        from_start: bool = False,
        protocol: str = V10,
    ) -> TaskPushNotificationConfig:
        task_id = self._owned(who, config.task_id)
        _check_push_config(config)
        self.check_push_url(who, config.url)
        if not config.id:
            config.id = uuid.uuid4().hex
        config.tenant = ""
        stored = MessageToDict(config)
        stored[PROTOCOL_KEY] = protocol  # a 0.3 client's receiver gets 0.3 bodies
        if not self.tasks.store.put_push_config(task_id, config.id, stored, from_start=from_start):
            raise InvalidParamsError(message=f"Task {task_id} has as many push configs as allowed")
        return config

    @answering_errors
    @validate_request_params
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        protocol = protocol_of(context.state.get("method"))
        return await run_in_threadpool(
            self._put_push_config, principal_of(context), params, False, protocol
        )

    def _configs(self, who: Principal, task_id: str) -> list[TaskPushNotificationConfig]:
        owned = self._owned(who, task_id)
        return [
            ParseDict(c, TaskPushNotificationConfig(), ignore_unknown_fields=True)
            for c in self.tasks.store.push_configs(owned)
        ]

    @answering_errors
    @validate_request_params
    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        configs = await run_in_threadpool(self._configs, principal_of(context), params.task_id)
        for config in configs:
            if config.id == params.id:
                return config
        raise TaskNotFoundError(
            message=f"Task {params.task_id} has no push config {shorten(params.id)!r}"
        )

    @answering_errors
    @validate_request_params
    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        configs = await run_in_threadpool(self._configs, principal_of(context), params.task_id)
        return ListTaskPushNotificationConfigsResponse(configs=configs)

    @answering_errors
    @validate_request_params
    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        who = principal_of(context)

        def delete() -> None:
            owned = self._owned(who, params.task_id)
            if not self.tasks.store.delete_push_config(owned, params.id):
                raise TaskNotFoundError(
                    message=f"Task {owned} has no push config {shorten(params.id)!r}"
                )

        await run_in_threadpool(delete)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError(
            message="The agent card is served only to authenticated callers already: "
            "there is no extended card"
        )


def _check_push_config(config: TaskPushNotificationConfig) -> None:
    """A push target a hostile caller gave: http(s), bounded, plain text."""
    check_strings(MessageToDict(config), "pushNotificationConfig")
    if len(config.id) > MAX_ID_CHARS:
        raise InvalidParamsError(message=f"The push config id is longer than {MAX_ID_CHARS}")
    if not config.url.startswith(("https://", "http://")) or len(config.url) > MAX_URL_CHARS:
        raise InvalidParamsError(
            message=f"The push URL must be http(s) and at most {MAX_URL_CHARS} characters"
        )
    if len(config.token) > MAX_TOKEN_CHARS or len(config.authentication.credentials) > (
        MAX_TOKEN_CHARS
    ):
        raise InvalidParamsError(message=f"Push credentials are longer than {MAX_TOKEN_CHARS}")
    try:
        check_authentication(MessageToDict(config))
    except ParameterError as exc:
        raise a2a_error(exc) from exc


__all__ = ["A2AError", "DockyardRequestHandler", "Started"]
