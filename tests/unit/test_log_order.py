"""One task's log ids become visible in order on PostgreSQL, however many write at once.

A reader pages logs with `after=<last id seen>`: a line committed later with a smaller id
than one already read would be skipped for good. These run on a real PostgreSQL.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text

from provisioner.lifecycle import Status
from provisioner.store import records
from provisioner.store.store import Store
from tests.polling import wait_until
from tests.postgres import PostgresCluster
from tests.stored import stored_task


class Reader:
    """A follower of a task's logs as the API's `after=` paging does it."""

    def __init__(self, store: Store, task_id: str) -> None:
        self.store, self.task_id, self.after, self.seen = store, task_id, 0, []

    def poll(self) -> None:
        for row in self.store.logs(self.task_id, after=self.after):
            self.seen.append(row["content"])
            self.after = row["id"]


def lines(writer: int, batch: int, size: int = 3) -> list[Any]:
    return [
        {"type": "output", "content": f"w{writer}-b{batch}-{i}", "seq": None} for i in range(size)
    ]


def test_a_writer_committing_late_is_not_skipped(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = stored_task(pg_store, Status.ACTIVE)
    inserted, release = threading.Event(), threading.Event()
    real_run = records._BulkLogInsert.run
    slow = threading.local()

    def run(self: Any, conn: Any, rows: list[Any]) -> int:
        added = real_run(self, conn, rows)
        if getattr(slow, "on", False):  # the first writer: ids taken, not yet committed
            inserted.set()
            release.wait(30)
        return added

    monkeypatch.setattr(records._BulkLogInsert, "run", run)

    def first() -> None:
        slow.on = True
        pg_store.append_logs(task.id, lines(1, 0))

    second_done = threading.Event()

    def second() -> None:
        pg_store.append_logs(task.id, lines(2, 0))
        second_done.set()

    one = threading.Thread(target=first)
    one.start()
    wait_until(inserted.is_set, what="the first writer to insert")
    two = threading.Thread(target=second)
    two.start()

    def waiting_on_a_lock() -> bool:
        with pg_store.db.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted")
                ).scalar()
            )

    # the second writer either waits for the first (ordered) or has committed past it
    wait_until(lambda: second_done.is_set() or waiting_on_a_lock(), what="the second writer")
    reader = Reader(pg_store, task.id)
    reader.poll()
    release.set()
    one.join(30)
    two.join(30)
    reader.poll()
    assert sorted(reader.seen) == sorted(e["content"] for e in lines(1, 0) + lines(2, 0))
    assert reader.seen[:3] == [e["content"] for e in lines(1, 0)]  # in commit order


def test_many_concurrent_writers_and_a_polling_reader_miss_nothing(pg_store: Store) -> None:
    task = stored_task(pg_store, Status.ACTIVE)
    writers, batches = 4, 40
    done = threading.Event()
    reader = Reader(pg_store, task.id)

    def write(w: int) -> None:
        for b in range(batches):
            pg_store.append_logs(task.id, lines(w, b))

    def read() -> None:
        while not done.is_set():
            reader.poll()

    polling = threading.Thread(target=read)
    polling.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    polling.join(30)
    reader.poll()
    assert len(reader.seen) == writers * batches * 3
    assert len(set(reader.seen)) == len(reader.seen)


def test_writers_of_other_tasks_do_not_wait(pg_store: Store) -> None:
    busy, other = stored_task(pg_store, Status.ACTIVE), stored_task(pg_store, Status.ACTIVE)
    with pg_store.db.begin() as conn:  # a transaction holding `busy`'s log lock
        records._lock_task_logs(conn, {busy.id})
        pg_store.append_logs(other.id, lines(1, 0))  # another connection: not held up
    assert len(pg_store.logs(other.id)) == 3


def test_the_pool_is_sized_from_the_config(
    postgres_cluster: PostgresCluster, tmp_path: Any
) -> None:
    from provisioner import paths

    (tmp_path / "config.yaml").write_text("database: {pool_size: 25, max_overflow: 5}\n")
    url = postgres_cluster.database()
    store = Store(url, pool=paths.database_pool(tmp_path))
    try:
        assert store.db.pool.size() == 25  # type: ignore[attr-defined]
        assert store.db.pool._max_overflow == 5  # type: ignore[attr-defined]
    finally:
        store.close()
        postgres_cluster.drop(url)


@pytest.mark.parametrize(
    "body",
    ["database: [1]", "database: {pool_size: 0}", "database: {pool_size: true}",
     "database: {max_overflow: -1}", "database: {pool_size: '5; drop'}",
     "database: {pool_size: 99999999}", "database: {pools: 3}"],
)  # fmt: skip
def test_a_bad_pool_setting_is_refused_naming_it(tmp_path: Any, body: str) -> None:
    from provisioner import paths
    from provisioner.errors import DockyardError

    (tmp_path / "config.yaml").write_text(body + "\n")
    with pytest.raises(DockyardError) as caught:
        paths.database_pool(tmp_path)
    assert "config.yaml: database" in str(caught.value)
