"""Every validation problem names file, line, key path, what was found and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import SpecError
from tether.spec import load_pipeline

from .conftest import WriteSpec, problems


def test_collects_every_problem_with_location(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          train:
            cmd: python train.py
            timeout: abc
            stall_timout: 10m
            retries: -1
            retry_on: [137, 300, x]
            env: {OK: 1, NESTED: {a: 1}}
            deps: [../outside, /abs/path]
          "bad name":
            cmd: echo
          empty:
            cmd: ""
          nocmd:
            deps: [a]
        metrics:
          acc: {direction: up, tolerance: 1%}
          loss: {direction: min, tolerance: lots}
          f1: {tolerance: 1}
          p: {direction: max, tolerence: 1}
        extra: 1
    """)
    assert problems(tmp_path) == [
        "tether.yaml:4: stages.train.timeout: expected a duration like 30s, 5m or 2h, found 'abc'",
        "tether.yaml:5: stages.train.stall_timout: unknown key 'stall_timout'; "
        "did you mean 'stall_timeout'?",
        "tether.yaml:6: stages.train.retries: expected an integer >= 0, found -1",
        "tether.yaml:7: stages.train.retry_on: expected an integer from 0 to 255, found 300",
        "tether.yaml:7: stages.train.retry_on: expected an integer from 0 to 255, found 'x'",
        "tether.yaml:8: stages.train.env.NESTED: expected a string or number, found a mapping",
        "tether.yaml:9: stages.train.deps: path '../outside' points outside the project root",
        "tether.yaml:9: stages.train.deps: expected a path relative to the project root, "
        "found absolute '/abs/path'",
        "tether.yaml:10: stages.bad name: stage names may only contain letters, digits, "
        "'_', '.' and '-'",
        "tether.yaml:13: stages.empty.cmd: expected a non-empty command or list of commands, "
        "found ''",
        "tether.yaml:14: stages.nocmd: missing 'cmd': the command this stage runs",
        "tether.yaml:17: metrics.acc.direction: expected min or max, found 'up'",
        "tether.yaml:18: metrics.loss.tolerance: expected a tolerance: an absolute number "
        "like 0.01 or a relative \"1%\", found 'lots'",
        "tether.yaml:19: metrics.f1: missing 'direction': min or max",
        "tether.yaml:20: metrics.p.tolerence: unknown key 'tolerence'; did you mean 'tolerance'?",
        "tether.yaml:21: extra: unknown key 'extra'; known keys: version, stages, metrics, data",
    ]


def test_require_names_worker_tags(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          train:
            cmd: python train.py
            require: [gpu, "two words", {a: 1}]
          eval:
            cmd: python eval.py
            require: gpu
    """)
    assert problems(tmp_path) == [
        "tether.yaml:4: stages.train.require: expected a worker tag (letters, digits and "
        "_ . : = + -, such as gpu or cuda=12), found 'two words'",
        "tether.yaml:4: stages.train.require: expected a list of scalars, found a mapping in it",
    ]


def test_a_pipeline_requires_the_union_of_its_stages_tags(
    write_spec: WriteSpec, tmp_path: Path
) -> None:
    write_spec("""
        stages:
          prepare: {cmd: python prepare.py, outs: [data], require: [cpu]}
          train: {cmd: python train.py, deps: [data], outs: [model], require: [gpu, a100]}
          report: {cmd: python report.py}
    """)
    pipeline = load_pipeline(tmp_path)
    assert pipeline.stages["prepare"].require == ("cpu",)
    assert pipeline.requirements(pipeline.order(["train"])) == ("a100", "cpu", "gpu")
    assert pipeline.requirements(pipeline.order(["report"])) == ()


def test_error_message_is_readable(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            cmd: echo
            timeout: abc
    """)
    with pytest.raises(SpecError) as caught:
        load_pipeline(tmp_path)
    assert str(caught.value) == (
        "invalid pipeline spec (1 problem):\n"
        "  tether.yaml:4: stages.a.timeout: expected a duration like 30s, 5m or 2h, found 'abc'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages: [a, b]\n",
            "tether.yaml:1: stages: expected a mapping of stage name -> stage, found a list",
        ),
        (
            "stages: {}\n",
            "tether.yaml:1: stages: expected a mapping of stage name -> stage, found no stages",
        ),
        ("metrics: {}\n", "tether.yaml:1: stages: missing: declare at least one stage"),
        ("", "tether.yaml: expected a mapping with a 'stages' key, found nothing"),
        ("- a\n", "tether.yaml:1: expected a mapping with a 'stages' key, found a list"),
        ("version: 2\nstages: {a: {cmd: x}}\n", "tether.yaml:1: version: expected 1, found 2"),
        (
            "stages:\n  a: null\n",
            "tether.yaml:2: stages.a: expected a mapping of stage fields, found null",
        ),
        (
            "stages:\n  a: {cmd: [x, 3]}\n",
            "tether.yaml:2: stages.a.cmd: expected a non-empty command or list of commands, "
            "found a list",
        ),
        (
            "stages:\n  a: {cmd: x, deps: {a: 1}}\n",
            "tether.yaml:2: stages.a.deps: expected a list, found a mapping",
        ),
        (
            "stages:\n  a: {cmd: x, wdir: ../up}\n",
            "tether.yaml:2: stages.a.wdir: path '../up' points outside the project root",
        ),
        (
            "stages:\n  a: {cmd: x, params: ['f.yaml:']}\n",
            "tether.yaml:2: stages.a.params: expected a params key like 'train.lr' or "
            "'FILE:KEY', found 'f.yaml:'",
        ),
        (
            "stages:\n  a: {cmd: x, env: {1A: b}}\n",
            "tether.yaml:2: stages.a.env.1A: not a valid environment variable name",
        ),
        (
            "stages:\n  a: {cmd: x, retries: true}\n",
            "tether.yaml:2: stages.a.retries: expected an integer >= 0, found true",
        ),
        (
            "stages:\n  a: {cmd: x, expected: 0}\n",
            "tether.yaml:2: stages.a.expected: expected a positive duration, found 0",
        ),
        (
            "stages:\n  a: {cmd: x}\nmetrics:\n  acc: {direction: max, tolerance: -1}\n",
            "tether.yaml:4: metrics.acc.tolerance: expected a tolerance >= 0, found -1",
        ),
        (
            "stages:\n  a: {cmd: x}\nmetrics:\n  acc: max\n",
            "tether.yaml:4: metrics.acc: expected a mapping like {direction: max, tolerance: 1%}, "
            "found 'max'",
        ),
        (
            "stages:\n  a@b: {cmd: x}\n",
            "tether.yaml:2: stages.a@b: stage names may only contain letters, digits, '_', '.' "
            "and '-' ('@' is reserved for foreach/matrix stages)",
        ),
    ],
)
def test_single_problem(write_spec: WriteSpec, tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "tether.yaml").write_text(text)
    assert problems(tmp_path) == [expected]


