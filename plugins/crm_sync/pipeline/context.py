"""The per-run context every stage receives (small, JSON-serializable: it travels through XCom)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from crm_sync.pipeline.files import RunFolder
from crm_sync.settings import run_storage, scratch_dir


def safe_name(run_id: str) -> str:
    """Run ids contain ':' and '+' (``scheduled__2026-11-27T10:00:00+00:00``): keep them path-safe."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


@dataclass
class RunContext:
    dag_id: str
    run_id: str
    domain: str
    window_start: datetime
    window_end: datetime
    full_resync: bool = False
    dry_run: bool = False
    retry_quarantined: bool = False
    run_type: str = "manual"  # Airflow's: scheduled, manual, backfill, asset_triggered
    run_kind: str = "backfill"  # the sync's: scheduled, now, backfill, targeted (window.py)
    lookback_minutes: int = 5
    caught_up_from: datetime | None = None
    max_reject_rate: float = 0.05
    max_attempts: int = 5
    conn_ids: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # A targeted run's records (``RecordIds.to_dict()``; ``RecordIds.from_dict`` reads it back)
    record_ids: dict[str, list[str]] | None = None

    @property
    def folder(self) -> RunFolder:
        """The run's files, shared by its tasks wherever they run (``CRM_SYNC_RUN_STORAGE``; see
        :class:`RunFolder`)."""
        return RunFolder(f"{run_storage().rstrip('/')}/{self.dag_id}/{safe_name(self.run_id)}")

    @property
    def scratch_root(self) -> Path:
        """Working files of this run that one task keeps on this machine (removed when it ends)."""
        return scratch_dir() / self.dag_id / safe_name(self.run_id)

    def scratch(self, name: str) -> Path:
        """A path for a task-local working file (an on-disk index): never read by another task."""
        p = self.scratch_root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("window_start", "window_end", "caught_up_from"):
            d[k] = d[k].isoformat() if d[k] else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunContext:
        d = dict(d)
        for k in ("window_start", "window_end", "caught_up_from"):
            if d.get(k):
                d[k] = datetime.fromisoformat(d[k])
        return cls(**d)
