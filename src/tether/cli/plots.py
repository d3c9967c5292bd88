"""`tether plots [EXP...]`: one self-contained HTML page (or SVG files) of experiments."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "plots", help="draw step metrics and plots files of experiments (HTML or SVG)",
        description="Overlay the experiments' step metrics (`tether.log`, the stages' "
        "`plots:` files, dvclive's plots/metrics/*.tsv) in one self-contained HTML page: "
        "inline SVG and the data as JSON, nothing fetched from the network. Confusion "
        "matrices (actual/predicted fields), ROC (fpr/tpr) and precision-recall curves "
        "are recognised by their field names; final metrics (and dvclive's metrics.json) "
        "are shown as a table. Default: the latest 10 experiments recorded against HEAD.",
    )
    parser.add_argument("experiments", nargs="*", metavar="EXP",
                        help="experiments to overlay (name, commit prefix or ref)")
    parser.add_argument("-o", "--out", metavar="DIR", type=Path, default=None,
                        help="folder to write to (default: .tether/plots)")
    parser.add_argument("--svg", action="store_true",
                        help="write one SVG file per chart instead of index.html")
    parser.add_argument("--open", action="store_true", dest="open_page",
                        help="open the page in the web browser")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tether.gitstore.git import Git, find_root
    from tether.layout import state_dir
    from tether.plots import write_plots

    git = Git(find_root(args.cwd))
    out_dir = (args.cwd / args.out) if args.out else state_dir(git.root) / "plots"
    if args.out is None:
        from tether.project import ensure_state_dir

        ensure_state_dir(git.root)
    written = write_plots(git, args.experiments, out_dir, svg=args.svg)
    print(f"{written.charts} chart(s) of {len(written.experiments)} experiment(s): "
          + ", ".join(written.experiments))
    for path in written.files:
        print(path)
    if args.open_page:
        import webbrowser

        webbrowser.open(written.files[0].resolve().as_uri())
    return 0
