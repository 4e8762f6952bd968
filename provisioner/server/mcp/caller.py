"""Who calls a tool: the caller the Authenticator found, handed to the MCP SDK.

The server's Authenticator (server/auth.py) checks the bearer token of every request,
/mcp included, records failures in the audit log and answers them 401. The SDK's own
TokenVerifier would check the same token a second time and needs an OAuth issuer URL
Dockyard does not have, so instead this ASGI wrapper gives the SDK the principal already
found: as `scope["user"]` (the SDK binds request state to it) and in the SDK's auth
context, where `get_access_token()` reads it inside a tool.
"""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import auth_context_var, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError

from provisioner.auth.tokens import Principal, Role
from provisioner.server.auth import CHALLENGE, HINT
from provisioner.server.guard import ASGIApp, Receive, Refusal, Scope, Send, send_refusal


def access_token(who: Principal) -> AccessToken:
    """The SDK's view of a Dockyard caller. `token` holds the token's public id, never the
    secret: nothing downstream needs it, and it must not linger in memory or logs."""
    return AccessToken(
        token=who.token_id,
        client_id=who.user,
        scopes=[who.role.value],
        claims={"role": who.role.value, "token_id": who.token_id, "task_id": who.task_id},
    )


def principal_of(token: AccessToken | None) -> Principal:
    """The Dockyard caller behind the SDK's access token of this request."""
    claims = token.claims if token is not None else None
    if token is None or not claims or "role" not in claims:
        # only without CallerContext in front (a wiring mistake): never serve anonymously
        raise ToolError("This server needs an API token (Authorization: Bearer <token>)")
    return Principal(
        user=token.client_id,
        role=Role(claims["role"]),
        token_id=claims["token_id"],
        task_id=claims.get("task_id"),
    )


def current_caller() -> Principal:
    """The caller of the tool being run."""
    return principal_of(get_access_token())


class CallerContext:
    """ASGI: the MCP app behind it sees the Authenticator's principal; a request without
    one (the app mounted without the Authenticator) is a 401, never served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        who = scope.get("state", {}).get("principal")
        if not isinstance(who, Principal):
            refusal = Refusal(401, "This server needs an API token", HINT)
            await send_refusal(send, refusal, [CHALLENGE])
            return
        user = AuthenticatedUser(access_token(who))
        scope["user"] = user
        mark = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(mark)
