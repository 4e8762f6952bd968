"""Request bodies checked before the engine sees them: what each field may hold.

Kept apart from api.py: the routes only call these. Every string of a body is checked
(a lone surrogate cannot be stored and crashed the request with a 500); the prompt also
for control characters and size (see provisioner.prompts).
"""

from __future__ import annotations

from typing import Any

from provisioner.prompts import check_prompt, check_strings


def create_prompt(body: Any) -> str:
    """Check a POST /tasks body (a pydantic model); return its prompt as it will be typed."""
    for field, value in body.model_dump().items():
        check_strings(value, field)
    return check_prompt(body.prompt, "the prompt")


def send_input(body: Any) -> str:
    """Check a POST /tasks/{ref}/send body; return its input as it will be typed."""
    return check_prompt(body.input, "the input")
