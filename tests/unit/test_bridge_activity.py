"""Unit tests for the bridge's prompt queue and working/idle state machine (fake clock)."""

from __future__ import annotations

from provisioner.bridge.runtime.activity import (
    DELIVERED,
    EXITED,
    IDLE,
    QUEUED,
    STARTING,
    TAKEN,
    WORKING,
    Activity,
    Prompt,
)

QUIET = 0.25
TAKE_TIMEOUT = 10.0


def started_at_prompt() -> Activity:
    """An agent that printed its prompt at t=0 and has been quiet since: idle at t=1."""
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0)
    activity.on_output(0.0, at_prompt=True)
    activity.tick(1.0)
    assert activity.state(1.0) == IDLE
    return activity


def test_starting_until_first_prompt_and_quiet() -> None:
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0)
    assert activity.state(0.0) == STARTING
    activity.on_output(0.1, at_prompt=False)
    assert activity.state(5.0) == STARTING
    activity.on_output(5.0, at_prompt=True)
    assert activity.state(5.1) == STARTING  # at the prompt but not yet quiet
    assert activity.state(5.3) == IDLE


def test_prompt_forces_working_immediately() -> None:
    activity = started_at_prompt()
    activity.enqueue("p1", "hello", now=1.0)
    assert activity.state(1.0) == WORKING
    assert activity.queued == 1


def test_idle_only_after_taken_quiet_and_at_prompt() -> None:
    activity = started_at_prompt()
    activity.enqueue("p1", "hello", now=1.0)
    prompt = activity.next_delivery(1.0)
    assert prompt is not None and prompt.state == DELIVERED and prompt.delivered_at == 1.0
    # delivered, not taken: working however long the terminal stays quiet and at the prompt
    assert activity.state(5.0) == WORKING
    activity.on_output(5.0, at_prompt=False)  # the agent starts answering: taken
    assert prompt.state == TAKEN and prompt.taken_at == 5.0 and not prompt.assumed
    assert activity.state(9.0) == WORKING  # quiet, but not at the prompt
    activity.on_output(9.0, at_prompt=True)  # back at the prompt
    assert activity.state(9.1) == WORKING  # at the prompt, not yet quiet
    assert activity.state(9.25) == IDLE


def test_queue_delivers_in_order_one_at_a_time() -> None:
    activity = started_at_prompt()
    for i in range(3):
        activity.enqueue(f"p{i}", f"prompt {i}", now=1.0)
    now = 1.0
    delivered = []
    for _ in range(3):
        prompt = activity.next_delivery(now)
        assert prompt is not None
        delivered.append(prompt.id)
        # nothing more goes out until this one is taken and the agent is back at its prompt
        assert activity.next_delivery(now + 0.5) is None
        activity.on_output(now + 1.0, at_prompt=False)
        assert activity.next_delivery(now + 2.0) is None  # working, not at the prompt
        activity.on_output(now + 3.0, at_prompt=True)
        assert activity.next_delivery(now + 3.1) is None  # not quiet yet
        now += 4.0
    assert delivered == ["p0", "p1", "p2"]
    assert [p.state for p in activity.prompts] == [TAKEN] * 3
    assert activity.state(now) == IDLE


def test_take_timeout_marks_taken_assumed() -> None:
    activity = started_at_prompt()
    activity.enqueue("p1", "hello", now=1.0)
    prompt = activity.next_delivery(1.0)
    assert prompt is not None
    assert activity.next_deadline(2.0) == 1.0 + TAKE_TIMEOUT
    activity.tick(1.0 + TAKE_TIMEOUT - 0.01)
    assert prompt.state == DELIVERED
    activity.tick(1.0 + TAKE_TIMEOUT)
    assert prompt.state == TAKEN and prompt.assumed
    assert activity.state(1.0 + TAKE_TIMEOUT) == IDLE


def test_no_delivery_before_the_agent_is_ready_or_after_exit() -> None:
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0)
    activity.enqueue("p1", "early", now=0.0)
    assert activity.next_delivery(0.1) is None  # still starting
    activity.on_output(0.5, at_prompt=True)
    prompt = activity.next_delivery(0.8)
    assert prompt is not None and prompt.id == "p1"
    activity.enqueue("p2", "late", now=1.0)
    activity.on_exit(3, now=1.0)
    assert activity.state(2.0) == EXITED
    assert activity.exit_code == 3
    assert activity.next_delivery(5.0) is None
    late = activity.find("p2")
    assert late is not None and late.state == QUEUED


