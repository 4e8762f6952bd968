"""HTTP client of the Dockyard API, translating every failure into one `CliError`.

Errors (all print as `error: ...` plus an optional `hint: ...` line, exit status 1)::

    CliError (click.ClickException)
     ├── ServerUnreachable   no HTTP answer at all (refused, timeout, DNS, ...)
     ├── ApiError            the server answered 4xx/5xx; carries status_code
     └── LocalServerError    the local server could not be started
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any
from urllib.parse import quote, urlsplit

import click
import httpx

from cli import __version__
from provisioner.net import is_loopback_host

JSON = dict[str, Any]

API = "/api/v2"


class CliError(click.ClickException):
    """An error shown as `error: MESSAGE` and an optional `hint: HINT` line; exit 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the error (and hint) to stderr."""
        click.echo(f"error: {self.format_message()}", err=True, file=file)
        if self.hint:
            click.echo(f"hint: {self.hint}", err=True, file=file)


class ServerUnreachable(CliError):
    """No HTTP answer from the server."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Dockyard server at {url}: {reason}. "
            "Is it running? Start one with: dockyard server"
        )
        self.url = url


class ApiError(CliError):
    """The server answered with an error status."""

    def __init__(self, message: str, hint: str | None = None, status_code: int = 0) -> None:
        super().__init__(message, hint)
        self.status_code = status_code


class LocalServerError(CliError):
    """The local server could not be started or never became healthy."""


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine."""
    return is_loopback_host(urlsplit(url).hostname or "")


def _format_validation(items: list[Any]) -> str:
    """One line out of FastAPI's 422 list of {loc, msg, type}."""
    parts = []
    for item in items:
        if not isinstance(item, dict):
            parts.append(str(item))
            continue
        # "body"/"query"/"path" says where, which the user did not choose; the field name matters
        loc = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
        msg = str(item.get("msg", "invalid value"))
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "invalid request: " + "; ".join(parts)


def error_from_response(response: httpx.Response) -> ApiError:
    """Turn a 4xx/5xx response into an ApiError with a one-line message."""
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    hint: str | None = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        hint = body.get("hint")
        if isinstance(detail, list):
            message = _format_validation(detail)
        elif isinstance(detail, dict):
            hint = hint or detail.get("hint")
            message = str(detail.get("detail") or detail.get("message") or detail)
        else:
            message = str(detail)
    else:
        text = response.text.strip().splitlines()
        message = f"the server answered HTTP {code}" + (f": {text[0]}" if text else "")
    return ApiError(" ".join(message.split()) or f"HTTP {code}", hint, code)


def _segment(value: str) -> str:
    """Quote a task or template reference for use as one path segment."""
    return quote(value, safe="")


