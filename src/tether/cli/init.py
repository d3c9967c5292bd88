"""`tether init`: start using tether in a git repository."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from tether.gitstore.git import find_root
from tether.project import init_project


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "init",
        help="write a commented tether.yaml and the .tether/ folder",
        description="Write a commented tether.yaml template and the .tether/ folder "
        "(with its ignore rules) at the top of the current git repository. With "
        "--from-dvc, translate dvc.yaml (and params.yaml, vars) into tether.yaml instead, "
        "with `# dvc:` comments where something has no equivalent, and track the data of "
        "the .dvc pointers as tether data (PATH.tether) when it is in the work tree or the "
        "local DVC cache; the others are listed with the `dvc pull` to run first.",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing tether.yaml")
    parser.add_argument("--from-dvc", action="store_true",
                        help="convert this DVC project (dvc.yaml, .dvc pointers)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    root = find_root(args.cwd)
    if args.from_dvc:
        return _from_dvc(args, root)
    for path in init_project(root, force=args.force):
        print(f"created {path.relative_to(root)}")
    print("next: edit tether.yaml, commit, then `tether run`")
    return 0


def _from_dvc(args: argparse.Namespace, root: Any) -> int:
    from tether.migrate import init_from_dvc

    result = init_from_dvc(root, force=args.force)
    for path in result.created:
        print(f"created {path.relative_to(root)}")
    stages = ", ".join(result.conversion.stages) or "none"
    print(f"converted dvc.yaml: stages {stages}")
    for note in result.conversion.notes:
        print(f"  note: {note}")
    data = result.data
    for pointer in data.tracked:
        source = " (from the DVC cache)" if pointer.path in data.restored else ""
        print(f"tracked {pointer.path}{source} -> {pointer.pointer}")
    for item in data.imports:
        print(f"declared data source {item.name} ({item.url} -> {item.path}) from {item.pointer}")
    for problem in data.problems:
        print(f"  not converted: {problem}")
    if data.missing:
        print("not in the work tree nor in the local DVC cache; fetch them, then run "
              "`tether init --from-dvc --force` again:")
        for out in data.missing:
            print(f"  dvc pull {shlex.quote(out.pointer)}    # {out.path}")
    if data.tracked:
        from tether.cache.tracked import files_to_commit

        print(f"tether: commit the pointers: git add {files_to_commit(data.tracked)}",
              file=sys.stderr)
    print("next: check tether.yaml (`tether spec`, `tether status`), commit, then `tether run`")
    return 0