def test_restore_requeues_untaken_in_order() -> None:
    old = [
        Prompt("a", "done", state=TAKEN, queued_at=1, delivered_at=2, taken_at=3),
        Prompt("b", "lost in delivery", state=DELIVERED, queued_at=4, delivered_at=5),
        Prompt("c", "waiting", state=QUEUED, queued_at=6),
    ]
    saved = [Prompt.from_state(p.to_state()) for p in old]
    activity = Activity(QUIET, TAKE_TIMEOUT, now=10.0)
    activity.restore(saved)
    assert [p.state for p in activity.prompts] == [TAKEN, QUEUED, QUEUED]
    assert activity.queued == 2
    activity.on_output(10.0, at_prompt=True)
    first = activity.next_delivery(11.0)
    assert first is not None and first.id == "b"
    activity.on_output(11.5, at_prompt=True)
    second = activity.next_delivery(12.0)
    assert second is not None and second.id == "c"
    assert activity.next_delivery(20.0) is None  # "a" was taken: never delivered again


def test_prompt_api_view_has_iso_times() -> None:
    prompt = Prompt("p", "x", queued_at=1_700_000_000.0)
    view = prompt.to_dict()
    assert view["queued_at"] == "2023-11-14T22:13:20.000Z"
    assert view["delivered_at"] is None and view["taken_at"] is None
    assert view["state"] == QUEUED and view["assumed"] is False


def test_next_deadline_follows_quiet_period() -> None:
    activity = started_at_prompt()
    activity.on_output(2.0, at_prompt=False)
    assert activity.next_deadline(2.1) == 2.0 + QUIET
    assert activity.next_deadline(3.0) is None


# -- prompt_last: the quiet window ends at the prompt -----------------------------------


def test_prompt_last_is_idle_as_soon_as_a_write_leaves_it_at_the_prompt() -> None:
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0, prompt_last=True)
    activity.on_output(0.1, at_prompt=False)  # its banner: still starting, however quiet
    assert activity.state(5.0) == STARTING
    activity.on_output(5.0, at_prompt=True)  # the prompt: idle at once, no quiet window
    assert activity.state(5.0) == IDLE
    assert activity.next_deadline(5.0) is None


def test_prompt_last_delivers_at_once_and_is_idle_on_the_next_prompt() -> None:
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0, prompt_last=True)
    activity.enqueue("p1", "hello", now=0.0)
    activity.on_output(0.2, at_prompt=True)
    prompt = activity.next_delivery(0.2)  # the quiet window would have held it to 0.45
    assert prompt is not None and prompt.delivered_at == 0.2
    assert activity.state(0.2) == WORKING
    activity.on_output(0.3, at_prompt=False)  # the echo and its answer: taken, working
    assert prompt.state == TAKEN
    assert activity.state(9.0) == WORKING  # quiet for long, but not at the prompt
    activity.on_output(9.0, at_prompt=True)
    assert activity.state(9.0) == IDLE


def test_prompt_last_still_needs_the_prompt_and_the_take() -> None:
    """Only the quiet time is waived: output away from the prompt is working, and a
    delivered prompt the agent shows no sign of taking still keeps it working."""
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0, prompt_last=True)
    activity.on_output(0.0, at_prompt=True)
    activity.enqueue("p1", "hello", now=0.0)
    assert activity.next_delivery(0.0) is not None
    assert activity.state(1.0) == WORKING  # delivered, not taken
    activity.on_output(1.0, at_prompt=False)
    assert activity.state(1.0) == WORKING
    assert not activity.quiet(1.1)  # away from the prompt the quiet time counts again
    assert activity.quiet(1.0 + QUIET)


def test_without_prompt_last_the_prompt_waits_for_the_quiet_time() -> None:
    activity = Activity(QUIET, TAKE_TIMEOUT, now=0.0)
    activity.on_output(5.0, at_prompt=True)
    assert activity.state(5.0) == STARTING
    assert activity.next_deadline(5.0) == 5.0 + QUIET
