"""How the API answers a failure: one error body, a status code per error class, and
the responses every route declares in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from provisioner.errors import (
    BackendUnavailable,
    BridgeFailure,
    DockyardError,
    Forbidden,
    PayloadTooLarge,
    TaskConflict,
    TemplateError,
    TooManySessions,
    Unauthenticated,
)
from provisioner.server.auth import CHALLENGE

# the largest row id a database holds (64-bit); a larger `after` would not fit a query
MAX_ROW_ID = 2**63 - 1
# longest `detail` an error answer carries: a message quoting a huge value stays readable
MAX_DETAIL = 1000


class ErrorBody(BaseModel):
    """Every error answer: what happened, and what to do about it."""

    detail: str | list[dict[str, Any]] = Field(
        description="The message; for a malformed request, one item per bad field"
    )
    hint: str | None = Field(None, description="What to do about it")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": why}
    for code, why in [
        (400, "Malformed request, or a value that is not allowed"),
        (401, "No API token, or one that is unknown, expired or revoked"),
        (403, "The caller's role does not allow this"),
        (404, "No such task, template, user or token (or not the caller's)"),
        (409, "The task or name is in a state that does not allow this"),
        (413, "The request or a prompt is larger than allowed"),
    ]
}


def _capped(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_DETAIL:
        return text
    return text[: MAX_DETAIL - 40] + f"... ({len(text) - MAX_DETAIL + 40} more characters)"


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # only where and what: the raw input may be huge or not even encodable
    return [
        {
            "loc": [str(p)[:100] for p in err.get("loc", ())],
            "msg": _capped(str(err.get("msg", "invalid value"))),
            "type": str(err.get("type", ""))[:100],
        }
        for err in exc.errors()[:20]
    ]


def _status_code(exc: DockyardError) -> int:
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, TooManySessions):
        return 429
    if isinstance(exc, BackendUnavailable):
        return 503
    if isinstance(exc, TaskConflict):
        return 409
    if isinstance(exc, TemplateError):
        return 400
    if isinstance(exc, BridgeFailure):
        return 502
    return 500


def install_error_handler(app: FastAPI) -> None:
    """Our errors become `{"detail", "hint"}` with a fitting status code."""

    @app.exception_handler(DockyardError)
    async def _dockyard_error(_: Request, exc: DockyardError) -> JSONResponse:
        code = _status_code(exc)
        headers = dict([CHALLENGE]) if code == 401 else None
        return JSONResponse(
            status_code=code,
            content={"detail": _capped(exc.message), "hint": _capped(exc.hint)},
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # a malformed body or query is the caller's mistake: 400, like our own checks
        return JSONResponse(status_code=400, content={"detail": _validation_detail(exc)})
