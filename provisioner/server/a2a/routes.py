"""The A2A routes: the agent card and the JSON-RPC endpoint, behind the same bearer
authentication as the REST API (the Authenticator middleware covers every path).

The card is served to authenticated callers only: it lists the server's templates and
presets, which the REST API shows only to its users too. An A2A client sends the token
when it fetches the card (the SDK's resolver takes headers), and the card declares the
bearer scheme it needs for everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from provisioner import __version__
from provisioner.auth.tokens import Principal
from provisioner.engine.engine import Engine
from provisioner.errors import DockyardError, ParameterError
from provisioner.server.a2a.handler import DockyardRequestHandler
from provisioner.server.a2a.mapping import Skill, parse_skill
from provisioner.server.a2a.taskstore import DockyardTaskStore
from provisioner.server.webhook_dispatch import Resolver, checked_addresses, resolve
from provisioner.templating.catalog import Catalog
from provisioner.webhooks import Settings, check_url

RPC_PATH = "/a2a"
CARD_PATH = AGENT_CARD_WELL_KNOWN_PATH  # /.well-known/agent-card.json
BEARER = "bearer"


class CallContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's context plus who is calling (the Authenticator's principal)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        # the SDK reads the A2A-Version header from here; the token need not go further
        headers = context.state.get("headers")
        if isinstance(headers, dict):
            headers.pop("authorization", None)
        context.state["principal"] = request.scope.get("state", {}).get("principal")
        return context


def skills(catalog: Catalog) -> list[AgentSkill]:
    """A skill per template and per template/preset a task can run on. A template that
    does not load is left out (the REST API's template list says why)."""
    found: list[AgentSkill] = []
    for name in catalog.names():
        try:
            tpl = catalog.get(name)
        except DockyardError:
            continue
        about = tpl.config.description or f"a task on template {name}"
        found.append(
            AgentSkill(
                id=Skill(name).id,
                name=name,
                description=f"{about} (its default preset)",
                tags=["template"],
            )
        )
        for preset in sorted(tpl.presets.values(), key=lambda p: p.name):
            described = preset.config.description or f"preset {preset.name}"
            found.append(
                AgentSkill(
                    id=Skill(name, preset.name).id,
                    name=f"{name}/{preset.name}",
                    description=f"{about}: {described}",
                    tags=["template", "preset"],
                )
            )
    return found


def agent_card(base_url: str, offered: list[AgentSkill]) -> AgentCard:
    """The card: where the JSON-RPC endpoint is, what it can do, the bearer scheme."""
    card = AgentCard(
        name="Dockyard",
        description=(
            "Runs coding agents in isolated workspaces, one per task. A message starts a "
            "task on a skill (metadata.skill: TEMPLATE or TEMPLATE/PRESET); the agent's "
            "replies come back as artifacts; a follow-up message on the task is the next "
            "prompt."
        ),
        version=__version__,
        # one endpoint, both versions (the SDK's compatibility switch): listing 0.3 too
        # makes the card carry the 0.3 fields (url, preferredTransport) older clients read
        supported_interfaces=[
            AgentInterface(
                url=base_url.rstrip("/") + RPC_PATH, protocol_binding="JSONRPC", protocol_version=v
            )
            for v in ("1.0", "0.3")
        ],
        # push configs are delivered by the webhook dispatcher (push.py)
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=offered,
    )
    card.security_schemes[BEARER].CopyFrom(
        SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer",
                description="A Dockyard API token (dockyard token create)",
            )
        )
    )
    requirement = SecurityRequirement()
    requirement.schemes[BEARER].SetInParent()
    card.security_requirements.append(requirement)
    return card


def default_skill(config: dict[str, Any]) -> Skill | None:
    """`a2a: {default_skill: TEMPLATE[/PRESET]}` in config.yaml: what a message that
    names no skill runs on. Without it such a message is refused, naming the skills."""
    section = config.get("a2a")
    if not isinstance(section, dict) or section.get("default_skill") is None:
        return None
    return parse_skill(section["default_skill"])


def push_url_check(
    settings: Settings, resolver: Resolver = resolve
) -> Callable[[Principal, str], None]:
    """A push URL is a webhook URL: the same checks when it is set (and at every send):
    http(s), no credentials, and an address members may call (never link-local)."""

    def check(who: Principal, url: str) -> None:
        try:
            target = check_url(url)
            checked_addresses(target, settings.allow_private, who.is_admin, resolver)
        except ParameterError as exc:  # the webhooks' words, said of the push URL
            raise ParameterError(f"Push URL refused: {exc.message}", hint=exc.hint) from exc

    return check


def a2a_routes(
    engine: Engine, config: dict[str, Any], settings: Settings | None = None
) -> list[BaseRoute]:
    """The card route and the JSON-RPC route (1.0 methods, 0.3 names too)."""
    tasks = DockyardTaskStore(engine.store, engine.catalog)
    fallback = default_skill(config)
    settings = settings or Settings()

    async def card(request: Request) -> Response:
        offered = await run_in_threadpool(skills, engine.catalog)
        built = agent_card(str(request.base_url), offered)
        return JSONResponse(agent_card_to_dict(built))

    handler = DockyardRequestHandler(engine, tasks, fallback, push_url_check(settings))
    return [
        Route(CARD_PATH, card, methods=["GET"]),
        *create_jsonrpc_routes(
            handler,
            rpc_url=RPC_PATH,
            context_builder=CallContextBuilder(),
            enable_v0_3_compat=True,
        ),
    ]
