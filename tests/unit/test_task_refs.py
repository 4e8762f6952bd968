"""Task references: ids, names and id prefixes, taken literally and scoped to an owner."""

from __future__ import annotations

import pytest

from provisioner.errors import TaskConflict, TaskNotFound
from provisioner.store.store import Store
from tests.stored import stored_task


@pytest.mark.parametrize("ref", ["________", "%%%%%%%%", "________-%", "%", "_" * 36])
def test_like_wildcards_in_a_ref_match_nothing(store: Store, ref: str) -> None:
    stored_task(store)
    with pytest.raises(TaskNotFound):
        store.get(ref)


def test_an_id_prefix_still_finds_its_task(store: Store) -> None:
    task = stored_task(store)
    assert store.get(task.id[:8]).id == task.id
    assert store.get(task.name).id == task.id


def test_a_ref_is_looked_up_among_its_owners_tasks(store: Store) -> None:
    alices = stored_task(store, owner="alice", name="fix-it")
    bobs = stored_task(store, owner="bob", name="fix-it")
    assert store.get("fix-it", owner="alice").id == alices.id
    assert store.get("fix-it", owner="bob").id == bobs.id
    for ref in (alices.id, alices.id[:8], "fix-it"):
        with pytest.raises(TaskNotFound):
            store.get(ref, owner="carol")
    with pytest.raises(TaskNotFound):
        store.get(bobs.id, owner="alice")
    with pytest.raises(TaskConflict, match="use the task's id"):
        store.get("fix-it")  # two owners' tasks: say which


def test_a_long_ref_is_cut_in_the_message(store: Store) -> None:
    with pytest.raises(TaskNotFound) as info:
        store.get("x" * 10_000)
    assert len(str(info.value)) < 200


def test_only_one_delete_removes_a_task(store: Store) -> None:
    task = stored_task(store)
    assert store.delete(task.id) is True
    assert store.delete(task.id) is False
