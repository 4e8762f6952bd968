"""Inbound webhooks' pure rules: the ready-made forms, checking a delivery's signature,
and rendering its prompt and filter in the bounded Jinja sandbox.

Two signature forms are taken:
- GitHub's: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, the delivery id
  in `X-GitHub-Delivery`, the event in `X-GitHub-Event`.
- Dockyard's own (what outbound webhooks send, provisioner/webhooks.py): `X-Dockyard-
  Signature` over `<X-Dockyard-Timestamp>.<body>`, a timestamp within 5 minutes, the id in
  `X-Dockyard-Delivery`, the event in `X-Dockyard-Event`. Any sender can make it; a
  Dockyard server's webhook can trigger another's tasks.

No I/O here: the server's trigger route (server/triggers_api.py) reads the request, asks
this module, and stores what became of it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2 import TemplateError as JinjaError

from provisioner.errors import ParameterError, TemplateError
from provisioner.prompts import MAX_PROMPT_BYTES
from provisioner.templating.sandbox import make_environment, render_bounded
from provisioner.webhooks import verify

MAX_BODY = 1024 * 1024  # a delivery's body; GitHub's issue and comment events are far less
MAX_TEMPLATE = 16 * 1024  # a prompt template or filter as stored
MAX_ID = 128  # a delivery id
MAX_EVENT = 64
SIGNATURE_TOLERANCE_S = 300.0
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_PRINTABLE_ID = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True)
class Form:
    """A ready-made trigger: what it renders, and which deliveries it takes."""

    prompt_template: str
    filter: str | None
    sample: dict[str, Any]  # a payload it is tried against when a trigger is created
    event: str


_ISSUE = {
    "title": "Crash on start",
    "body": "It crashes.",
    "number": 1,
    "html_url": "https://github.com/o/r/issues/1",
    "labels": [{"name": "dockyard"}],
}
FORMS: dict[str, Form] = {
    # an issue opened with the `dockyard` label, or the label added later
    "github-issue": Form(
        "{{ payload.issue.title }}\n\n{{ payload.issue.body or '' }}\n\n"
        "({{ payload.issue.html_url }})",
        "event == 'issues' and ((payload.action == 'labeled' and payload.label.name == "
        "'dockyard') or (payload.action == 'opened' and 'dockyard' in "
        "(payload.issue.labels | map(attribute='name') | list)))",
        {"action": "opened", "issue": _ISSUE},
        "issues",
    ),
    # a new comment that mentions @dockyard, on an issue or a pull request
    "github-comment": Form(
        "{{ payload.issue.title }}\n\n{{ payload.comment.body }}\n\n"
        "({{ payload.comment.html_url }})",
        "event == 'issue_comment' and payload.action == 'created' and "
        "'@dockyard' in payload.comment.body",
        {
            "action": "created",
            "issue": _ISSUE,
            "comment": {"body": "@dockyard fix it", "html_url": "https://github.com/o/r#c1"},
        },
        "issue_comment",
    ),
    # any JSON with a `prompt` field
    "generic": Form("{{ payload.prompt }}", None, {"prompt": "Fix the bug"}, "generic"),
}


def github_signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 as GitHub computes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verified:
    """A delivery's signature check: ok or why not, and what its headers say."""

    ok: bool
    reason: str = ""
    delivery_id: str | None = None
    event: str | None = None


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    return value if _PRINTABLE_ID.fullmatch(value) and len(value) <= limit else None


def check_delivery(secret: str, headers: dict[str, str], body: bytes, now: float) -> Verified:
    """Check a delivery's signature (headers with lower-case names). Every comparison is
    constant-time (hmac.compare_digest)."""
    github = headers.get("x-hub-signature-256")
    if github is not None:
        if not hmac.compare_digest(github_signature(secret, body), github.strip()):
            return Verified(False, "the X-Hub-Signature-256 signature does not match")
        return Verified(
            True,
            delivery_id=_clean(headers.get("x-github-delivery"), MAX_ID),
            event=_clean(headers.get("x-github-event"), MAX_EVENT),
        )
    ours = headers.get("x-dockyard-signature")
    if ours is not None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Verified(False, "the body is not UTF-8")
        stamp = headers.get("x-dockyard-timestamp", "")
        if not verify(secret, stamp, text, ours.strip(), now, SIGNATURE_TOLERANCE_S):
            return Verified(
                False,
                "the X-Dockyard-Signature does not match, or X-Dockyard-Timestamp is not "
                f"within {SIGNATURE_TOLERANCE_S:g} s of now",
            )
        return Verified(
            True,
            delivery_id=_clean(headers.get("x-dockyard-delivery"), MAX_ID),
            event=_clean(headers.get("x-dockyard-event"), MAX_EVENT),
        )
    return Verified(False, "no signature (X-Hub-Signature-256 or X-Dockyard-Signature)")


