"""The MCP server and its route in the FastAPI app.

Stateless Streamable HTTP with JSON answers: every tool call is one POST that carries
its own token, so servers sharing one database can stand behind a load balancer without
sticky sessions, and nothing is kept per client between calls. The request guard
(server/guard.py) already checks Host and Origin against the server's own names, so the
SDK's localhost-only DNS-rebinding check is off: it would refuse an --allowed-host name.
"""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route

from provisioner import __version__
from provisioner.engine.engine import Engine
from provisioner.server.mcp.actions import TaskActions
from provisioner.server.mcp.caller import CallerContext
from provisioner.server.mcp.claim_tools import add_claim_tools
from provisioner.server.mcp.tools import add_task_tools

PATH = "/mcp"
INSTRUCTIONS = (
    "Dockyard runs coding agents in isolated workspaces, one per task. Create tasks to "
    "hand work to other agents (create_task), follow them (get_task, get_tasks, "
    "get_task_logs), steer them (send_message), and report on the task you work on "
    "(report_progress, request_input, complete_task). You see and act on your own tasks."
)


def build_mcp_server(engine: Engine) -> MCPServer:
    """The tools of `engine`'s queue, not yet served."""
    server: MCPServer = MCPServer(
        "dockyard", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    actions = TaskActions(engine)
    add_task_tools(server, actions)
    add_claim_tools(server, actions)
    return server


def mcp_route(server: MCPServer) -> tuple[Route, StreamableHTTPSessionManager]:
    """The route serving `server` at /mcp (behind the app's guard and Authenticator), and
    the session manager the app's lifespan must run (a routed app's own lifespan never
    runs)."""
    asgi = server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    # a Route at exactly /mcp (not a Mount, which answers /mcp with a redirect to /mcp/
    # that MCP clients do not follow for a POST); the SDK's app routes the same path
    return Route(PATH, endpoint=CallerContext(asgi)), server.session_manager
