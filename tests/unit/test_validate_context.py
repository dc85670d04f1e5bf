"""The GX context of the validate stage: built once per stage, and only when a frame has rows."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_sync.pipeline.validate import Validator, length_check, required_check, run_gate

pytestmark = pytest.mark.unit


@pytest.fixture
def contexts(monkeypatch) -> list[object]:
    import great_expectations as gx

    built: list[object] = []
    real = gx.get_context

    def counted(*args, **kw):
        built.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(gx, "get_context", counted)
    return built


def test_a_gate_with_zero_plans_builds_no_gx_context(make_ctx, contexts) -> None:
    ctx = make_ctx()
    ctx.folder.write_jsonl("plans/plans.jsonl", iter(()))
    seen: list[int] = []

    def check_chunk(chunk, validator):
        seen.append(len(chunk))
        return {}

    out = run_gate(ctx, check_chunk, label="test")
    assert contexts == [] and seen == []  # no chunk, no context
    assert out["counts"] == {}
    assert ctx.folder.read_json("validation.json")["checks"] == {}
    assert list(ctx.folder.read_jsonl("plans/validated.jsonl")) == []


def test_empty_frames_build_no_context_and_frames_with_rows_share_one(contexts) -> None:
    v = Validator()
    empty = pd.DataFrame({"Email": [], "__row": []})
    assert v.run("sf_Lead_update", empty, [required_check("Email")]) == []
    assert contexts == []
    frame = pd.DataFrame({"Email": ["a@example.com", None], "__row": [0, 1]})
    failures = v.run("sf_Lead_update", frame, [required_check("Email")])
    assert [(row, check.name) for row, check, _ in failures] == [(1, "required")]
    v.run("sf_Lead_create", frame, [required_check("Email")])
    assert contexts == [1]
    assert v.summary()["sf_Lead_update:required:Email"]["failed"] == 1


def test_a_suite_is_stored_once_not_once_per_expectation(monkeypatch, contexts) -> None:
    from great_expectations.data_context.store.expectations_store import ExpectationsStore

    writes: list[str] = []
    real = ExpectationsStore.add_expectation

    def counted(self, suite, expectation):
        writes.append(expectation.expectation_type)
        return real(self, suite=suite, expectation=expectation)

    monkeypatch.setattr(ExpectationsStore, "add_expectation", counted)
    frame = pd.DataFrame({"Email": [None], "Title": ["x" * 5], "__row": [0]})
    checks = [required_check("Email"), required_check("Title"), length_check("Title", 3)]
    failures = Validator().run("sf_Lead_update", frame, checks)
    assert writes == []
    assert sorted(c.name for _, c, _ in failures) == ["max_length", "required"]


def test_a_check_equal_to_an_earlier_one_reports_its_failures_once(contexts) -> None:
    frame = pd.DataFrame({"Email": [None, "a@example.com"], "__row": [0, 1]})
    first, again = required_check("Email"), required_check("Email")
    failures = Validator().run("sf_Lead_update", frame, [first, again])
    assert [(row, check) for row, check, _ in failures] == [(0, first)]
