"""A target's max_concurrent is applied by Store.admit under the capacity lock: stores
sharing one database (two servers) never overshoot it, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from provisioner.lifecycle import Status
from provisioner.model import Task
from provisioner.store.store import Store
from tests.stored import stored_task

LIMITS = {"builder": 2}


def test_two_stores_never_overshoot_a_targets_limit(store_url: str) -> None:
    stores = [Store(store_url), Store(store_url)]
    try:
        # paused tasks being resumed: none is ahead of another in the queue, so only the
        # count taken under the lock stops all but two of them
        tasks = [stored_task(stores[0], Status.PAUSED, target="builder") for _ in range(6)]
        side = stored_task(stores[0], Status.PAUSED, target="builder", action="parallel")
        barrier = threading.Barrier(len(tasks))
        moved: list[Task | None] = []

        def race(task: Task, store: Store) -> None:
            barrier.wait()
            got, _ = store.admit(
                task.id, Status.PAUSED, None, actor="test", action="resume", target_limits=LIMITS
            )
            moved.append(got)

        threads = [
            threading.Thread(target=race, args=(t, stores[i % 2])) for i, t in enumerate(tasks)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(m is not None for m in moved) == 2
        assert stores[1].usage(None, LIMITS).target_live == {"builder": 2}
        # a parallel task is neither limited by nor counted against it
        got, usage = stores[1].admit(
            side.id, Status.PAUSED, None, actor="test", action="resume", target_limits=LIMITS
        )
        assert got is not None and usage.target_live == {"builder": 2}
        # another target's task is not held by builder's limit
        other = stored_task(stores[0], Status.PENDING, target="reviewer")
        got, _ = stores[0].admit(other.id, Status.PENDING, None, actor="test", target_limits=LIMITS)
        assert got is not None
    finally:
        for s in stores:
            s.close()
