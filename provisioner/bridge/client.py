"""Host-side client of a workspace's bridge API."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import httpx

from provisioner.bridge.runtime.wire import BridgeStatus, LogReply, PromptRecord


class BridgeUnreachable(Exception):
    """The bridge could not be reached (connection refused, reset or timed out)."""


class BridgeError(Exception):
    """The bridge answered with a non-2xx status. `body` is the answer as sent; `detail`
    what it says went wrong: agentapi's problem+json `detail`, the `error` of a bridge
    older than that (one still running in a workspace), else the body itself."""

    def __init__(self, status_code: int, body: str) -> None:
        self.status_code = status_code
        self.body = body
        self.detail = _detail(body)
        super().__init__(f"bridge answered {status_code}: {self.detail}")


def _detail(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict):
        said = data.get("detail") or data.get("error")
        if isinstance(said, str) and said:
            return said
    return body


class BridgeClient:
    """Synchronous client for one bridge."""

    def __init__(self, base_url: str, token: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            # Bridges speak plain HTTP on a local network: loading the CA bundle cost ~25 ms
            # and ~1 MB per client, and proxy variables must never route this traffic.
            verify=not self.base_url.startswith("http://"),
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"BridgeClient({self.base_url!r})"  # never the token

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                timeout=self.timeout if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise BridgeUnreachable(
                f"bridge at {self.base_url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if not response.is_success:
            raise BridgeError(response.status_code, response.text)
        try:
            return response.json()
        except ValueError as exc:
            raise BridgeError(response.status_code, f"not JSON: {response.text[:200]}") from exc

    def health(self) -> dict[str, Any]:
        """GET /healthz (needs no token)."""
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

    def status(self) -> BridgeStatus:
        """GET /status: agentapi status plus the `dockyard` details."""
        result: BridgeStatus = self._request("GET", "/status")
        return result

    def log(
        self,
        after: int,
        wait: float = 0,
        limit: int = 1000,
        state: str | None = None,
        prompts_version: int | None = None,
        reports_after: int | None = None,
    ) -> LogReply:
        """GET /dockyard/log: entries after seq `after`, long-polling up to `wait` seconds;
        with `reports_after`, the agent's reports after that seq too (`reports`)."""
        params: dict[str, Any] = {"after": after, "wait": wait, "limit": limit}
        if state is not None:
            params["state"] = state
        if prompts_version is not None:
            params["prompts"] = prompts_version
        if reports_after is not None:
            params["reports_after"] = reports_after
        # the server may hold the request for `wait` seconds before it answers
        result: LogReply = self._request(
            "GET", "/dockyard/log", params=params, timeout=self.timeout + wait
        )
        return result

    def send(
        self, content: str, type: str = "user", prompt_id: str | None = None
    ) -> dict[str, Any]:
        """POST /message: queue a user prompt or type raw keys; returns {"ok", "id"}."""
        body: dict[str, Any] = {"content": content, "type": type}
        if prompt_id is not None:
            body["id"] = prompt_id
        result: dict[str, Any] = self._request("POST", "/message", json=body)
        return result

    def messages(self) -> list[dict[str, Any]]:
        """GET /messages: agentapi's conversation turns."""
        result: list[dict[str, Any]] = self._request("GET", "/messages")["messages"]
        return result

    def prompts(self) -> list[PromptRecord]:
        """GET /dockyard/prompts: every prompt and its delivery state."""
        result: list[PromptRecord] = self._request("GET", "/dockyard/prompts")["prompts"]
        return result

    def reports(self, after: int = 0, limit: int = 100) -> dict[str, Any]:
        """GET /dockyard/reports: the agent's reports after seq `after` (`reports`,
        `last_seq`)."""
        params = {"after": after, "limit": limit}
        result: dict[str, Any] = self._request("GET", "/dockyard/reports", params=params)
        return result

    def mcp_requests(self, wait: float = 0) -> list[dict[str, Any]]:
        """GET /dockyard/mcp/requests: the agent's MCP messages for the server (each
        handed out once: [{"id", "body"}]), long-polling up to `wait` seconds."""
        result: dict[str, Any] = self._request(
            "GET", "/dockyard/mcp/requests", params={"wait": wait}, timeout=self.timeout + wait
        )
        requests = result.get("requests")
        return requests if isinstance(requests, list) else []

    def mcp_answer(self, request_id: str, status: int, content_type: str, body: str) -> None:
        """POST /dockyard/mcp/answer: the server's answer to one of them."""
        answer = {"id": request_id, "status": status, "content_type": content_type, "body": body}
        self._request("POST", "/dockyard/mcp/answer", json=answer)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
