"""Helpers of the tests that start servers from the project's own files."""

from __future__ import annotations

import tempfile
from pathlib import Path


def make_service_dir(prefix: str) -> Path:
    """A fresh folder under the system temp folder that the ``postgres`` user can reach.

    PostgreSQL runs as that user when the tests run as root (it refuses root), and pytest's own
    temporary folders live under a private (0700) folder it cannot enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
