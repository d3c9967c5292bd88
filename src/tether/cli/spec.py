"""`tether spec`: validate the pipeline spec and print its normalized form."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tether.gitstore.git import find_root
from tether.spec import load_pipeline


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "spec",
        help="validate tether.yaml / tetherfile.py and print the compiled spec",
        description="Validate the pipeline spec (tether.yaml or tetherfile.py) and print it. "
        "Exits 3 with every problem listed (file:line: key: what is wrong) if it is invalid.",
    )
    parser.add_argument("--json", action="store_true", help="print the normalized spec as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    root = find_root(args.cwd)
    pipeline = load_pipeline(root)
    if args.json:
        print(json.dumps(pipeline.to_json(), indent=2, sort_keys=True))
        return 0
    print(f"{pipeline.source.name}: {len(pipeline.stages)} stage(s), valid")
    for name in pipeline.order():
        stage = pipeline.stages[name]
        upstream = sorted(pipeline.upstream(name))
        after = f"  (after {', '.join(upstream)})" if upstream else ""
        print(f"  {name}: {' && '.join(stage.cmd)}{after}")
    return 0
