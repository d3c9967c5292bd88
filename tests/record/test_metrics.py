from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.errors import SpecError
from tether.record.metrics import flatten, read_metrics_file, read_step_file


def test_flatten_nests_to_dotted_names() -> None:
    data = {"a": {"b": 1, "c": {"d": 0.5}}, "e": "x", "f": None, "g": True}
    assert flatten(data) == {"a.b": 1, "a.c.d": 0.5, "e": "x", "f": None, "g": True}


def test_flatten_keeps_scalar_lists_and_indexes_lists_of_mappings() -> None:
    data = {"hist": [1, 2.5, None], "per_class": [{"f1": 0.9}, {"f1": 0.8}], "empty": {}}
    assert flatten(data) == {"hist": [1, 2.5, None], "per_class.0.f1": 0.9, "per_class.1.f1": 0.8}


def test_flatten_with_prefix_and_non_string_keys() -> None:
    assert flatten({1: {"x": 2}}, prefix="val") == {"val.1.x": 2}


def test_read_json_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"val": {"acc": 0.91, "loss": 0.3}, "epochs": 10}))
    assert read_metrics_file(path) == {"val.acc": 0.91, "val.loss": 0.3, "epochs": 10}


def test_read_yaml_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text("train:\n  loss: 0.25\n  acc: 0.9\nnotes: fine\n")
    assert read_metrics_file(path) == {"train.loss": 0.25, "train.acc": 0.9, "notes": "fine"}


def test_unknown_suffix_tries_json_then_yaml(tmp_path: Path) -> None:
    as_json = tmp_path / "scores.txt"
    as_json.write_text('{"f1": 0.5}')
    as_yaml = tmp_path / "scores.out"
    as_yaml.write_text("f1: 0.5\n")
    assert read_metrics_file(as_json) == read_metrics_file(as_yaml) == {"f1": 0.5}


def test_missing_and_empty_metrics_files_are_empty(tmp_path: Path) -> None:
    assert read_metrics_file(tmp_path / "absent.json") == {}
    (tmp_path / "empty.yaml").write_text("")
    assert read_metrics_file(tmp_path / "empty.yaml") == {}


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{\n  "acc": 0.9,\n  "loss": \n}\n')
    with pytest.raises(SpecError) as caught:
        read_metrics_file(path)
    assert f"{path}:4" in str(caught.value)
    assert "invalid JSON" in str(caught.value)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text("acc: 0.9\nloss: [1, 2\nf1: 3\n")
    with pytest.raises(SpecError) as caught:
        read_metrics_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert "invalid YAML" in message


def test_metrics_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("[1, 2]")
    with pytest.raises(SpecError, match="expected a mapping"):
        read_metrics_file(path)


def test_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0, "loss": 1.0}\n\n{"step": 1, "loss": 0.5}\n\n')
    assert read_step_file(path) == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}]


def test_jsonl_tolerates_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert read_step_file(path) == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}]


def test_jsonl_tolerates_truncated_last_line_after_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0}\n\n{"step": 1, "lo')
    assert read_step_file(path) == [{"step": 0}]


def test_jsonl_invalid_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0}\n{"step": 1,,}\n{"step": 2}\n')
    with pytest.raises(SpecError, match=r"steps\.jsonl:2"):
        read_step_file(path)


def test_jsonl_complete_but_invalid_last_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0}\n{"step": oops}\n')
    with pytest.raises(SpecError, match=r"steps\.jsonl:2"):
        read_step_file(path)


def test_jsonl_lines_must_be_objects(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0}\n[1, 2]\n')
    with pytest.raises(SpecError, match="line 2"):
        read_step_file(path)


def test_jsonl_nested_objects_are_flattened(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 0, "val": {"acc": 0.5}}\n')
    assert read_step_file(path) == [{"step": 0, "val.acc": 0.5}]


def test_csv_parses_numbers(tmp_path: Path) -> None:
    path = tmp_path / "steps.csv"
    path.write_text("step,loss,phase,note\n0,1.5,train,\n1,0.75,val,ok\n")
    assert read_step_file(path) == [
        {"step": 0, "loss": 1.5, "phase": "train", "note": None},
        {"step": 1, "loss": 0.75, "phase": "val", "note": "ok"},
    ]


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "steps.tsv"
    path.write_text("step\tacc\n0\t0.5\n1\t1e-3\n")
    assert read_step_file(path) == [{"step": 0, "acc": 0.5}, {"step": 1, "acc": 0.001}]


def test_csv_row_with_too_many_fields_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "steps.csv"
    path.write_text("step,loss\n0,1,2\n")
    with pytest.raises(SpecError, match=r"steps\.csv:2"):
        read_step_file(path)


def test_json_and_yaml_lists_of_objects(tmp_path: Path) -> None:
    as_json = tmp_path / "steps.json"
    as_json.write_text('[{"step": 0, "loss": 1}, {"step": 1, "loss": 0.5}]')
    as_yaml = tmp_path / "steps.yaml"
    as_yaml.write_text("- step: 0\n  loss: 1\n- step: 1\n  loss: 0.5\n")
    expected = [{"step": 0, "loss": 1}, {"step": 1, "loss": 0.5}]
    assert read_step_file(as_json) == read_step_file(as_yaml) == expected


def test_json_series_wrapped_in_one_key(tmp_path: Path) -> None:
    path = tmp_path / "plots.json"
    path.write_text('{"train": [{"step": 0, "loss": 1}]}')
    assert read_step_file(path) == [{"step": 0, "loss": 1}]


def test_json_series_must_be_a_list(tmp_path: Path) -> None:
    path = tmp_path / "steps.json"
    path.write_text('{"a": 1, "b": 2}')
    with pytest.raises(SpecError, match="expected a list of objects"):
        read_step_file(path)


def test_missing_step_file_is_empty(tmp_path: Path) -> None:
    assert read_step_file(tmp_path / "absent.jsonl") == []
    assert read_step_file(tmp_path / "absent.csv") == []


def test_large_jsonl_series(tmp_path: Path) -> None:
    path = tmp_path / "steps.jsonl"
    lines = [json.dumps({"step": i, "loss": 1 / (i + 1)}) for i in range(20_000)]
    path.write_text("\n".join(lines) + "\n")
    rows = read_step_file(path)
    assert len(rows) == 20_000
    assert rows[-1] == {"step": 19_999, "loss": 1 / 20_000}


def test_flat_params_names_keys_by_file() -> None:
    from tether.record.metrics import flat_params

    params = {"params.yaml": {"train": {"lr": 0.1}}, "conf/model.yaml": {"depth": 3},
              "empty.yaml": None, "odd.yaml": [1, 2]}
    assert flat_params(params) == {"train.lr": 0.1, "conf/model.yaml:depth": 3}
