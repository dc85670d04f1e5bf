"""DiskSet: a set of keys that moves to a scratch file past its buffer."""

from __future__ import annotations

import pytest

from crm_sync.pipeline.spill import DiskSet

pytestmark = pytest.mark.unit


def test_keys_past_the_buffer_go_to_disk_and_stay_members(tmp_path) -> None:
    s = DiskSet(tmp_path / "covered.db", buffer=3)
    s.update(["a", "b"])
    assert not (tmp_path / "covered.db").exists()  # a small run never touches the disk
    s.update(["c", "d", "a", "e"])
    assert s.spilled == 3 and (tmp_path / "covered.db").exists()
    assert all(k in s for k in "abcde") and "z" not in s and 1 not in s
    s.add("b")  # already on disk: not counted twice
    assert len(s) == 5
    s.update(["f", "g"])  # the second spill
    assert s.spilled == 6 and len(s) == 7 and "g" in s
    s.close()
    assert not (tmp_path / "covered.db").exists()


def test_a_new_set_replaces_what_a_crashed_task_left(tmp_path) -> None:
    first = DiskSet(tmp_path / "covered.db", buffer=1)
    first.add("old")
    assert "old" in first
    second = DiskSet(tmp_path / "covered.db", buffer=1)
    second.add("new")
    assert "old" not in second and "new" in second and len(second) == 1
