"""The people load's Salesforce batches: one Collections call each up to the client's Bulk
threshold, Bulk API 2.0 jobs above it (a batch must then be larger than the threshold, or the
client would send it through Collections again: 2,000-record batches at a 2,000 threshold cost
the 100k initial load 917 calls)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from crm_sync.domains.people.load import SF_BULK_BATCH, sf_batch_size

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "total,threshold,expected",
    [
        (150, 2000, 200),  # Collections: one call per batch
        (2000, 2000, 200),  # at the threshold still Collections
        (2001, 2000, SF_BULK_BATCH),  # above: Bulk jobs of SF_BULK_BATCH records
        (90_000, 2000, SF_BULK_BATCH),
        (60_000, 40_000, 40_001),  # a threshold above the batch: the batch still exceeds it
    ],
)
def test_batches_above_the_threshold_are_bulk_jobs(total, threshold, expected) -> None:
    sf = SimpleNamespace(bulk_threshold=threshold, collection_size=200)
    size = sf_batch_size(total, sf)  # type: ignore[arg-type]
    assert size == expected
    assert (size > threshold) == (total > threshold)  # the client's own switch agrees
