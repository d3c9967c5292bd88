"""`tether add PATH...`: track data inputs by content, outside git."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "add", help="track data files or folders (content in the cache, a pointer in git)",
        description="Store each PATH (a file or folder, usually git-ignored input data) in "
        "the repository's content-addressed cache, write the pointer PATH.tether beside it "
        "(commit it) and add PATH to the .gitignore beside it. `tether push` sends the "
        "content to the artifact remote; `tether checkout`, `--temp` runs and queue workers "
        "(here or in another clone) put it in place. Adding a changed PATH again updates "
        "its pointer. A stage depends on PATH like on any file.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file or folder to track")
    parser.add_argument("-r", "--remote", metavar="NAME",
                        help="also push the content to this artifact remote now")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.cache.tracked import add_data, files_to_commit
    from tether.errors import UsageError
    from tether.gitstore.git import Git, find_root
    from tether.project import ensure_state_dir, object_store

    git = Git(find_root(args.cwd))
    ensure_state_dir(git.root)  # its .gitignore keeps the cache out of git
    root = os.path.realpath(git.root)
    relative = []
    for text in args.paths:
        full = os.path.abspath(os.path.join(args.cwd, text))
        rel = os.path.relpath(os.path.join(os.path.realpath(os.path.dirname(full)),
                                           os.path.basename(full)), root)
        if rel.startswith(".."):
            raise UsageError(f"{text!r} is outside the project ({git.root})")
        relative.append(Path(rel).as_posix())
    added = add_data(git, relative, object_store(git.root))
    for pointer in added:
        print(f"tracked {pointer.path} ({pointer.files} file(s), {pointer.size} bytes) "
              f"-> {pointer.pointer}")
    if args.remote:
        from tether.cache.remote import push_objects
        from tether.cli.progress import ProgressBar
        from tether.project import open_remote

        with ProgressBar("push", unit="bytes") as bar:
            result = push_objects(object_store(git.root), open_remote(git.root, args.remote),
                                  {p.key for p in added}, progress=bar)
        print(f"tether: {len(result.sent)} object(s) pushed to {args.remote}", file=sys.stderr)
    print(f"tether: commit the pointers: git add {files_to_commit(added)}", file=sys.stderr)
    return 0
