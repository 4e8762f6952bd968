"""HTTP client of the Dockyard API, translating every failure into one `CliError`.

Errors (all print as `error: ...` plus an optional `hint: ...` line, exit status 1)::

    CliError (click.ClickException)
     ├── ServerUnreachable   no HTTP answer at all (refused, timeout, DNS, ...)
     ├── ApiError            the server answered 4xx/5xx; carries status_code
     └── LocalServerError    the local server could not be started
"""

from __future__ import annotations

import json as jsonlib
import os
from collections.abc import Callable
from typing import IO, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import click

from cli import __version__
from provisioner.net import is_loopback_host

JSON = dict[str, Any]

API = "/api/dockyard/v1"  # Dockyard's own API (/api/v2 is also Coder's surface)
# methods a request may be repeated with when a kept-alive connection turns out closed
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


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


class Answer(Protocol):
    """What error_from_response reads of a response (ours or an httpx one)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class Reply:
    """One HTTP answer, whichever library fetched it."""

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # names in lower case
        self.content = content

    @property
    def is_error(self) -> bool:
        """4xx or 5xx."""
        return self.status_code >= 400

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return jsonlib.loads(self.content)


def uses_proxy() -> bool:
    """True when the environment names an HTTP proxy (httpx then decides where it applies)."""
    return any(
        value and name.lower() in ("http_proxy", "all_proxy") for name, value in os.environ.items()
    )


def error_from_response(response: Answer) -> ApiError:
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


def _dropped(sock: Any) -> bool:
    """True when an idle kept-alive socket has been closed by the server (it is readable:
    at its end, or with bytes nobody asked for)."""
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _segment(value: str) -> str:
    """Quote a task or template reference for use as one path segment."""
    return quote(value, safe="")


class Client:
    """Typed calls of the Dockyard API; every failure raises a CliError.

    Plain http to this machine (the local server), or anywhere when no proxy is set, goes
    over a socket (cli/plainhttp.py): importing httpx alone costs a command ~60 ms, and
    http.client ~10 ms. https and proxied servers go through httpx (certifi's CAs,
    proxies, as before).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: Any = None,
        recheck: Callable[[], tuple[str, str | None]] | None = None,
    ) -> None:
        """`recheck`: the server was taken from server.json without a health check; if the
        first request finds nothing listening there, this finds (or starts) the server
        properly and gives its URL and token, and the request is sent there instead."""
        self.timeout = timeout
        self._transport = transport
        self._http: Any = None  # httpx.Client, made on first use
        self._conn: Any = None  # plainhttp.Connection, kept alive between requests
        self._recheck = recheck
        self._use(base_url, token)

    def _use(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"User-Agent": f"dockyard-cli/{__version__}"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        parts = urlsplit(self.base_url)
        self._plain = (
            self._transport is None
            and parts.scheme == "http"
            and (is_loopback(self.base_url) or not uses_proxy())
        )
        self._prefix = parts.path.rstrip("/")

    @property
    def headers(self) -> dict[str, str]:
        """What every request sends: the user agent and the token."""
        return dict(self._headers)

    def http(self) -> Any:
        """The httpx client (for streamed bodies); its paths start with /api/v2."""
        return self._httpx()

    def close(self) -> None:
        """Release the connection (pool)."""
        if self._http is not None:
            self._http.close()
        if self._conn is not None:
            self._conn.close()

    def _httpx(self) -> Any:
        if self._http is None:
            import httpx

            self._http = httpx.Client(
                base_url=self.base_url,
                timeout=self.timeout,
                transport=self._transport,
                headers=self._headers,
                # a proxy from the environment must never be asked to reach our own loopback
                trust_env=not is_loopback(self.base_url),
                # plain http never does TLS; not loading the CA bundle saves ~50 ms
                verify=urlsplit(self.base_url).scheme != "http",
            )
        return self._http

    def _send_plain(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> Reply:
        from cli.plainhttp import Connection, RemoteDisconnected

        for attempt in (1, 2):
            if self._conn is None:
                parts = urlsplit(self.base_url)
                self._conn = Connection(parts.hostname or "", parts.port or 80, timeout)
            conn = self._conn
            if conn.sock is not None and _dropped(conn.sock):
                conn.close()  # the server closed it while we were idle: a new one
            reused = conn.sock is not None
            conn.timeout = timeout
            try:
                status, names, content = conn.request(
                    method, target, {**self._headers, **headers}, body
                )
            except (RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection the server had closed: one fresh try, for a
                # request that may be repeated (a POST may have been done: never twice)
                self._conn = None
                if attempt == 2 or not reused or method not in IDEMPOTENT:
                    raise
                continue
            except BaseException:
                self._conn = None
                raise
            if conn.sock is None:
                self._conn = None  # the answer ended the connection
            return Reply(status, names, content)
        raise AssertionError("unreachable")

    def exchange(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        content: bytes | None = None,
    ) -> Reply:
        """Send one request; the answer whatever its status (ServerUnreachable: none)."""
        if params is not None:
            params = {k: v for k, v in params.items() if v is not None}
        headers: dict[str, str] = {}
        body: bytes | None = None
        if content is not None:
            body = content
            headers["content-type"] = "application/gzip"
        elif json is not None:
            body = jsonlib.dumps(json, separators=(",", ":")).encode()
            headers["content-type"] = "application/json"
        wait = self.timeout if timeout is None else timeout
        if self._plain:
            from cli.plainhttp import ProtocolError

            target = self._prefix + API + path
            if params:
                target += "?" + urlencode(params)
            recheck, self._recheck = self._recheck, None  # the first request only
            try:
                return self._send_plain(method, target, body, headers, wait)
            except ConnectionRefusedError as exc:
                if recheck is None:
                    raise ServerUnreachable(self.base_url, str(exc)) from exc
                # nothing listens where server.json said (the request was never sent, so
                # even a POST may go again): find the server as if never looked for
                self._use(*recheck())
                return self.exchange(
                    method, path, params=params, json=json, timeout=timeout, content=content
                )
            except OSError as exc:  # refused, reset, timed out, no such host...
                raise ServerUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
            except ProtocolError as exc:  # an answer that is not HTTP as spoken here
                raise ServerUnreachable(self.base_url, str(exc)) from exc
        import httpx

        try:
            response = self._httpx().request(
                method, API + path, params=params, content=body, headers=headers, timeout=wait
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        names = {k.lower(): v for k, v in response.headers.items()}
        return Reply(response.status_code, names, response.content)

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
        return self.decode(
            self.exchange(method, path, params=params, json=json, timeout=timeout, content=content)
        )

    def decode(self, response: Reply) -> Any:
        """The JSON of a successful answer; ApiError for an error status or a non-JSON body."""
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

    def activate_template(self, name: str, version: str) -> JSON:
        """Make a stored version (hash, unique prefix or label) the active one (admins)."""
        path = f"/templates/{_segment(name)}/versions/{_segment(version)}/activate"
        result: JSON = self.request("POST", path)
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
        template: str | None,
        prompt: str,
        preset: str | None = None,
        parameters: dict[str, str] | None = None,
        name: str | None = None,
        template_version: str | None = None,
        owner: str | None = None,
        **queue: Any,
    ) -> JSON:
        """Create a task; returns it. `queue`: title, priority, tags, depends_on... as the
        API takes them (left out when None or empty)."""
        return self.create_task_tagged(
            template=template,
            prompt=prompt,
            preset=preset,
            parameters=parameters,
            name=name,
            template_version=template_version,
            owner=owner,
            **queue,
        )[0]

    def create_task_tagged(
        self,
        *,
        template: str | None,
        prompt: str,
        preset: str | None = None,
        parameters: dict[str, str] | None = None,
        name: str | None = None,
        template_version: str | None = None,
        owner: str | None = None,
        **queue: Any,
    ) -> tuple[JSON, str | None]:
        """create_task, and the created task's ETag (None from a server that sends none):
        a status long-poll (watch_task) can start from it at once."""
        body = {
            **{k: v for k, v in queue.items() if v not in (None, (), [])},
            "owner": owner,
            "template": template,
            "preset": preset,
            "prompt": prompt,
            "parameters": parameters or {},
            "name": name,
            "template_version": template_version,
        }
        reply = self.exchange("POST", "/tasks", json=body)
        result: JSON = self.decode(reply)
        return result, reply.headers.get("etag")

    def list_tasks(
        self, status: str | None = None, all_users: bool = False, **filters: str | None
    ) -> list[JSON]:
        """The caller's tasks (every user's with `all_users`), optionally of one status
        and filtered by tag, target, epic or owner."""
        params = {"status": status, "all": "true" if all_users else None, **filters}
        result: list[JSON] = self.request("GET", "/tasks", params=params)["tasks"]
        return result

    def get_task(self, task: str) -> JSON:
        """One task by id or name."""
        result: JSON = self.request("GET", f"/tasks/{_segment(task)}")
        return result

    def watch_task(self, task: str, since: str | None, wait: float) -> tuple[JSON, str | None]:
        """The task and its ETag; with `since` (an ETag) held up to `wait` s until it differs.

        A server without the long-poll answers at once with no ETag (None)."""
        params = {"wait": wait, "since": since} if since and wait > 0 else None
        reply = self.exchange(
            "GET", f"/tasks/{_segment(task)}", params=params, timeout=max(30.0, wait + 15.0)
        )
        result: JSON = self.decode(reply)
        return result, reply.headers.get("etag")

    def task_apps(self, task: str) -> list[JSON]:
        """The task's declared apps and whether each is up."""
        apps: list[JSON] = self.request("GET", f"/tasks/{_segment(task)}/apps").get("apps") or []
        return apps

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

    def complete(self, task: str, **completion: Any) -> JSON:
        """End the task with an outcome; returns it."""
        body = {k: v for k, v in completion.items() if v is not None}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/complete", json=body)
        return result

    def retry(self, task: str) -> JSON:
        """Queue a failed or errored task again as its next attempt; returns it."""
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/retry")
        return result

    def cost(self, by: str | None = None, since: str | None = None) -> JSON:
        """Cost totals ({total, groups}) of the tasks the caller may see."""
        result: JSON = self.request("GET", "/cost", params={"by": by, "since": since})
        return result

    def progress(self, task: str, note: str) -> JSON:
        """Record a progress note; returns the task."""
        result: JSON = self.request(
            "POST", f"/tasks/{_segment(task)}/progress", json={"note": note}
        )
        return result

    def set_priority(self, task: str, priority: Any, reason: str | None = None) -> JSON:
        """Change the task's priority (0-100 or low/normal/high); returns the task."""
        body = {"priority": priority, "reason": reason} if reason else {"priority": priority}
        result: JSON = self.request("PATCH", f"/tasks/{_segment(task)}", json=body)
        return result

    def promote(self, task: str, reason: str | None = None) -> JSON:
        """Move a backlog task to pending; returns the task."""
        body = {"reason": reason} if reason else {}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/promote", json=body)
        return result

    def claim(self, task: str, session: str, lease_s: float | None = None) -> JSON:
        """Claim a queue-only task for `session`; returns the task (409: someone holds it)."""
        body: JSON = {"session_id": session, "lease_s": lease_s}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/claim", json=body)
        return result

    def renew_claim(self, task: str, session: str, lease_s: float | None = None) -> JSON:
        body: JSON = {"session_id": session, "lease_s": lease_s}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/claim/renew", json=body)
        return result

    def accept_offer(self, task: str, session: str, lease_s: float | None = None) -> JSON:
        body: JSON = {"session_id": session, "lease_s": lease_s}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/offer/accept", json=body)
        return result

    def reject_offer(self, task: str, reason: str | None = None) -> JSON:
        body: JSON = {"reason": reason}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/offer/reject", json=body)
        return result

    def start_claimed(self, task: str, session: str) -> JSON:
        body: JSON = {"session_id": session}
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/start", json=body)
        return result

    def epic(self, name: str) -> JSON:
        """An epic's tasks, progress and cost."""
        result: JSON = self.request("GET", f"/epics/{_segment(name)}")
        return result

    def all_events(
        self, since: int = 0, task: str | None = None, actor: str | None = None, limit: int = 500
    ) -> JSON:
        """A page of every task's events after id `since` ({events, next_since})."""
        params = {"since": since, "task": task, "actor": actor, "limit": limit}
        result: JSON = self.request("GET", "/events", params=params)
        return result

    def send(self, task: str, text: str) -> JSON:
        """Send a follow-up prompt to the task's agent."""
        result: JSON = self.request("POST", f"/tasks/{_segment(task)}/send", json={"input": text})
        return result

    def get_prompt(self, task: str, prompt_id: str, wait: float = 0) -> JSON:
        """One prompt sent to the task, with its delivery state; with `wait`, held up to
        that many seconds while it is queued or delivered (and its task not stopped)."""
        result: JSON = self.request(
            "GET",
            f"/tasks/{_segment(task)}/prompts/{_segment(prompt_id)}",
            params={"wait": wait or None},
            timeout=max(30.0, wait + 15.0),
        )
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

    # --- webhooks ---
    def add_webhook(
        self,
        url: str,
        events: list[str],
        secret: str | None = None,
        task: str | None = None,
        all_tasks: bool = False,
    ) -> JSON:
        """Subscribe URL to events; the answer has the secret when the server made it."""
        body = {"url": url, "events": events, "secret": secret, "task": task, "all": all_tasks}
        result: JSON = self.request("POST", "/webhooks", json=body)
        return result

    def list_webhooks(self, all_users: bool = False) -> list[JSON]:
        """The caller's webhooks (everyone's with `all_users`, admins); never secrets."""
        params = {"all": "true" if all_users else None}
        result: list[JSON] = self.request("GET", "/webhooks", params=params)["webhooks"]
        return result

    def remove_webhook(self, webhook_id: str) -> JSON:
        """Remove a webhook; its pending deliveries are dropped."""
        result: JSON = self.request("DELETE", f"/webhooks/{_segment(webhook_id)}")
        return result

    def webhook_deliveries(
        self, webhook_id: str | None = None, failed: bool = False, limit: int = 100
    ) -> list[JSON]:
        """Recent deliveries of one webhook, or of all the caller's, newest first."""
        path = "/webhooks/deliveries"
        if webhook_id:
            path = f"/webhooks/{_segment(webhook_id)}/deliveries"
        params = {"failed": "true" if failed else None, "limit": limit}
        result: list[JSON] = self.request("GET", path, params=params)["deliveries"]
        return result

    def audit(self, after: int = 0, limit: int = 1000) -> list[JSON]:
        """Audit entries after an id (admins)."""
        params = {"after": after, "limit": limit}
        result: list[JSON] = self.request("GET", "/audit", params=params)["entries"]
        return result


class ClientSource:
    """Builds the Client on first use, so `--help` and `dockyard server` never need a server."""

    def __init__(
        self,
        resolve: Callable[[], tuple[str, str | None]],
        quick: Callable[[], tuple[str, str | None] | None] | None = None,
    ) -> None:
        """`quick`: the server as it seems to be, without asking it (None: unknown); the
        client then falls back on `resolve` if nothing listens there."""
        self._resolve = resolve
        self._quick = quick
        self._client: Client | None = None

    def get(self) -> Client:
        """The client, resolving (and maybe starting) the server the first time."""
        if self._client is None:
            found = self._quick() if self._quick is not None else None
            if found is not None:
                self._client = Client(found[0], token=found[1], recheck=self._resolve)
            else:
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
