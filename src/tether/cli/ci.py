"""`tether ci init github|gitlab`: write a CI definition that runs, gates and reports."""

from __future__ import annotations

import argparse
import os
from typing import Any

from tether.feedback.ci import FORGES, PATHS


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ci",
        help="set up CI: run, push, gate and report on every pull/merge request",
        description="Write a ready CI definition (see docs/ci.md for the one-time steps: "
        "token scopes, runner registration).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="write .github/workflows/tether.yml or .gitlab-ci.yml",
        description="Write the workflow: full-history checkout, install, `tether run`, "
        "`tether push`, then on pull/merge requests `tether report --comment` and "
        "`tether gate`; on the main branch the run that becomes the next last main build. "
        f"Files: {', '.join(f'{f}: {p}' for f, p in PATHS.items())}.",
    )
    init.add_argument("forge", choices=FORGES, help="github or gitlab")
    init.add_argument("--self-hosted", action="store_true",
                      help="run on your own runner (a GPU box) instead of a hosted one")
    init.add_argument("--main", metavar="BRANCH",
                      help="the main branch (default: as for tether gate)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument("--print", dest="print_only", action="store_true",
                      help="print it instead of writing it")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.feedback.ci import template, write_template
    from tether.feedback.history import default_remote, load_settings, main_branch
    from tether.gitstore.git import Git, find_root

    root = find_root(args.cwd)
    main = args.main
    if main is None:
        settings = load_settings(root)
        git = Git(root)
        main = main_branch(git, settings, default_remote(git, settings))
    if args.print_only:
        print(template(args.forge, self_hosted=args.self_hosted, main=main), end="")
        return 0
    path = write_template(root, args.forge, self_hosted=args.self_hosted, main=main,
                          force=args.force)
    print(f"wrote {os.path.relpath(path, root)}; commit it, then see docs/ci.md for the "
          "one-time steps (token, runner)")
    return 0
