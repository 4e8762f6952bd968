"""Tables: tasks, their event history, and their logs (transcript + provisioning lines)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Row ids of the tables that grow with use: 64-bit on PostgreSQL (a busy shared store can
# pass 2**31 log lines), SQLite's INTEGER PRIMARY KEY (the rowid, already 64-bit) there.
RowId = Integer().with_variant(BigInteger(), "postgresql")

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("template", String(128), nullable=False),
    Column("template_version", String(64), nullable=False),
    Column("preset", String(128)),
    Column("parameters", JSON, nullable=False),  # as shown: secrets redacted
    Column("resolved", JSON, nullable=False),  # as rendered into the workspace
    Column("prompt", Text, nullable=False),
    Column("priority", Integer, nullable=False, default=50),
    Column("status", String(16), nullable=False),
    Column("state", String(16)),
    Column("phase", String(16)),
    Column("message", Text, nullable=False, default=""),
    Column("error_class", String(16)),
    Column("workspace", JSON),
    Column("bridge_token", String(128), nullable=False),  # never returned by the API
    # the template's lifecycle, pinned at creation
    Column("policy", JSON, nullable=False, server_default="{}"),
    # [{phase, started_at, duration_s}] of the last start
    Column("phases", JSON, nullable=False, server_default="[]"),
    Column("state_changed_at", String(32)),
    Column("lease_owner", String(128)),  # the engine provisioning it, while initializing
    Column("lease_until", Float),
    # task | pool (a warm member)
    Column("kind", String(8), nullable=False, default="task", server_default="task"),
    # when it last started waiting (a resume that waits for capacity); its place in the
    # queue, with created_at standing in when it never left
    Column("queued_at", String(32)),
    # the queue: what it is, where it goes, what it waits for, how it ended, what it cost
    Column("title", String(256), nullable=False, server_default=""),
    Column("tags", JSON, nullable=False, server_default="[]"),
    Column("task_type", String(64)),
    Column("epic", String(128)),
    Column("source", String(16), nullable=False, server_default="api"),
    Column("created_by", String(64)),
    Column("depends_on", JSON, nullable=False, server_default="[]"),
    Column("on_dependency_failure", String(8), nullable=False, server_default="fail"),
    # 1 while a pending task waits for its dependencies: it takes no place in the
    # capacity queue then, so it never stands in front of tasks that could start
    Column("blocked", Boolean, nullable=False, server_default="0"),
    Column("action", String(16), nullable=False, server_default="queue"),
    Column("target", String(64)),
    Column("codebase", String(128)),
    Column("parent_id", String(36)),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("retry_at", String(32)),
    Column("outcome", String(16)),
    Column("error_code", String(64)),
    Column("output", Text),
    Column("progress", Text),
    Column("question", Text),
    Column("tokens_in", BigInteger, nullable=False, server_default="0"),
    Column("tokens_out", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    Column("model", String(128)),
    Column("finished_at", String(32)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    # the newest report of its agent (dockyard-task) the follower applied: the bridge's
    # report sequence number it reads on from; NULL: none yet
    Column("report_seq", Integer),
    # a task of a `workers: true` target: claimed by workers, never provisioned
    Column("queue_only", Boolean, nullable=False, server_default="0"),
    # the claim of a queue-only task: who holds it, under which session, until when
    Column("claimed_by", String(64)),
    Column("session_id", String(128)),
    Column("worker", String(64)),
    Column("claim_until", String(32)),
    # an offer (Agent Swarm): the worker it is (to be) offered to, and until when
    Column("offer_to", String(64)),
    Column("offer_until", String(32)),
    # the schedule whose fire time made it (source: cron); NULL for any other task
    Column("schedule_id", String(16)),
    # the repository cloned into the workspace: where the task branch started, and the
    # newest checkpoint commit on it (NULL: no repository, no checkpoint yet)
    Column("base_commit", String(64)),
    Column("checkpoint_commit", String(64)),
    # the cluster node its disk lives on (swarm backend): every start is pinned there
    Column("node", String(128)),
    UniqueConstraint("owner", "name", name="uq_task_owner_name"),
)

events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    # status | phase | state | priority | promote | preempt | outcome | progress | ask |
    # usage | retry | dependency ...
    Column("kind", String(16), nullable=False),
    Column("from_value", String(32)),
    Column("to_value", String(32)),
    Column("actor", String(64), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("time", String(32), nullable=False),
    # what the event answers, once: a workspace report's id (applied at most once)
    Column("ref", String(64)),
    # the id of the transaction that wrote it, on PostgreSQL (its own default fills it
    # in): readers of every task's events read them in commit order (store/commit_order)
    Column("xact", BigInteger),
    Index("ix_events_task", "task_id", "id"),
    Index("ix_events_xact", "xact", "id"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer),  # the bridge's sequence number; NULL for provisioning lines
    Column("type", String(8), nullable=False),  # input | output | system
    Column("content", Text, nullable=False),
    Column("time", String(32), nullable=False),
    Column("prompt_id", String(64)),
    # where an output line came from: agent (its hooks), screen (a hooks agent's screen),
    # setup (the setup script); NULL for an agent whose screen is its output
    Column("source", String(16)),
    UniqueConstraint("task_id", "seq", name="uq_logs_task_seq"),
    Index("ix_logs_task", "task_id", "id"),
)

prompts = Table(
    "prompts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("content", Text, nullable=False),
    Column("state", String(16), nullable=False),  # queued | delivered | taken | failed
    Column("reason", Text),  # why it failed
    Column("handed", Integer, nullable=False, default=0),  # 1 once the bridge has it
    Column("created_at", String(32), nullable=False),
    Column("delivered_at", String(32)),
    Column("taken_at", String(32)),
    Index("ix_prompts_task", "task_id", "created_at"),
)

# Named locks: a transaction that must see every task as of now (capacity admission)
# first bumps its row, which serializes it against every other such transaction on
# SQLite (the write lock) and PostgreSQL (the row lock) alike.
locks = Table(
    "locks",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("taken", Integer, nullable=False, default=0),
)

# Server-wide settings that every server sharing the database must see alike, and that
# outlive a restart: one JSON value per name (e.g. `drain`: admission stopped).
settings = Table(
    "settings",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

# People and programs that may call the API. A token is shown once and stored only as its
# SHA-256, so a leaked database gives no working credential.
users = Table(
    "users",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("role", String(16), nullable=False),  # admin | member
    Column("created_at", String(32), nullable=False),
    Column("disabled_at", String(32)),  # set when the user is removed; its tokens stop working
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),  # public: list and revoke by it
    Column("user_name", String(32), ForeignKey("users.name"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32)),  # NULL: never
    Column("revoked_at", String(32)),
    Column("last_used_at", String(32)),
    # set on a task's own token: it acts on that task and the tasks it creates only,
    # and stops working when the task ends or is deleted
    Column("task_id", String(36)),
    Index("ix_tokens_user", "user_name"),
)

# Acts that are not a task's own history: authentication failures and admin acts.
audit = Table(
    "audit",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("time", String(32), nullable=False),
    Column("actor", String(64), nullable=False),  # user:NAME, or anonymous
    Column("action", String(64), nullable=False),  # e.g. auth.failed, token.create
    Column("target", String(256), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("remote", String(64), nullable=False, default=""),
    Index("ix_audit_time", "id"),
)

# Webhook subscriptions. The secret is kept as given (unlike a token's hash): the
# dispatcher signs every request with it. `after_event` is the newest event when it was
# made: a subscription gets only what happens after.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("owner", String(32), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", JSON, nullable=False),
    Column("task_id", String(36)),  # one task only, or NULL: the owner's (or all) tasks
    Column("all_tasks", Integer, nullable=False, default=0),  # admins: every user's tasks
    Column("secret", String(256), nullable=False),
    Column("after_event", BigInteger, nullable=False, default=0),
    Column("created_at", String(32), nullable=False),
    Index("ix_webhooks_owner", "owner"),
)

# One row per (subscription, event) to send: unique, so servers sharing a database that
# both see an event make it once; the lease says which server is sending it now. The body
# is kept as built, so a retry sends the same bytes and a deleted task's events still go.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(48), primary_key=True),  # <webhook id>-<event id>
    Column("webhook_id", String(16), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("event", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(12), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("last_response", Text),  # the receiver's answer, cut to 1 KiB
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("delivered_at", String(32)),
    UniqueConstraint("webhook_id", "event_id", name="uq_delivery_hook_event"),
    Index("ix_deliveries_pending", "state", "webhook_id", "event_id"),
)

# Positions of readers of the events table that must survive restarts (the webhook
# dispatcher's: every event up to `value` has been turned into deliveries).
cursors = Table(
    "cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False, default=0),
)

# What A2A adds to a task (provisioner/server/a2a): the conversation it belongs to (a
# client-chosen contextId; a task without a row here is its own context) and its push
# notification configs, one row each. Both go with the task (ON DELETE CASCADE).
a2a_contexts = Table(
    "a2a_contexts",
    metadata,
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("context_id", String(128), nullable=False),
    Index("ix_a2a_contexts_context", "context_id"),
)

a2a_push_configs = Table(
    "a2a_push_configs",
    metadata,
    Column("task_id", String(36), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("config_id", String(128), nullable=False),
    Column("config", JSON, nullable=False),  # the TaskPushNotificationConfig as JSON
    Column("created_at", String(32), nullable=False),
    # its deliveries' webhook_id in webhook_deliveries ("a2a-" + 12 hex), and how far it
    # has followed its task's events (provisioner.server.a2a.push.Seen)
    Column("hook_id", String(16), unique=True),
    Column("seen", JSON),
    UniqueConstraint("task_id", "config_id", name="uq_a2a_push_task_config"),
)

# Workers that claim queue-only tasks (issue 12): a named program with a token, the
# codebases and targets it takes work for, and when it was last heard from.
workers = Table(
    "workers",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("codebases", JSON, nullable=False, server_default="[]"),
    Column("targets", JSON, nullable=False, server_default="[]"),
    Column("registered_at", String(32), nullable=False),
    Column("last_seen", String(32), nullable=False),
)

# Schedules (cron): a task made from a template and prompt at each fire time. `since` is
# when it last started counting fire times (its creation, or its resume: nothing owed
# while paused); `considered` is the newest fire time any server has dealt with.
schedules = Table(
    "schedules",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("owner", String(32), nullable=False),
    Column("name", String(40), nullable=False),
    Column("cron", String(120), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("template", String(128)),
    Column("preset", String(128)),
    Column("parameters", JSON, nullable=False),
    Column("target", String(64)),
    Column("prompt", Text, nullable=False),
    Column("catch_up", String(8), nullable=False),
    Column("concurrency", String(8), nullable=False),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("since", String(32), nullable=False),
    Column("considered", String(32)),
    Column("created_by", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("owner", "name", name="uq_schedule_owner_name"),
)

# One row per (schedule, fire time) dealt with: unique, so of the servers sharing the
# database exactly one makes each fire time's task. state: claimed (being made; taken
# over once `until` passes, by a server that then finds the task by its name), started,
# queued (waits for the earlier run, concurrency: queue), skipped, failed.
schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("schedule_id", String(16), nullable=False),
    Column("fire_at", String(32), nullable=False),
    Column("state", String(8), nullable=False),
    Column("task_id", String(36)),
    Column("reason", Text, nullable=False, server_default=""),
    Column("claimed_by", String(128)),
    Column("until", Float),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("schedule_id", "fire_at", name="uq_schedule_fire"),
    Index("ix_schedule_fires_state", "state", "schedule_id"),
)

# Inbound webhooks: POST /api/v2/triggers/{name}, signed with `secret` (kept as given,
# like a webhook's: it is needed to check every delivery), makes a task of `owner`'s.
triggers = Table(
    "triggers",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(40), nullable=False, unique=True),  # in the URL: one namespace
    Column("owner", String(32), nullable=False),
    Column("secret", String(256), nullable=False),
    Column("form", String(16), nullable=False),  # github-issue | github-comment | generic
    Column("template", String(128)),
    Column("preset", String(128)),
    Column("parameters", JSON, nullable=False),
    Column("target", String(64)),
    Column("prompt_template", Text, nullable=False),
    Column("filter", Text),
    Column("created_by", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
)

# Every delivery to a trigger and what became of it: accepted (task_id), filtered,
# replayed, rejected (why). `delivery_id` is set only for a verified delivery, so the
# unique (trigger, delivery id) ignores a replay and no unsigned request can spend an id.
trigger_deliveries = Table(
    "trigger_deliveries",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("trigger_id", String(16), nullable=False),
    Column("delivery_id", String(128)),
    Column("event", String(64)),
    Column("outcome", String(12), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("task_id", String(36)),
    Column("remote", String(64), nullable=False, server_default=""),
    Column("time", String(32), nullable=False),
    UniqueConstraint("trigger_id", "delivery_id", name="uq_trigger_delivery"),
    Index("ix_trigger_deliveries_trigger", "trigger_id", "id"),
)
