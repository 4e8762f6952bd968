"""The pure decisions of dependencies, backlog promotion, sprints and epic order."""

from __future__ import annotations

from provisioner.dependencies import (
    Dependency,
    Parked,
    Verdict,
    decide,
    dependency_order,
    find_cycle,
    sprint_dependencies,
    to_promote,
)
from provisioner.lifecycle import Status


def _found(*deps: tuple[str, str, Status]) -> dict[str, Dependency | None]:
    return {i: Dependency(i, name, status) for i, name, status in deps}


def test_ready_only_when_every_dependency_completed() -> None:
    found = _found(("a", "build-1a2b", Status.COMPLETED), ("b", "test-3c4d", Status.COMPLETED))
    assert decide(["a", "b"], "fail", found).verdict == Verdict.READY
    assert decide([], "fail", {}).verdict == Verdict.READY


def test_waiting_names_what_it_waits_for_in_order() -> None:
    found = _found(
        ("a", "build-1a2b", Status.ACTIVE),
        ("b", "test-3c4d", Status.PENDING),
        ("c", "lint-5e6f", Status.COMPLETED),
        ("d", "docs-7a8b", Status.ERROR),  # resumable: still waited for
    )
    decision = decide(["a", "b", "c", "d"], "fail", found)
    assert decision.verdict == Verdict.WAIT
    assert decision.message == (
        "waiting for dependencies: build-1a2b (active), test-3c4d (pending), docs-7a8b (error)"
    )


def test_a_dead_dependency_fails_the_dependent_naming_it() -> None:
    found = _found(("a", "build-1a2b", Status.FAILED), ("b", "test-3c4d", Status.ACTIVE))
    decision = decide(["b", "a"], "fail", found)
    assert decision.verdict == Verdict.FAIL
    assert decision.message == "dependency build-1a2b failed"
    cancelled = decide(["a"], "fail", _found(("a", "x", Status.CANCELLED)))
    assert cancelled.message == "dependency x was cancelled"
    # a deleted dependency counts as cancelled; only its id is left to name it
    deleted = decide(["0123456789abcdef"], "fail", {})
    assert (deleted.verdict, deleted.message) == (Verdict.FAIL, "dependency 01234567 was deleted")


def test_with_the_wait_policy_it_keeps_waiting_and_says_what_would_help() -> None:
    found = _found(("a", "build-1a2b", Status.FAILED))
    decision = decide(["a"], "wait", found)
    assert decision.verdict == Verdict.WAIT
    assert decision.message == (
        "waiting for dependencies: build-1a2b failed; retry it "
        "(dockyard task retry build-1a2b) or delete this task"
    )
    gone = decide(["0123456789abcdef"], "wait", {})
    assert gone.message == "waiting for dependencies: 01234567 was deleted; delete this task"


def test_cycles_are_found_with_their_path() -> None:
    assert find_cycle({"new": ["a"], "a": ["b"], "b": []}, "new") is None
    assert find_cycle({"new": ["a"], "a": ["b"], "b": ["a"]}, "new") == ["a", "b", "a"]
    assert find_cycle({"new": ["new"]}, "new") == ["new", "new"]
    # a diamond is no cycle
    assert find_cycle({"n": ["a", "b"], "a": ["c"], "b": ["c"], "c": []}, "n") is None
    # a long chain does not exhaust the stack
    chain = {str(i): [str(i + 1)] for i in range(5000)}
    assert find_cycle(chain, "0") is None
    chain["5000"] = ["2500"]
    cycle = find_cycle(chain, "0")
    assert cycle is not None and cycle[0] == cycle[-1] == "2500" and len(cycle) == 2502


def test_a_sprint_task_waits_for_the_open_earlier_ones() -> None:
    earlier = [
        ("a", Status.COMPLETED),
        ("b", Status.FAILED),
        ("c", Status.ACTIVE),
        ("d", Status.PENDING),
        ("e", Status.BACKLOG),
    ]
    assert sprint_dependencies(earlier) == ["c", "d", "e"]


def test_backlog_moves_when_nothing_for_its_target_waits() -> None:
    backlog = [
        Parked("low", "builder", 10, "2026-01-01T00:00:01Z"),
        Parked("high", "builder", 90, "2026-01-01T00:00:02Z"),
        Parked("review", "reviewer", 50, "2026-01-01T00:00:00Z"),
        Parked("plain", None, 50, "2026-01-01T00:00:00Z"),
    ]
    # one per target per pass, the highest priority first
    assert sorted(to_promote(backlog, [])) == ["high", "plain", "review"]
    # a waiting task of a target holds back that target's backlog and the default route's
    assert to_promote(backlog, ["builder"]) == ["review"]
    # the default route shares every workspace: anything waiting holds its backlog
    assert sorted(to_promote(backlog, [None])) == ["high", "review"]


def test_epic_order_follows_dependencies_then_age() -> None:
    tasks = [
        ("deploy", ["test"], "t3"),
        ("test", ["build", "outside"], "t1"),
        ("build", [], "t2"),
        ("docs", [], "t4"),
    ]
    assert dependency_order(tasks) == ["build", "test", "deploy", "docs"]
