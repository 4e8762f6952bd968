"""What a live board is sent (pure): a read of tasks against what the board was shown.

The dashboard's stream (server/dashboard_api.py) reads either every task the caller may
see (its first read, and a periodic one for other servers' writes and deletions) or only
the tasks this process said changed; both reads go through `board_events`, which sends a
row only when what the API shows of it changed, and a removal only for a task it read
for and did not find."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.model import Task


@dataclass(frozen=True)
class Shown:
    """One row as the board last got it: the task as read, and its public form."""

    task: Task
    public: dict[str, Any]


def board_events(
    shown: dict[str, Shown], found: Mapping[str, Task], read: Collection[str] | None
) -> list[tuple[str, Any]]:
    """The events that bring a board showing `shown` up to `found` (updating `shown`):
    `("task", public)` per task new or changed, `("removed", {"id": ...})` per task shown
    and not found. `read`: the ids the read looked for (None: every task the board may
    show), so a task outside a partial read is not taken for gone."""
    events: list[tuple[str, Any]] = []
    for task_id, task in found.items():
        before = shown.get(task_id)
        # comparing the dataclasses first is cheap: most rows of a full read are as they
        # were, and public() (a deep copy) is what a full read of 500 tasks cost most
        if before is not None and before.task == task:
            continue
        public = task.public()
        shown[task_id] = Shown(task, public)
        # a change only to private fields (a lease's renewal) shows nothing new
        if before is None or before.public != public:
            events.append(("task", public))
    looked = shown.keys() if read is None else (i for i in read if i in shown)
    for task_id in sorted(set(looked) - found.keys()):
        del shown[task_id]
        events.append(("removed", {"id": task_id}))
    return events
