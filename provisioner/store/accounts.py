"""Users, API tokens and the audit trail: the store's part that says who is calling."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from provisioner.auth.tokens import (
    Principal,
    Role,
    check_token_name,
    check_user_name,
    looks_like_token,
    new_token,
    token_hash,
)
from provisioner.errors import ParameterError, TaskConflict, TaskNotFound, Unauthenticated
from provisioner.lifecycle import TERMINAL
from provisioner.model import utcnow
from provisioner.store.schema import audit, tasks, tokens, users

# last_used_at is a hint for `token list`, not a log: write it at most this often per token
_TOUCH_EVERY_S = 60.0
# the audit table keeps this many rows; a flood of failed logins cannot fill the disk
AUDIT_KEEP = 100_000
_AUDIT_PRUNE_EVERY = 1000


def _user_json(row: Any) -> dict[str, Any]:
    return {"name": row.name, "role": row.role, "created_at": row.created_at}


def _token_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user_name,
        "name": row.name,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
    }


class AccountsMixin:
    """Users, tokens and audit entries; mixed into the Store."""

    db: Engine
    _touched: dict[str, float]
    _audit_writes: int

    # users ------------------------------------------------------------------------------
    def create_user(self, name: str, role: Role | str) -> dict[str, Any]:
        """A new user; a name in use by a live user is a conflict (a removed one is revived)."""
        check_user_name(name)
        try:
            role = Role(role)
        except ValueError as exc:
            raise ParameterError(
                f"Unknown role {str(role)[:40]!r}: use admin, member or metrics"
            ) from exc
        now = utcnow()
        with self.db.begin() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is not None and row.disabled_at is None:
                raise TaskConflict(f"A user named {name!r} already exists")
            try:
                if row is None:
                    conn.execute(insert(users).values(name=name, role=role.value, created_at=now))
                else:
                    conn.execute(
                        update(users)
                        .where(users.c.name == name)
                        .values(role=role.value, created_at=now, disabled_at=None)
                    )
            except IntegrityError as exc:  # created by someone else a moment ago
                raise TaskConflict(f"A user named {name!r} already exists") from exc
        return {"name": name, "role": role.value, "created_at": now}

    def user(self, name: str) -> dict[str, Any] | None:
        """A live user, or None."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(users).where(and_(users.c.name == name, users.c.disabled_at.is_(None)))
            ).first()
        return None if row is None else _user_json(row)

    def users(self) -> list[dict[str, Any]]:
        """Live users by name."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(users).where(users.c.disabled_at.is_(None)).order_by(users.c.name)
            ).all()
        return [_user_json(r) for r in rows]

    def remove_user(self, name: str) -> None:
        """Disable a user and revoke their tokens; the last admin cannot be removed."""
        now = utcnow()
        with self.db.begin() as conn:
            row = conn.execute(
                select(users).where(and_(users.c.name == name, users.c.disabled_at.is_(None)))
            ).first()
            if row is None:
                raise TaskNotFound(f"No user {name[:40]!r}", hint="list users: dockyard user list")
            if row.role == Role.ADMIN.value:
                admins = conn.execute(
                    select(func.count()).where(
                        and_(users.c.role == Role.ADMIN.value, users.c.disabled_at.is_(None))
                    )
                ).scalar()
                if (admins or 0) <= 1:
                    raise TaskConflict(f"{name} is the last admin", hint="make another admin first")
            conn.execute(update(users).where(users.c.name == name).values(disabled_at=now))
            conn.execute(
                update(tokens)
                .where(and_(tokens.c.user_name == name, tokens.c.revoked_at.is_(None)))
                .values(revoked_at=now)
            )

    # tokens -----------------------------------------------------------------------------
    def create_token(
        self, user: str, name: str, expires_at: str | None
    ) -> tuple[str, dict[str, Any]]:
        """A new token for a live user: the token itself (shown once) and its record."""
        check_token_name(name)
        if self.user(user) is None:
            raise TaskNotFound(f"No user {user[:40]!r}", hint="list users: dockyard user list")
        token = new_token()
        values = {
            "id": secrets.token_hex(6),
            "user_name": user,
            "name": name,
            "hash": token_hash(token),
            "created_at": utcnow(),
            "expires_at": expires_at,
        }
        with self.db.begin() as conn:
            conn.execute(insert(tokens).values(**values))
            row = conn.execute(select(tokens).where(tokens.c.id == values["id"])).one()
        return token, _token_json(row)

    def issue_task_token(self, task_id: str) -> str:
        """A new token of the task's own (shown once: the caller keeps it in memory), in
        place of any it had: it acts as the task's owner on that task and the tasks it
        creates, and stops working when the task ends or is deleted."""
        token = new_token()
        now = utcnow()
        with self.db.begin() as conn:
            row = conn.execute(
                select(tasks.c.owner, tasks.c.name, tasks.c.status).where(tasks.c.id == task_id)
            ).first()
            if row is None:
                raise TaskNotFound(f"No task {task_id[:40]!r} (it was deleted)")
            if row.status in {s.value for s in TERMINAL}:
                raise TaskConflict(f"Task {row.name} has ended ({row.status}): it gets no token")
            owner = conn.execute(
                select(users.c.name).where(
                    and_(users.c.name == row.owner, users.c.disabled_at.is_(None))
                )
            ).first()
            if owner is None:
                raise TaskConflict(
                    f"Task {row.name}'s owner {row.owner!r} is no user of this server: "
                    "it gets no token",
                    hint=f"create the user: dockyard user create {row.owner}",
                )
            conn.execute(
                update(tokens)
                .where(and_(tokens.c.task_id == task_id, tokens.c.revoked_at.is_(None)))
                .values(revoked_at=now)
            )
            conn.execute(
                insert(tokens).values(
                    id=secrets.token_hex(6),
                    user_name=row.owner,
                    name=f"task {row.name}"[:64],
                    hash=token_hash(token),
                    created_at=now,
                    task_id=task_id,
                )
            )
        return token

    def tokens_of(self, user: str | None) -> list[dict[str, Any]]:
        """Tokens (revoked ones too), newest first; of one user, or of everyone. A task's
        own tokens are not listed: they come and go with their tasks."""
        query = (
            select(tokens).where(tokens.c.task_id.is_(None)).order_by(tokens.c.created_at.desc())
        )
        if user is not None:
            query = query.where(tokens.c.user_name == user)
        with self.db.connect() as conn:
            return [_token_json(r) for r in conn.execute(query)]

    def revoke_token(self, token_id: str, by: Principal) -> dict[str, Any]:
        """Revoke a token: its user's own, or anyone's by an admin (others' look absent)."""
        with self.db.begin() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
            mine = row is not None and row.user_name == by.user and by.task_id is None
            if row is None or row.task_id is not None or not (mine or by.is_admin):
                raise TaskNotFound(
                    f"No token {token_id[:40]!r}", hint="list tokens: dockyard token list"
                )
            if row.revoked_at is None:
                conn.execute(
                    update(tokens).where(tokens.c.id == token_id).values(revoked_at=utcnow())
                )
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).one()
        return _token_json(row)

    def consume_token(self, token: str, name: str) -> str | None:
        """Revoke a live, unexpired token named `name` (a one-time login link) and return
        its user; None when it is unknown, used, expired or its user removed. One update
        with every condition in it, so of two uses at once exactly one gets the user."""
        if not looks_like_token(token):
            return None
        now = utcnow()
        with self.db.begin() as conn:
            live = and_(
                tokens.c.hash == token_hash(token),
                tokens.c.name == name,
                tokens.c.revoked_at.is_(None),
                tokens.c.expires_at > now,
            )
            row = conn.execute(select(tokens.c.id, tokens.c.user_name).where(live)).first()
            if row is None:
                return None
            taken = conn.execute(
                update(tokens).where(and_(live, tokens.c.id == row.id)).values(revoked_at=now)
            )
            if taken.rowcount != 1:
                return None
        user = self.user(row.user_name)
        return None if user is None else str(row.user_name)

    def token_valid(self, token: str) -> bool:
        """True when the token would authenticate now."""
        try:
            self.authenticate(token)
        except Unauthenticated:
            return False
        return True

    def authenticate(self, token: str) -> Principal:
        """The caller a bearer token stands for, or Unauthenticated saying why not."""
        if not looks_like_token(token):
            raise Unauthenticated("The credential is not a Dockyard API token")
        with self.db.connect() as conn:
            row = conn.execute(
                select(
                    tokens,
                    users.c.role,
                    users.c.disabled_at,
                    tasks.c.status.label("task_status"),
                    tasks.c.name.label("task_name"),
                )
                .join(users, users.c.name == tokens.c.user_name)
                .outerjoin(tasks, tasks.c.id == tokens.c.task_id)
                .where(tokens.c.hash == token_hash(token))
            ).first()
        if row is None:
            raise Unauthenticated("Unknown API token")
        if row.revoked_at is not None:
            raise Unauthenticated(f"API token {row.id} was revoked at {row.revoked_at}")
        if row.disabled_at is not None:
            raise Unauthenticated(f"User {row.user_name} was removed")
        now = utcnow()
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthenticated(f"API token {row.id} expired at {row.expires_at}")
        if row.task_id is not None:
            # revoked with its task as it ends; checked here too, so no path can miss it
            if row.task_status is None:
                raise Unauthenticated(f"API token {row.id} belonged to a deleted task")
            if row.task_status in {s.value for s in TERMINAL}:
                raise Unauthenticated(
                    f"API token {row.id} belonged to task {row.task_name}, which has ended "
                    f"({row.task_status})"
                )
            self._touch(row.id, now)
            return Principal(
                user=row.user_name, role=Role.MEMBER, token_id=row.id, task_id=row.task_id
            )
        self._touch(row.id, now)
        return Principal(user=row.user_name, role=Role(row.role), token_id=row.id)

    def revoke_task_tokens(self, conn: Any, task_id: str) -> None:
        """Inside `conn`'s transaction: the task's own tokens stop (it ended or is gone)."""
        conn.execute(
            update(tokens)
            .where(and_(tokens.c.task_id == task_id, tokens.c.revoked_at.is_(None)))
            .values(revoked_at=utcnow())
        )

    def _touch(self, token_id: str, now: str) -> None:
        last = self._touched.get(token_id, 0.0)
        if time.monotonic() - last < _TOUCH_EVERY_S:
            return
        self._touched[token_id] = time.monotonic()
        with self.db.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))

    # audit ------------------------------------------------------------------------------
    def record_audit(
        self, actor: str, action: str, target: str = "", detail: str = "", remote: str = ""
    ) -> None:
        """Append one entry (values cut to their columns' sizes)."""
        with self.db.begin() as conn:
            conn.execute(
                insert(audit).values(
                    time=utcnow(),
                    actor=actor[:64],
                    action=action[:64],
                    target=target[:256],
                    detail=detail[:2000],
                    remote=remote[:64],
                )
            )
            self._audit_writes += 1
            if self._audit_writes % _AUDIT_PRUNE_EVERY == 0:
                newest = conn.execute(select(func.max(audit.c.id))).scalar() or 0
                conn.execute(delete(audit).where(audit.c.id <= newest - AUDIT_KEEP))

    def audit_entries(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Audit entries after an id, oldest first."""
        query = select(audit).where(audit.c.id > after).order_by(audit.c.id).limit(limit)
        with self.db.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
