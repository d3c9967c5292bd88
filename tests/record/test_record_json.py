"""RunRecord.from_json: every record version written so far reads back typed."""

from __future__ import annotations

import json

import pytest

from tether.layout import RECORD_SCHEMA
from tether.record.record import InvalidRecord, RunRecord, StageRecord, load_record
from tether.status import SUCCESS


def full_record() -> RunRecord:
    return RunRecord(
        id="0123456789abcdef", name="lr-sweep", message="try 0.3", baseline="a" * 40,
        branch="main", kind="pipeline", status=SUCCESS, exit_code=0, created_at=1.7e9,
        started_at=1.7e9, ended_at=1.7e9 + 3, duration=3.0, argv=["tether", "run"],
        targets=["train"], overrides=["train.lr=0.3"],
        params={"params.yaml": {"train": {"lr": 0.3}}}, metrics={"acc": 0.9},
        steps={"train": [{"step": 0, "loss": 1.0}]},
        stages=[StageRecord(name="train", status=SUCCESS, reasons=["params changed"],
                            cmd=["python", "train.py"], exit_code=0, started_at=1.7e9,
                            ended_at=1.7e9 + 3, duration=3.0, fingerprint="f" * 64,
                            deps={"train.py": "b3:" + "0" * 64}, params={"train.lr": 0.3},
                            outs={"model.pkl": "b3:" + "1" * 64, "gone": None},
                            log={"bytes": 3, "text": "hi\n", "truncated": False},
                            restored_from={"name": "earlier"})],
        code={"commit": "a" * 40, "diff": ""}, environment={"python": "3.11"},
        spec={"metrics": {"acc": {"direction": "max"}}}, temp_workspace=True,
        redacted_files={"config.ini": ["API_TOKEN"]}, error=None,
    )


def test_a_record_reads_back_as_it_was_written() -> None:
    record = full_record()
    assert RunRecord.from_json(json.loads(record.dumps())) == record
    assert load_record(record.dumps().encode()) == (record, None)


def test_a_record_from_before_versioning_gets_defaults() -> None:
    # What the first releases wrote: no schema, temp_workspace, redacted_files or error,
    # and a stage with only a name and a status.
    old = {"id": "r1", "name": "first", "status": "failed", "created_at": 1.6e9,
           "message": None, "stages": [{"name": "train", "status": "failed", "exit_code": 2}]}
    record = RunRecord.from_json(old)
    assert (record.id, record.name, record.status, record.message) == ("r1", "first", "failed", "")
    assert record.schema == RECORD_SCHEMA and record.temp_workspace is False
    assert record.started_at == record.ended_at == 1.6e9 and record.duration == 0.0
    assert record.params == record.metrics == record.spec == {} and record.argv == []
    [stage] = record.stages
    assert (stage.name, stage.status, stage.exit_code, stage.outs, stage.attempt) == (
        "train", "failed", 2, {}, 1)


def test_a_record_from_a_newer_tether_is_refused_clearly() -> None:
    data = full_record().to_json()
    data["schema"] = RECORD_SCHEMA + 1
    with pytest.raises(InvalidRecord, match=f"record schema {RECORD_SCHEMA + 1} is newer than "
                       f"this tether reads \\({RECORD_SCHEMA}\\): upgrade tether"):
        RunRecord.from_json(data)


@pytest.mark.parametrize(("blob", "problem"), [
    (None, "the commit has no .tether/record.json"),
    (b"{not json", ".tether/record.json is not valid JSON"),
    (b"[]", ".tether/record.json: the record is a list, not an object"),
    (b'{"id": "x", "name": "n", "status": "success", "created_at": "yesterday"}',
     ".tether/record.json: created_at is a string, not a number"),
])
def test_load_record_says_what_is_wrong(blob: bytes | None, problem: str) -> None:
    assert load_record(blob) == (None, problem)


def test_wrongly_typed_optional_fields_fall_back_to_defaults() -> None:
    # Fields the validation does not cover cannot crash a reader either.
    data = {"id": "r", "name": "n", "status": "success", "created_at": 1.0, "exit_code": "0",
            "temp_workspace": "yes", "redacted_files": [], "error": 3,
            "stages": [{"name": "s", "duration": "long", "attempt": True, "reasons": "x"}]}
    record = RunRecord.from_json(data)
    assert (record.exit_code, record.temp_workspace, record.redacted_files, record.error) == (
        None, False, {}, None)
    [stage] = record.stages
    assert (stage.duration, stage.attempt, stage.reasons) == (None, 1, [])


def test_from_json_sets_every_field_of_the_record_and_its_stages() -> None:
    # A field added to RunRecord or StageRecord must be read back too.
    record = RunRecord.from_json({"id": "r", "name": "n", "status": "success", "created_at": 1,
                                  "stages": [{"name": "s"}]})
    assert set(vars(record)) == set(RunRecord.__match_args__)
    assert set(vars(record.stages[0])) == set(StageRecord.__match_args__)
