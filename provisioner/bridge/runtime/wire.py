"""The vocabulary the bridge, the server and the CLI share on the wire (stdlib only: the
bridge imports it from its zipapp, the CLI without loading anything heavy).

Prompt delivery states, the bridge's states around its agent, and the records that cross
the wire as JSON: a transcript entry, the bridge's status, its log poll reply, a prompt's
delivery, and a log entry as the server stores and serves it. They are TypedDicts: the
JSON is plain dicts on both sides, and the types name its fields once. (The bridge's
config has one wire form too: runtime.config.config_document.)

A reader of the bridge may meet an older bridge still running in a workspace: it reads
with .get() and a default, never assuming a field a newer bridge added.
"""

# No `from __future__ import annotations` here: TypedDict reads NotRequired only from
# evaluated annotations, and tests compare the records' fields with the bridge's schemas.
from typing import Any, NotRequired, TypedDict, cast

# A prompt's delivery: queued (sent, not yet typed), delivered (typed, the agent has not
# started on it), taken (the agent took it), failed (it could not be typed whole or was
# refused; the reason says why). Taken and failed are final.
QUEUED, DELIVERED, TAKEN, FAILED = "queued", "delivered", "taken", "failed"
PROMPT_STATES = (QUEUED, DELIVERED, TAKEN, FAILED)
PROMPT_FINISHED = (TAKEN, FAILED)

# The bridge's state: the agent's (starting, working, idle, exited), and its own around
# it (the setup script before the agent, instead of it when it failed, while stopping).
STARTING, WORKING, IDLE, EXITED = "starting", "working", "idle", "exited"
SETUP, SETUP_FAILED, STOPPING = "setup", "setup_failed", "stopping"
BRIDGE_STATES = (SETUP, SETUP_FAILED, STARTING, WORKING, IDLE, EXITED, STOPPING)

# A log entry's type: a prompt or keys typed into the terminal, a line the terminal
# showed, and (the server's own, never the bridge's) a provisioning line.
INPUT, OUTPUT, SYSTEM = "input", "output", "system"
# Where an output line came from, when not the agent's terminal as it is: the setup
# script; the agent's hooks (what it said, state_source hooks); the screen of an agent
# whose hooks speak for it (a TUI's chrome, kept but marked). The store keeps 16 chars.
SOURCE_SETUP, SOURCE_AGENT, SOURCE_SCREEN = "setup", "agent", "screen"


class LogEntry(TypedDict):
    """One transcript line as the bridge keeps and serves it (GET /dockyard/log).

    `seq` starts at 1 and grows by one per entry; a reader asks for entries after the
    last one it has. The optional fields are present only when they say something.
    """

    seq: int
    type: str  # INPUT | OUTPUT
    content: str
    time: str  # ISO 8601 UTC with milliseconds
    prompt_id: NotRequired[str]  # the prompt (or raw keys) an input entry typed
    raw: NotRequired[bool]  # an input of raw keys, not a prompt
    partial: NotRequired[bool]  # an unfinished line shown early (a prompt, progress)
    source: NotRequired[str]  # SOURCE_SETUP | SOURCE_AGENT | SOURCE_SCREEN


# The fields every LogEntry has, in the order the transcript writes them.
LOG_ENTRY_HEAD = ("seq", "type", "content", "time")


class StoredLogEntry(TypedDict):
    """A log entry as the server stores and serves it (GET /api/v2/tasks/{ref}/logs).

    A bridge entry (its `seq`, `prompt_id` and `source` kept) or a provisioning line
    (type SYSTEM, no seq); `id` is the store's row id, the `after` of the next page;
    `delivery` is the state of the prompt an input entry typed.
    """

    id: int  # (the CLI shows prompts not yet typed after the stored lines, with id None)
    seq: int | None
    type: str  # INPUT | OUTPUT | SYSTEM
    content: str
    time: str
    prompt_id: str | None
    source: str | None
    delivery: str | None  # a PROMPT_STATES value


# StoredLogEntry's keys in order: the columns the store reads and the API writes.
STORED_LOG_KEYS: tuple[str, ...] = tuple(StoredLogEntry.__annotations__)


class PromptRecord(TypedDict):
    """A prompt's delivery as the bridge reports it (GET /dockyard/prompts, log replies)."""

    id: str
    content: str
    state: str  # a PROMPT_STATES value
    queued_at: str | None
    delivered_at: str | None
    taken_at: str | None
    assumed: bool  # taken after take_timeout_s without a sign from the agent
    reason: str  # why it failed


class SetupStatus(TypedDict):
    """The setup script's part of the bridge's status."""

    state: str  # none | running | done | failed
    exit_code: int | None


class DockyardStatus(TypedDict):
    """Dockyard's part of the bridge's GET /status: `status["dockyard"]`."""

    state: str  # a BRIDGE_STATES value
    exit_code: int | None  # the agent's, or the setup script's when it failed
    last_seq: int
    queued_prompts: int
    state_source: str  # screen | hooks
    state_reason: str  # why working or idle, when hooks decide ("hook stop")
    hooks: dict[str, object] | None
    agent_pid: int | None
    setup: SetupStatus
    # read from the workspace's cgroup once the agent has exited (None before, or unknown)
    oom_kills: int | None
    pids_limit_hits: int | None


class BridgeStatus(TypedDict):
    """The bridge's GET /status: agentapi's fields, then Dockyard's."""

    status: str  # agentapi's: stable (idle) | running
    agent_type: str
    transport: str
    dockyard: DockyardStatus


class LogReply(TypedDict):
    """The bridge's GET /dockyard/log reply; with `prompts=` asked, the recent prompts'
    deliveries and the counter that moves whenever one moves; with `reports_after=`, the
    agent's reports after that seq."""

    entries: list[LogEntry]
    last_seq: int
    status: BridgeStatus
    prompts_version: NotRequired[int]
    prompts: NotRequired[list[PromptRecord]]
    # with `reports_after=` asked: the agent's reports after it (runtime/reports.py keeps
    # their shape) and the newest report's seq
    reports: NotRequired[list[dict[str, Any]]]
    reports_last_seq: NotRequired[int]


def reply_status(reply: LogReply | None) -> DockyardStatus:
    """`reply["status"]["dockyard"]`: empty when there is no reply or it has none."""
    status: dict[str, object] = dict(reply.get("status") or {}) if reply else {}
    found = status.get("dockyard")
    return cast(DockyardStatus, found if isinstance(found, dict) else {})
