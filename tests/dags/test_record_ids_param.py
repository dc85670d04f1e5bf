"""The ``record_ids`` parameter of sync_leads_contacts: what a trigger may send (Airflow
validates it against the Param's schema) matches what the run accepts (``parse_record_ids``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_sync.pipeline.record_ids import MAX_RECORD_IDS, parse_record_ids

pytestmark = pytest.mark.dags

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "sync_leads_contacts.py"))
    assert not bag.import_errors
    return bag.dags["sync_leads_contacts"].params


def validated(params, value):
    """The params after a trigger with ``record_ids=value`` (what the run's context gets)."""
    from airflow.sdk.definitions.param import ParamsDict

    conf = ParamsDict({k: params.get_param(k) for k in params})
    conf.update({"record_ids": value})
    return conf.validate()["record_ids"]


def test_empty_by_default_so_scheduled_runs_are_not_targeted(params) -> None:
    assert params["record_ids"] is None
    assert not parse_record_ids(params["record_ids"])


@pytest.mark.parametrize("value", [["1001", "ann@example.com"], "1001\n00Q000000000001", None])
def test_a_list_or_a_text_passes_the_trigger(params, value) -> None:
    assert parse_record_ids(validated(params, value)) == parse_record_ids(value)


def test_the_trigger_refuses_more_entries_than_a_run_accepts(params) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    ids = [str(1000 + i) for i in range(MAX_RECORD_IDS)]
    assert len(parse_record_ids(validated(params, ids))) == MAX_RECORD_IDS
    with pytest.raises(ParamValidationError, match="record_ids"):
        validated(params, [*ids, "1"])
    with pytest.raises(ParamValidationError, match="record_ids"):
        validated(params, [1001])  # the form sends text; a number is a malformed trigger