class Client:
    """Typed calls of the Dockyard API; every failure raises a CliError."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": f"dockyard-cli/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers=headers,
            # a proxy from the environment must never be asked to reach our own loopback server
            trust_env=not is_loopback(self.base_url),
            # plain http never does TLS; not loading the CA bundle saves ~50 ms per command
            verify=urlsplit(self.base_url).scheme != "http",
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        content: bytes | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body."""
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        if content is not None:
            extra["content"] = content
            extra["headers"] = {"content-type": "application/gzip"}
        try:
            response = self._http.request(method, API + path, params=params, json=json, **extra)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        if response.is_error:
            error = error_from_response(response)
            if response.status_code == 401:
                error.hint = f"log in with: dockyard login {self.base_url} (or set DOCKYARD_TOKEN)"
            raise error
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                f"the server sent a response that is not JSON (HTTP {response.status_code})",
                status_code=response.status_code,
            ) from exc

    # --- server ---
    def health(self, timeout: float | None = None) -> JSON:
        """GET /health."""
        result: JSON = self.request("GET", "/health", timeout=timeout)
        return result

    # --- catalog ---
    def list_templates(self) -> list[JSON]:
        """All templates."""
        result: list[JSON] = self.request("GET", "/templates")["templates"]
        return result

    def get_template(self, name: str) -> JSON:
        """One template with its parameters."""
        result: JSON = self.request("GET", f"/templates/{_segment(name)}")
        return result

    def template_versions(self, name: str) -> list[JSON]:
        """Stored versions of a template, oldest first; `active` marks the one in use."""
        result: list[JSON] = self.request("GET", f"/templates/{_segment(name)}/versions")[
            "versions"
        ]
        return result

    def push_template(self, archive: bytes, label: str | None) -> JSON:
        """Upload a packed template folder; the server validates and stores it."""
        result: JSON = self.request(
            "POST", "/templates", params={"label": label}, content=archive, timeout=120
        )
        return result

    def delete_template(self, name: str, version: str | None = None) -> list[str]:
        """Delete one stored version of a template, or all of them; returns those deleted."""
        path = f"/templates/{_segment(name)}"
        if version is not None:
            path += f"/versions/{_segment(version)}"
        result: list[str] = self.request("DELETE", path)["deleted"]
        return result

    def list_presets(self, template: str | None = None) -> list[JSON]:
        """Presets, optionally of one template."""
        result: list[JSON] = self.request("GET", "/presets", params={"template": template})[
            "presets"
        ]
        return result

    # --- tasks ---
    def create_task(
        self,
        *,
        template: str,
        prompt: str,
        preset: str | None = None,
        parameters: dict[str, str] | None = None,
        name: str | None = None,
        template_version: str | None = None,
        owner: str | None = None,
    ) -> JSON:
        """Create a task; returns it."""
        body = {
            "owner": owner,
            "template": template,
            "preset": preset,
            "prompt": prompt,
            "parameters": parameters or {},
            "name": name,
            "template_version": template_version,
        }
        result: JSON = self.request("POST", "/tasks", json=body)
        return result

    def list_tasks(self, status: str | None = None, all_users: bool = False) -> list[JSON]:
        """The caller's tasks (every user's with `all_users`), optionally of one status."""
        params = {"status": status, "all": "true" if all_users else None}
        result: list[JSON] = self.request("GET", "/tasks", params=params)["tasks"]
        return result

    def get_task(self, task: str) -> JSON:
        """One task by id or name."""
        result: JSON = self.request("GET", f"/tasks/{_segment(task)}")
        return result

    def task_events(self, task: str) -> list[JSON]:
        """The task's status history."""
        result: list[JSON] = self.request("GET", f"/tasks/{_segment(task)}/events")["events"]
        return result

    def task_logs(
        self, task: str, *, after: int | None = None, wait: float = 0, limit: int | None = None
    ) -> JSON:
        """Log entries after `after`, long-polling up to `wait` seconds when there are none."""
        params = {"after": after, "wait": wait or None, "limit": limit}
        # the long poll must not be cut short by our own read timeout
        timeout = max(30.0, wait + 15.0)
        result: JSON = self.request(
            "GET", f"/tasks/{_segment(task)}/logs", params=params, timeout=timeout
        )
        return result

    def send(self, task: str, text: str) -> JSON:
        """Send a follow-up prompt to the task's agent."""
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/send", json={"input": text})
        return result

    def get_prompt(self, task: str, prompt_id: str) -> JSON:
        """One prompt sent to the task, with its delivery state."""
        result: JSON = self.request("GET", f"/tasks/{_segment(task)}/prompts/{_segment(prompt_id)}")
        return result

    def pause(self, task: str) -> JSON:
        """Pause the task; returns it."""
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/pause")
        return result

    def resume(self, task: str) -> JSON:
        """Resume the task; returns it."""
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/resume")
        return result

    def delete(self, task: str) -> None:
        """Delete the task and its workspace."""
        self.request("DELETE", f"/tasks/{_segment(task)}")

    # --- users, tokens, audit ---
    def me(self) -> JSON:
        """Who the token belongs to."""
        result: JSON = self.request("GET", "/me")
        return result

    def list_users(self) -> list[JSON]:
        """Every user (admins)."""
        result: list[JSON] = self.request("GET", "/users")["users"]
        return result

    def create_user(self, name: str, role: str) -> JSON:
        """Add a user (admins)."""
        result: JSON = self.request("POST", "/users", json={"name": name, "role": role})
        return result

    def remove_user(self, name: str) -> None:
        """Remove a user and revoke their tokens (admins)."""
        self.request("DELETE", f"/users/{_segment(name)}")

    def create_token(self, name: str, expires: str | None, user: str | None) -> JSON:
        """A new token; the reply holds it, the only time it is shown."""
        body = {"name": name, "expires": expires, "user": user}
        result: JSON = self.request("POST", "/tokens", json=body)
        return result

    def list_tokens(self, all_users: bool = False) -> list[JSON]:
        """The caller's tokens (everyone's with `all_users`, admins)."""
        params = {"all": "true" if all_users else None}
        result: list[JSON] = self.request("GET", "/tokens", params=params)["tokens"]
        return result

    def revoke_token(self, token_id: str) -> JSON:
        """Revoke one token."""
        result: JSON = self.request("DELETE", f"/tokens/{_segment(token_id)}")
        return result

    def audit(self, after: int = 0, limit: int = 1000) -> list[JSON]:
        """Audit entries after an id (admins)."""
        params = {"after": after, "limit": limit}
        result: list[JSON] = self.request("GET", "/audit", params=params)["entries"]
        return result


class ClientSource:
    """Builds the Client on first use, so `--help` and `dockyard server` never need a server."""

    def __init__(self, resolve: Callable[[], tuple[str, str | None]]) -> None:
        self._resolve = resolve
        self._client: Client | None = None

    def get(self) -> Client:
        """The client, resolving (and maybe starting) the server the first time."""
        if self._client is None:
            url, token = self._resolve()
            self._client = Client(url, token=token)
            click.get_current_context().find_root().call_on_close(self._client.close)
        return self._client


def current_client() -> Client:
    """The client of the running command, built by the root group's ClientSource."""
    source = click.get_current_context().find_object(ClientSource)
    if source is None:
        raise RuntimeError("a dockyard command ran outside the dockyard root group")
    return source.get()
