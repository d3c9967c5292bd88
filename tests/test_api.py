from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tether
from tether import api
from tether.errors import ParamsError
from tether.record.metrics import read_step_file

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(autouse=True)
def _fresh_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own step counter and file handle."""
    monkeypatch.setattr(api, "_writer", api._StepWriter())


def _without_ts(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    for row in rows:
        assert isinstance(row.pop("ts"), float)
    return rows


def test_public_names_and_version() -> None:
    assert tether.__version__ == "0.1.0"
    assert tether.log is api.log
    assert tether.params is api.params
    assert tether.summary is api.summary


def test_import_tether_stays_light() -> None:
    code = (
        "import sys, tether; tether.log; "
        "print(sorted({'yaml', 'typing', 'json'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": SRC},
    ).stdout
    assert out.strip() == "[]"


def test_log_lines_are_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tether.log(step=0, loss=1.5, acc=0.25)
    tether.log(step=1, loss=0.75, acc=0.5, phase="val", done=True, note=None, epoch=3)
    rows = _without_ts(read_step_file(tmp_path / "tether-steps.jsonl"))
    assert rows == [
        {"step": 0, "loss": 1.5, "acc": 0.25},
        {
            "step": 1,
            "loss": 0.75,
            "acc": 0.5,
            "phase": "val",
            "done": True,
            "note": None,
            "epoch": 3,
        },
    ]


def test_log_writes_valid_json_for_awkward_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tether.log(a=math.nan, b=math.inf, c=-math.inf, d=1e-300, e='quote " and \\ and \n', f=2**70)
    line = (tmp_path / "tether-steps.jsonl").read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    row = json.loads(line)
    assert (row["a"], row["b"], row["c"]) == ("NaN", "Infinity", "-Infinity")
    assert row["d"] == 1e-300
    assert row["e"] == 'quote " and \\ and \n'
    assert row["f"] == 2**70


def test_log_unwraps_numpy_scalars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = pytest.importorskip("numpy")
    monkeypatch.chdir(tmp_path)
    tether.log(step=numpy.int64(4), loss=numpy.float32(0.5), n=numpy.int64(7), ok=numpy.bool_(True))
    rows = _without_ts(read_step_file(tmp_path / "tether-steps.jsonl"))
    assert rows == [{"step": 4, "loss": 0.5, "n": 7, "ok": True}]


def test_auto_step_counts_and_continues_after_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tether.log(loss=1.0)
    tether.log(loss=0.9)
    tether.log(step=10, loss=0.8)
    tether.log(loss=0.7)
    steps = [row["step"] for row in read_step_file(tmp_path / "tether-steps.jsonl")]
    assert steps == [0, 1, 10, 11]


def test_log_follows_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "run1" / "steps.jsonl"
    second = tmp_path / "run2" / "steps.jsonl"
    monkeypatch.setenv("TETHER_STEPS_FILE", str(first))
    tether.log(loss=1.0)
    tether.log(loss=0.5)
    monkeypatch.setenv("TETHER_STEPS_FILE", str(second))
    tether.log(loss=0.25)
    monkeypatch.delenv("TETHER_STEPS_FILE")
    tether.log(loss=0.125)
    assert [r["loss"] for r in read_step_file(first)] == [1.0, 0.5]
    assert _without_ts(read_step_file(second)) == [{"step": 0, "loss": 0.25}]
    assert [r["loss"] for r in read_step_file(tmp_path / "tether-steps.jsonl")] == [0.125]


@pytest.mark.parametrize("name", ["ts", 'has"quote', "new\nline", "back\\slash", "tab\tbed"])
def test_log_rejects_bad_metric_names(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="metric name"):
        tether.log(**{name: 1.0})  # type: ignore[arg-type]


def test_log_rejects_bad_values_and_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="metric values"):
        tether.log(loss=[1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step"):
        tether.log(step=True, loss=1.0)
    with pytest.raises(TypeError):
        tether.log(step=1.5, loss=1.0)  # type: ignore[arg-type]
    assert read_step_file(tmp_path / "tether-steps.jsonl") == []


def test_summary_merges_nested_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tether.summary(acc=0.9, val={"loss": 0.3})
    tether.summary(val={"acc": 0.8}, best_epoch=4, bad=math.nan)
    tether.summary(acc=0.95)
    data = json.loads((tmp_path / "tether-summary.json").read_text())
    assert data == {"acc": 0.95, "val": {"loss": 0.3, "acc": 0.8}, "best_epoch": 4, "bad": "NaN"}


def test_summary_follows_env_var_and_is_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run" / "summary.json"
    monkeypatch.setenv("TETHER_SUMMARY_FILE", str(target))
    tether.summary(loss=0.5)
    inode = target.stat().st_ino
    tether.summary(acc=1.0)
    assert json.loads(target.read_text()) == {"acc": 1.0, "loss": 0.5}
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_summary_rejects_values_json_cannot_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tether.summary(acc=0.5)
    with pytest.raises(TypeError):
        tether.summary(model=object())
    assert json.loads((tmp_path / "tether-summary.json").read_text()) == {"acc": 0.5}


def test_params_outside_tether_reads_params_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert tether.params() == {}
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.01\n  epochs: 3\nseed: 7\n")
    params = tether.params()
    assert params == {"train": {"lr": 0.01, "epochs": 3}, "seed": 7}
    params["train"]["lr"] = 99
    assert tether.params()["train"]["lr"] == 0.01  # each call is a fresh copy


def test_params_sees_edits_to_params_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("lr: 0.1\n")
    assert tether.params() == {"lr": 0.1}
    (tmp_path / "params.yaml").write_text("lr: 0.25\nextra: 1\n")
    assert tether.params() == {"lr": 0.25, "extra": 1}


def test_params_inside_tether_reads_the_run_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("lr: 0.1\n")
    run_params = tmp_path / "run" / "params.json"
    run_params.parent.mkdir()
    run_params.write_text(json.dumps({"lr": 0.5, "model": {"depth": 4}}))
    monkeypatch.setenv("TETHER_PARAMS_FILE", str(run_params))
    assert tether.params() == {"lr": 0.5, "model": {"depth": 4}}


def test_params_errors_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ParamsError, match=r"params\.yaml"):
        tether.params()
    (tmp_path / "params.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        tether.params()
    monkeypatch.setenv("TETHER_PARAMS_FILE", str(tmp_path / "gone.json"))
    with pytest.raises(ParamsError, match=r"gone\.json"):
        tether.params()


def _run_script(tmp_path: Path, body: str) -> subprocess.Popen[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": SRC, "TETHER_STEPS_FILE": str(tmp_path / "steps.jsonl")}
    return subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True
    )


def test_sigkill_after_n_calls_keeps_n_lines(tmp_path: Path) -> None:
    proc = _run_script(
        tmp_path,
        """
        import os, signal, tether
        for i in range(537):
            tether.log(loss=1.0 / (i + 1), acc=i / 537)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    text = (tmp_path / "steps.jsonl").read_text()
    assert text.count("\n") == 537 and text.endswith("\n")
    assert [row["step"] for row in read_step_file(tmp_path / "steps.jsonl")] == list(range(537))


def test_sigkill_mid_stream_leaves_only_complete_lines(tmp_path: Path) -> None:
    proc = _run_script(
        tmp_path,
        """
        import sys, tether
        i = 0
        while True:
            tether.log(loss=1.0 / (i + 1), acc=0.5)
            if i == 1000:
                print("logging", flush=True)
            i += 1
        """,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "logging\n"
    proc.kill()
    proc.wait(timeout=60)
    text = (tmp_path / "steps.jsonl").read_text()
    assert text.endswith("\n")
    rows = read_step_file(tmp_path / "steps.jsonl")
    assert len(rows) > 1000
    assert [row["step"] for row in rows] == list(range(len(rows)))