def test_yaml_syntax_error_has_line_and_column(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            cmd: echo
            outs: [model-${item}.pkl]
    """)
    with pytest.raises(SpecError) as caught:
        load_pipeline(tmp_path)
    assert caught.value.problems == [
        "tether.yaml:4:19: YAML syntax error: expected ',' or ']', but got '{'"
    ]
    assert caught.value.hint is not None and "quote values" in caught.value.hint


def test_duplicate_keys(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            cmd: echo
            cmd: echo again
          b: {cmd: x}
          a: {cmd: y}
    """)
    assert problems(tmp_path) == [
        "tether.yaml:4: stages.a.cmd: duplicate key 'cmd' (first at line 3)",
        "tether.yaml:6: stages.a: duplicate key 'a' (first at line 2)",
    ]


def test_unknown_keys_suggest_template_keys(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a:
            forech: [x]
            cmd: echo
    """)
    assert problems(tmp_path) == [
        "tether.yaml:3: stages.a.forech: unknown key 'forech'; did you mean 'foreach'?"
    ]


def test_template_problems(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          both:
            foreach: [a]
            matrix: {x: [1]}
          nodo:
            foreach: [a]
          nofor:
            do: {cmd: echo}
          extra:
            foreach: [a]
            cmd: echo
            do: {cmd: echo}
          emptylist:
            foreach: []
            do: {cmd: echo}
          badmatrix:
            matrix: {x: 1, y: [{a: 1}]}
            cmd: echo
          badname:
            foreach: [a b]
            do: {cmd: echo}
          unknownvar:
            foreach: [a, b]
            do:
              cmd: echo ${itme} ${item.x}
              outs: ["o-${item}"]
          listinsert:
            foreach: [[1, 2]]
            do: {cmd: "echo ${item}"}
    """)
    assert problems(tmp_path) == [
        "tether.yaml:4: stages.both: use either 'foreach' or 'matrix', not both",
        "tether.yaml:6: stages.nodo: 'foreach' needs a 'do' with the stage fields",
        "tether.yaml:8: stages.nofor.do: 'do' needs a 'foreach' next to it",
        "tether.yaml:11: stages.extra.cmd: with 'foreach', put 'cmd' under 'do'",
        "tether.yaml:14: stages.emptylist.foreach: expected a non-empty list or mapping, "
        "found a list",
        "tether.yaml:17: stages.badmatrix.matrix.x: expected a non-empty list of values, found 1",
        "tether.yaml:17: stages.badmatrix.matrix.y: matrix values must be scalars "
        "(strings, numbers, booleans)",
        "tether.yaml:20: stages.badname.foreach: generated stage name 'badname@a b' is not "
        "valid: values used in names may only contain letters, digits, '_', '.' and '-' "
        "(a mapping foreach lets you choose the names)",
        "tether.yaml:25: stages.unknownvar.do.cmd: unknown variable ${itme} "
        "(available here: ${item})",
        "tether.yaml:25: stages.unknownvar.do.cmd: ${item.x}: 'a' has no field 'x'",
        "tether.yaml:25: stages.unknownvar.do.cmd: ${item.x}: 'b' has no field 'x'",
        "tether.yaml:29: stages.listinsert.do.cmd: cannot insert a list into a string (${item})",
    ]


def test_generated_name_collision(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          train:
            foreach: [a, b, a]
            do: {cmd: "echo ${item}"}
    """)
    assert problems(tmp_path) == [
        "tether.yaml:2: stages.train.do: stage 'train@a' is declared twice (also at line 2)"
    ]


def test_generated_problems_point_into_template(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          train:
            foreach: {fast: 1m, broken: soon}
            do:
              cmd: echo
              timeout: ${item}
              tmeout: 1
    """)
    assert problems(tmp_path) == [
        "tether.yaml:6: stages.train.do.timeout: expected a duration like 30s, 5m or 2h, "
        "found 'soon'",
        "tether.yaml:7: stages.train.do.tmeout: unknown key 'tmeout'; did you mean 'timeout'?",
    ]


def test_unknown_yaml_tag(write_spec: WriteSpec, tmp_path: Path) -> None:
    write_spec("""
        stages:
          a: {cmd: !!python/name:os.system x}
    """)
    found = problems(tmp_path)
    assert found[0].startswith("tether.yaml:2: cannot read this value:")
