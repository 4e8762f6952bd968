"""The follower's decision from one bridge reply (pure: no bridge, no store)."""

from __future__ import annotations

from provisioner.engine.follower import Step, decide

OUT = [{"type": "output", "content": "Done: fix it", "seq": 3}]


def test_idle_only_once_every_prompt_was_taken() -> None:
    waiting = decide("idle", {}, OUT, True, "working", "")
    assert waiting == Step("update", state="working", message="Done: fix it")
    done = decide("idle", {}, OUT, False, "working", "Done: fix it")
    assert done == Step("update", state="idle", message="Done: fix it")


def test_nothing_new_is_no_update() -> None:
    assert decide("idle", {}, [], False, "idle", "Done").kind == "none"
    assert decide("working", {}, [], False, "working", "Done").kind == "none"


def test_the_hooks_reason_is_kept_only_when_the_bridge_state_is_taken() -> None:
    said = decide("idle", {"state_reason": "hook stop"}, [], False, "working", "m")
    assert said == Step("update", state="idle", message="m", reason="hook stop")
    # idle from the bridge, but a prompt is still queued: working, and not for the hook's reason
    held = decide("idle", {"state_reason": "hook stop"}, [], True, "idle", "m")
    assert held == Step("update", state="working", message="m", reason="")


def test_an_exit_is_judged_after_the_last_lines_are_stored() -> None:
    assert decide("exited", {"exit_code": 3}, OUT, False, "working", "").kind == "none"
    assert decide("exited", {"exit_code": 3}, [], False, "working", "") == Step(
        "exited", exit_code=3
    )


def test_setup_failure_and_stopping() -> None:
    assert decide("setup_failed", {"exit_code": 2}, OUT, False, None, "") == Step(
        "setup_failed", exit_code=2
    )
    assert decide("stopping", {}, OUT, False, "working", "").kind == "none"
