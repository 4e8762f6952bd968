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
from provisioner.model import utcnow
from provisioner.store.schema import audit, tokens, users

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
            raise ParameterError(f"Unknown role {str(role)[:40]!r}: use admin or member") from exc
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

    def tokens_of(self, user: str | None) -> list[dict[str, Any]]:
        """Tokens (revoked ones too), newest first; of one user, or of everyone."""
        query = select(tokens).order_by(tokens.c.created_at.desc())
        if user is not None:
            query = query.where(tokens.c.user_name == user)
        with self.db.connect() as conn:
            return [_token_json(r) for r in conn.execute(query)]

    def revoke_token(self, token_id: str, by: Principal) -> dict[str, Any]:
        """Revoke a token: its user's own, or anyone's by an admin (others' look absent)."""
        with self.db.begin() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
            if row is None or (row.user_name != by.user and not by.is_admin):
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
                select(tokens, users.c.role, users.c.disabled_at)
                .join(users, users.c.name == tokens.c.user_name)
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
        self._touch(row.id, now)
        return Principal(user=row.user_name, role=Role(row.role), token_id=row.id)

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
