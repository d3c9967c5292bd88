"""Finding and loading a project's pipeline spec: `tether.yaml` or `tetherfile.py`
(or `tether.py`, the DSL's first name, read with a warning)."""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path

import yaml

from tether.errors import SpecError, TetherError
from tether.spec.dsl import Pipeline as DslPipeline
from tether.spec.dsl import loading_file
from tether.spec.model import Pipeline
from tether.spec.nodes import Problems, yaml_node
from tether.spec.validate import build_pipeline
from tether.spec.yamlguard import YamlGuardError

YAML_SPEC_NAMES = ("tether.yaml", "tether.yml")
PYTHON_SPEC_NAME = "tetherfile.py"
# The DSL's first name, still read: in the project root it hides the tether package
# from the project's own scripts (`import tether` in train.py imports it), so it warns.
SHADOWING_SPEC_NAME = "tether.py"
PYTHON_SPEC_NAMES = (PYTHON_SPEC_NAME, SHADOWING_SPEC_NAME)
SPEC_NAMES = (*YAML_SPEC_NAMES, *PYTHON_SPEC_NAMES)
_warned: set[Path] = set()


def find_spec(root: Path) -> Path:
    """The one spec file of the project at `root`."""
    found = [root / name for name in SPEC_NAMES if (root / name).is_file()]
    if not found:
        raise SpecError(
            f"{root}: no tether.yaml or tetherfile.py found",
            hint="run `tether init` to create one",
        )
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise SpecError(
            f"{root}: found {names}; keep exactly one pipeline spec",
            hint="delete or rename the one you do not use",
        )
    return found[0]


def load_pipeline(root: Path) -> Pipeline:
    """Load and validate the pipeline of the project at `root`."""
    path = find_spec(root)
    if path.name in PYTHON_SPEC_NAMES:
        if path.name == SHADOWING_SPEC_NAME:
            warn_shadowing(path)
        return load_python_spec(path, root)
    return load_yaml_spec(path, root)


def warn_shadowing(path: Path) -> None:
    """Say once per process that `path` (a tether.py spec) hides the tether package."""
    if path in _warned:
        return
    _warned.add(path)
    print(f"tether: warning: {path.name} hides the tether package from the scripts beside it "
          "(`import tether` in them imports this file, so tether.log and tether.params fail); "
          f"rename it: git mv {path.name} {PYTHON_SPEC_NAME}", file=sys.stderr)


def spec_label(path: Path | str, root: Path) -> str:
    """How problems name a file: relative to the project root when inside it."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return str(path)


def load_yaml_spec(path: Path, root: Path) -> Pipeline:
    """Load and validate a YAML pipeline spec."""
    label = spec_label(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{label}: cannot read the file: {exc}") from exc
    return parse_yaml_spec(text, path, label)


def parse_yaml_spec(text: str, path: Path, label: str) -> Pipeline:
    """Validate the YAML spec `text` (read from `path`, named `label` in problems)."""
    problems = Problems(label)
    try:
        document = yaml_node(text, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        kind = "YAML refused" if isinstance(exc, YamlGuardError) else "YAML syntax error"
        raise SpecError(
            f"{where}: {kind}: {exc.problem or exc.context}",
            hint=_syntax_hint(text, mark),
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{label}: YAML error: {exc}") from exc
    return build_pipeline(document, path, problems, allow_generated_names=False)


def _syntax_hint(text: str, mark: yaml.Mark | None) -> str | None:
    lines = text.splitlines()
    if mark is not None and mark.line < len(lines) and "${" in lines[mark.line]:
        return 'quote values holding ${...} inside [...] or {...}, e.g. ["model-${item}.pkl"]'
    return None


def load_python_spec(path: Path, root: Path) -> Pipeline:
    """Run a `tetherfile.py` in a fresh namespace and validate its module-level `pipeline`."""
    label = spec_label(path, root)
    root_entry = str(Path(root).resolve())
    modules_before = set(sys.modules)
    sys.path.insert(0, root_entry)
    token = loading_file.set(path.resolve())
    try:
        namespace = runpy.run_path(str(path), run_name="__tether_spec__")
    except TetherError:
        raise
    except SyntaxError as exc:
        where = spec_label(exc.filename, root) if exc.filename else label
        raise SpecError(f"{where}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except (Exception, SystemExit) as exc:
        raise SpecError(
            f"{_failure_site(exc, path, label)}: error while running the spec: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        loading_file.reset(token)
        if root_entry in sys.path:
            sys.path.remove(root_entry)
        _forget_project_modules(modules_before, Path(root_entry))
    declared = namespace.get("pipeline")
    if not isinstance(declared, DslPipeline):
        found = "nothing" if declared is None else f"a {type(declared).__name__}"
        raise SpecError(
            f"{label}: expected a module-level `pipeline = Pipeline(...)`, found {found}",
            hint="from tether.dsl import Pipeline, stage",
        )
    return build_pipeline(declared.to_node(), path, Problems(label), allow_generated_names=True)


def _failure_site(exc: BaseException, path: Path, label: str) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    target = path.resolve()
    lines = [f.lineno for f in frames if Path(f.filename).resolve() == target]
    return f"{label}:{lines[-1]}" if lines and lines[-1] else label


def _forget_project_modules(before: set[str], root: Path) -> None:
    """Drop modules the spec imported from the project, so the next load sees fresh code."""
    for name in set(sys.modules) - before:
        filename = getattr(sys.modules[name], "__file__", None)
        if filename and Path(filename).resolve().is_relative_to(root):
            del sys.modules[name]
