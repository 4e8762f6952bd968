"""Kept bundles' rules and folder, without a server: names only from task ids (no
hostile text reaches a path), records checked when read back, 0600 files, retention."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provisioner.engine.kept import KeptBundles
from provisioner.gitwork import kept as rules
from provisioner.gitwork.kept import KeptError, KeptRecord

TASK = "0b7e2f1c-3d4a-4b5c-8d9e-0f1a2b3c4d5e"
BASE = "a" * 40


def _record(task_id: str = TASK, **changes: object) -> KeptRecord:
    values: dict[str, object] = {
        "task_id": task_id,
        "name": "fix-it-1a2b",
        "owner": "alice",
        "branch": "dockyard/fix-it-1a2b",
        "base": BASE,
        "ref": "refs/heads/dockyard/fix-it-1a2b",
        "kept_at": datetime.now(UTC).isoformat(),
        "size": 3,
        **changes,
    }
    return KeptRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "../../etc/passwd",
        f"../{TASK}",
        f"{TASK}/../x",
        TASK.upper(),
        f"{TASK}\n",
        f"{TASK}\x00",
        "/abs/path",
        "x" * 5000,
    ],
)
def test_only_task_ids_name_kept_files(hostile: str) -> None:
    with pytest.raises(KeptError):
        rules.bundle_name(hostile)
    with pytest.raises(KeptError):
        rules.record_name(hostile)


def test_a_damaged_or_hostile_record_is_refused() -> None:
    good = _record().to_json()
    assert rules.record_of(good) == _record(kept_at=good["kept_at"])
    for change in (
        {"task_id": "../../x"},
        {"base": "HEAD; rm -rf /"},
        {"ref": "refs/heads/../../x"},
        {"ref": "--upload-pack=id"},
        {"size": "many"},
    ):
        with pytest.raises(KeptError):
            rules.record_of({**good, **change})
    with pytest.raises(KeptError):
        rules.record_of({k: v for k, v in good.items() if k != "owner"})
    with pytest.raises(KeptError):
        rules.record_of(["not", "a", "mapping"])


def test_records_match_their_owner_only_unless_asked_for_anyones() -> None:
    record = _record()
    assert rules.matches(record, record.name, "alice")
    assert rules.matches(record, TASK, "alice")
    assert not rules.matches(record, record.name, "bob")
    assert rules.matches(record, record.name, None)
    assert not rules.matches(record, "fix-it", "alice")  # names are whole, never prefixes


def test_retention_and_settings() -> None:
    now = datetime.now(UTC)
    assert not rules.expired((now - timedelta(days=29)).isoformat(), now, 30)
    assert rules.expired((now - timedelta(days=31)).isoformat(), now, 30)
    assert not rules.expired((now - timedelta(days=9999)).isoformat(), now, 0)
    assert rules.expired("not a time", now, 30)
    assert rules.parse_settings(None, "k") == (rules.DEFAULT_MAX_BYTES, rules.DEFAULT_DAYS)
    assert rules.parse_settings({"max_mb": 1, "days": 0}, "k") == (1024 * 1024, 0)
    for bad in ("200", {"max_mb": -1}, {"days": "30"}, {"max_mb": True}, {"keep": 1}):
        with pytest.raises(KeptError):
            rules.parse_settings(bad, "kept_bundles")


def test_the_folder_keeps_0600_files_and_finds_them_by_owner(tmp_path: Path) -> None:
    kept = KeptBundles(tmp_path / "kept")
    path = kept.keep(_record(), b"abc")
    assert path == tmp_path / "kept" / f"{TASK}.bundle"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o700
    found = kept.find("fix-it-1a2b", "alice")
    assert found is not None and kept.read(found) == b"abc"
    assert kept.find("fix-it-1a2b", "bob") is None
    for hostile in ("../kept/" + TASK, f"{TASK}.bundle", "*", "", "..", "/etc/passwd"):
        assert kept.find(hostile, None) is None


def test_a_record_under_another_file_name_is_not_served(tmp_path: Path) -> None:
    """A record copied or edited to point at another task's bundle is skipped."""
    kept = KeptBundles(tmp_path / "kept")
    kept.keep(_record(), b"abc")
    other = "11111111-2222-4333-8444-555555555555"
    (tmp_path / "kept" / f"{other}.json").write_text(
        json.dumps(_record(owner="mallory", name="stolen").to_json())
    )
    assert kept.find("stolen", "mallory") is None


def test_retention_removes_old_bundles(tmp_path: Path) -> None:
    kept = KeptBundles(tmp_path / "kept", days=30)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    kept.keep(_record(kept_at=old), b"abc")
    assert kept.find("fix-it-1a2b", "alice") is None
    assert list((tmp_path / "kept").iterdir()) == []
