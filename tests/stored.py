"""A task stored for a test, with plain defaults any field can override."""

from __future__ import annotations

import uuid
from typing import Any

from provisioner.lifecycle import Status
from provisioner.model import Task, utcnow
from provisioner.store.store import Store


def stored_task(store: Store, status: Status = Status.PENDING, **fields: Any) -> Task:
    """Create a task in `store` (a scripted one by default) and return it as stored."""
    return store.create_task(new_task(status, **fields), actor="test")


def new_task(status: Status = Status.PENDING, **fields: Any) -> Task:
    """A task record (a scripted one by default), not stored anywhere."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": f"t-{uuid.uuid4().hex[:8]}",
        "display_name": "t",
        "owner": "me",
        "template": "scripted",
        "template_version": "v1",
        "preset": None,
        "parameters": {},
        "resolved": {},
        "prompt": "p",
        "status": status,
        "bridge_token": "x",
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return Task(**values)
