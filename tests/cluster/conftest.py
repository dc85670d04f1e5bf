"""Fixtures of the tests that start servers from the project's own files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import make_service_dir


@pytest.fixture
def service_dir() -> Iterator[Path]:
    path = make_service_dir("crm_sync_services_")
    yield path
    shutil.rmtree(path, ignore_errors=True)
