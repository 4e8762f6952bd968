"""The server's half of the in-workspace MCP relay: one thread per followed task.

The agent's MCP messages wait in its bridge (bridge/runtime/mcp_relay.py): the workspace
has no path to the server. This thread long-polls the bridge for them, answers each by
calling the server's own /mcp with the task's own token (the `McpCall` the server gives
the engine), and hands the answer back. The token is made when the first message comes
and lives in this thread's memory only: it acts on this task and the tasks it creates,
and stops working when the task ends (store/accounts.py, auth/scope.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from provisioner.bridge.client import BridgeClient, BridgeError, BridgeUnreachable
from provisioner.errors import BackendUnavailable, DockyardError, TaskNotFound

if TYPE_CHECKING:
    from provisioner.engine.ports import FollowerPort

log = logging.getLogger(__name__)

# (the task's token, one JSON-RPC message) -> (HTTP status, content type, body) of /mcp
McpCall = Callable[[str, str], tuple[int, str, str]]

POLL_WAIT_S = 10.0
# the bridge takes bodies up to 1 MiB: a larger answer becomes an error the agent reads
MAX_ANSWER = 900 * 1024
_INTERNAL_ERROR = -32603


def rpc_error(message: str, text: str) -> tuple[int, str, str]:
    """A JSON-RPC error answering `message` (its id, when it has one)."""
    try:
        data = json.loads(message)
    except ValueError:
        data = None
    message_id = data.get("id") if isinstance(data, dict) else None
    body = {"jsonrpc": "2.0", "id": message_id, "error": {"code": _INTERNAL_ERROR, "message": text}}
    return 200, "application/json", json.dumps(body)


class McpRelay(threading.Thread):
    """Answers the MCP messages of one task's agent while `alive()` holds."""

    def __init__(
        self,
        engine: FollowerPort,
        task_id: str,
        call: McpCall,
        alive: Callable[[], bool],
        endpoint: str | None = None,
    ) -> None:
        """`endpoint`: the bridge's address as just reached, tried first without asking
        the backend (a Docker request beside the follower's first poll, on the way to
        idle); a stale one fails its request, and the backend is asked then."""
        super().__init__(name=f"mcp-{task_id[:8]}", daemon=True)
        self.engine = engine
        self.task_id = task_id
        self.call = call
        self.alive = alive
        self._token: str | None = None
        self._endpoint = endpoint

    def run(self) -> None:
        try:
            self._relay()
        except TaskNotFound:
            pass  # deleted: nothing to relay for
        except Exception:
            log.exception("MCP relay of task %s crashed", self.task_id)

    def _client(self) -> BridgeClient | None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            try:
                observed = self.engine.backend.observe(self.task_id)
            except BackendUnavailable:
                return None
            if not observed.running or not observed.endpoint:
                return None
            endpoint = observed.endpoint
        token = self.engine.store.get(self.task_id).bridge_token
        return BridgeClient(endpoint, token, timeout=10)

    def _relay(self) -> None:
        client: BridgeClient | None = None
        failures = 0
        while self.alive():
            if client is None:
                client = self._client()
                if client is None:
                    time.sleep(1.0)  # the follower decides what an absent workspace means
                    continue
            try:
                requests = client.mcp_requests(wait=POLL_WAIT_S)
                for request in requests:
                    if isinstance(request, dict):
                        self._answer(client, request)
                failures = 0
            except BridgeError as exc:
                if exc.status_code == 404 and "/dockyard/mcp" in exc.detail:
                    log.info("task %s: its bridge has no MCP relay (older)", self.task_id)
                    return
                failures += 1
            except BridgeUnreachable:
                failures += 1
            if failures:
                client.close()
                client = None
                time.sleep(min(0.2 * failures, 2.0))
        if client is not None:
            client.close()

    def _answer(self, client: BridgeClient, request: dict[str, Any]) -> None:
        request_id, message = request.get("id"), request.get("body")
        if not isinstance(request_id, str) or not isinstance(message, str):
            return
        status, content_type, body = self._call(message)
        if len(body.encode("utf-8", "replace")) > MAX_ANSWER:
            status, content_type, body = rpc_error(
                message, "the answer is larger than the relay carries (900 KiB): ask for less"
            )
        try:
            client.mcp_answer(request_id, status, content_type, body)
        except BridgeError as exc:
            if exc.status_code != 404:  # 404: the agent stopped waiting for it
                raise

    def _call(self, message: str) -> tuple[int, str, str]:
        """/mcp's answer to `message`, with the task's token (a new one if the last was
        refused: another server may have replaced it)."""
        for attempt in (1, 2):
            if self._token is None:
                try:
                    self._token = self.engine.store.issue_task_token(self.task_id)
                except DockyardError as exc:
                    return rpc_error(message, f"Dockyard cannot act for this task: {exc}")
            try:
                status, content_type, body = self.call(self._token, message)
            except Exception as exc:  # the server stopping, a call that took too long
                log.warning("task %s: relaying an MCP message failed: %r", self.task_id, exc)
                return rpc_error(
                    message, f"Dockyard could not answer ({type(exc).__name__}); retry"
                )
            if status != 401 or attempt == 2:
                return status, content_type, body
            self._token = None
        raise AssertionError("unreachable")
