"""Server-wide settings in the database: shared by every server on it, kept across
restarts. A change is a read-modify-write under the `settings` lock row, so two servers
changing one setting at once never lose either change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from provisioner.model import utcnow
from provisioner.store.records import insert_ignoring_duplicates
from provisioner.store.schema import locks, settings

SETTINGS_LOCK = "settings"

Value = dict[str, Any]


class SettingsMixin:
    """setting and change_setting (mixed into the Store)."""

    db: Engine

    def setting(self, name: str) -> Value | None:
        """The setting's value, or None when it was never set."""
        with self.db.connect() as conn:
            value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
        return dict(value) if isinstance(value, dict) else None

    def change_setting(
        self, name: str, change: Callable[[Value | None], Value | None]
    ) -> Value | None:
        """Replace the setting by `change(current)` (None removes it), atomically; the new
        value. `change` runs inside the transaction: it must not do I/O of its own."""
        with self.db.begin() as conn:
            conn.execute(insert_ignoring_duplicates(self.db, locks), [{"name": SETTINGS_LOCK}])
            # the first write: from here on no other change of a setting runs until we commit
            conn.execute(
                update(locks).where(locks.c.name == SETTINGS_LOCK).values(taken=locks.c.taken + 1)
            )
            current = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
            new = change(dict(current) if isinstance(current, dict) else None)
            conn.execute(delete(settings).where(settings.c.name == name))
            if new is not None:
                conn.execute(insert(settings).values(name=name, value=new, updated_at=utcnow()))
        return new