# --- rendering ---------------------------------------------------------------------------

_PROMPT_ENV = make_environment()
# a filter asks about fields a delivery may lack (`payload.label.name` of an `opened`
# event): a missing one is false, not an error
_FILTER_ENV = make_environment()
_FILTER_ENV.undefined = ChainableUndefined


def _refuse_private_names(tree: nodes.Node, what: str) -> None:
    """Refuse `x.__class__`, `x['_y']` and the like when a trigger is created: the sandbox
    refuses them when rendering too, but a trigger that could never render one is
    clearer than deliveries rejected one by one."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter)):
        name = None
        if isinstance(node, nodes.Filter) and node.name in ("attr", "map"):
            # `x | attr('__class__')`, `xs | map(attribute='__class__')`
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                if isinstance(arg, nodes.Const) and str(arg.value).startswith("_"):
                    name = str(arg.value)
        elif isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Name):
            name = node.name
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value if isinstance(node.arg.value, str) else None
        if name is not None and name.startswith("_"):
            raise ParameterError(
                f"The {what} uses {name[:40]!r}: names starting with _ are not allowed",
                hint="use the payload's fields, e.g. {{ payload.issue.title }}",
            )


def check_prompt_template(text: str) -> str:
    """Parse a prompt template (syntax, size, no private names)."""
    if not isinstance(text, str) or not text.strip():
        raise ParameterError("The prompt template is empty", hint="e.g. {{ payload.prompt }}")
    if len(text) > MAX_TEMPLATE:
        raise ParameterError(f"The prompt template is longer than {MAX_TEMPLATE} characters")
    try:
        tree = _PROMPT_ENV.parse(text)
    except JinjaError as exc:
        raise ParameterError(f"The prompt template does not parse: {exc}") from None
    except RecursionError:  # `((((...` thousands deep
        raise ParameterError("The prompt template nests too deeply") from None
    _refuse_private_names(tree, "prompt template")
    return text


def check_filter(text: str | None) -> str | None:
    """Parse a filter: one Jinja expression (no statements, no private names)."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_TEMPLATE:
        raise ParameterError(f"The filter is longer than {MAX_TEMPLATE} characters")
    try:
        _FILTER_ENV.compile_expression(text)
        tree = _FILTER_ENV.parse("{{ (" + text + ") }}")
    except JinjaError as exc:
        raise ParameterError(
            f"The filter is not one expression: {exc}",
            hint="e.g. payload.action == 'opened'",
        ) from None
    except RecursionError:
        raise ParameterError("The filter nests too deeply") from None
    _refuse_private_names(tree, "filter")
    return text


def context(payload: Any, event: str | None, delivery: str | None, trigger: str) -> dict[str, Any]:
    """What a prompt template and a filter see."""
    return {
        "payload": payload,
        "event": event or "",
        "delivery": delivery or "",
        "trigger": trigger,
    }


def passes(filter_text: str | None, ctx: dict[str, Any]) -> bool:
    """True when there is no filter or the delivery passes it."""
    if filter_text is None:
        return True
    try:
        out = render_bounded(
            _FILTER_ENV, "{% if (" + filter_text + ") %}1{% endif %}", ctx, "the filter"
        )
    except TemplateError:
        raise
    except JinjaError as exc:
        raise TemplateError(f"the filter failed: {exc}") from None
    return out == "1"


def render_prompt(template: str, ctx: dict[str, Any]) -> str:
    """The task's prompt: rendered, control characters shown as U+FFFD (a payload's text
    must not act as keys in the agent's terminal), at most MAX_PROMPT_BYTES."""
    try:
        text = render_bounded(_PROMPT_ENV, template, ctx, "the prompt template")
    except TemplateError:
        raise
    except JinjaError as exc:
        raise TemplateError(f"the prompt template failed: {exc}") from None
    text = _CONTROL.sub("\ufffd", text).strip()
    if not text:
        raise TemplateError("the prompt template rendered an empty prompt")
    if len(text.encode()) > MAX_PROMPT_BYTES:
        raise TemplateError(f"the rendered prompt is larger than {MAX_PROMPT_BYTES >> 10} KiB")
    return text
