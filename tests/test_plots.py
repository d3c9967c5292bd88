"""`tether plots`: experiments overlaid in one offline HTML page, or SVG files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import git, run_tether, write
from tether.errors import EXIT_EXPERIMENT
from tether.plots.charts import Chart, Line
from tether.plots.render import chart_svg

SPEC = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train.lr, train.fail]
    outs: [model.txt]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, model.txt]
    metrics: [eval/metrics.json]
    plots: [eval/confusion.csv, eval/roc.json]
"""

TRAIN = """\
import json, os, sys
import tether
p = tether.params()["train"]
os.makedirs("dvclive/plots/metrics", exist_ok=True)
with open("dvclive/plots/metrics/loss.tsv", "w") as tsv:
    tsv.write("timestamp\\tstep\\tloss\\n")
    for step in range(5):
        loss = 1 / (1 + step * p["lr"])
        tether.log(step=step, loss=loss, acc=1 - loss)
        tsv.write(f"1700000000\\t{step}\\t{loss}\\n")
json.dump({"loss": loss, "step": 4}, open("dvclive/metrics.json", "w"))
if p["fail"]:
    sys.exit("diverged")
open("model.txt", "w").write(str(p["lr"]))
"""

EVALUATE = """\
import json, os
lr = float(open("model.txt").read())
os.makedirs("eval", exist_ok=True)
json.dump({"acc": 0.8 + lr}, open("eval/metrics.json", "w"))
last = "bird,dog" if lr > 0.2 else "bird,bird"
rows = ["actual,predicted", "cat,cat", "cat,dog", "dog,dog", last]
open("eval/confusion.csv", "w").write("\\n".join(rows) + "\\n")
roc = [{"fpr": f, "tpr": min(1, f + lr), "threshold": 1 - f} for f in (0.0, 0.5, 0.25, 1.0)]
json.dump({"roc": roc}, open("eval/roc.json", "w"))
"""


class Page(HTMLParser):
    """Collects, per figure, the experiments of its series; and every attribute value."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, object]] = []
        self.values: list[str] = []
        self.in_title = False
        self.data = ""
        self.in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.values += [v for v in found.values() if v]
        if tag == "figure":
            self.figures.append({"title": "", "series": [], "kind": None})
        elif tag == "svg" and self.figures:
            self.figures[-1]["kind"] = found.get("data-kind")
        elif tag == "title" and self.figures:
            self.in_title = True
        elif tag == "g" and found.get("class") == "series":
            series = self.figures[-1]["series"]
            assert isinstance(series, list)
            series.append(found["data-experiment"])
        elif tag == "script":
            assert found.get("type") == "application/json"
            self.in_data = True

    def handle_endtag(self, tag: str) -> None:
        self.in_title = self.in_title and tag != "title"
        self.in_data = self.in_data and tag != "script"

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.figures[-1]["title"] = str(self.figures[-1]["title"]) + data
        if self.in_data:
            self.data += data


def project(repo: Path) -> Path:
    write(repo / "tether.yaml", SPEC)
    write(repo / "params.yaml", "train:\n  lr: 0.1\n  fail: false\n")
    write(repo / "train.py", TRAIN)
    write(repo / "evaluate.py", EVALUATE)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    for name, lr in (("slow", "0.1"), ("fast", "0.5")):
        proc = run_tether(repo, "run", "-n", name, "-S", f"train.lr={lr}")
        assert proc.returncode == 0, proc.stderr + proc.stdout
    failed = run_tether(repo, "run", "-n", "broken", "-S", "train.fail=true")
    assert failed.returncode == 1, failed.stderr
    return repo


def read_page(path: Path) -> tuple[Page, str]:
    text = path.read_text()
    page = Page()
    page.feed(text)
    page.close()
    return page, text


def test_plots_overlays_experiments_in_one_offline_page(repo: Path) -> None:
    project(repo)
    head = git(repo, "rev-parse", "HEAD")
    status = git(repo, "status", "--porcelain")
    proc = run_tether(repo, "plots", "slow", "fast", "--out", "report")
    assert proc.returncode == 0, proc.stderr
    page, text = read_page(repo / "report" / "index.html")
    assert "http://" not in text and "https://" not in text
    assert not any(v.startswith(("//", "data:", "http")) for v in page.values)
    charts = {str(f["title"]): f for f in page.figures}
    # step metrics from tether.log, dvclive's TSV, the ROC curve: one series per experiment
    for title in ("loss: train", "acc: train", "loss: dvclive/plots/metrics/loss.tsv",
                  "ROC: eval/roc.json"):
        assert charts[title]["series"] == ["slow", "fast"], title
        assert charts[title]["kind"] == "line"
    confusion = charts["confusion matrix: eval/confusion.csv"]
    assert confusion["kind"] == "confusion" and confusion["series"] == ["slow", "fast"]
    data = json.loads(page.data)
    assert data["metrics"]["fast"]["acc"] == pytest.approx(1.3)
    assert data["metrics"]["slow"]["dvclive/loss"] == pytest.approx(1 / 1.4)
    roc = next(c for c in data["charts"] if c["title"] == "ROC: eval/roc.json")
    assert [p[0] for p in roc["series"][0]["points"]] == [0.0, 0.25, 0.5, 1.0]  # sorted by x
    counts = next(c for c in data["charts"] if c["kind"] == "confusion")["series"]
    assert counts[1]["labels"] == ["bird", "cat", "dog"]
    assert counts[1]["counts"] == [[0, 0, 1], [0, 1, 1], [0, 0, 1]]
    # the page is a picture of records: git state untouched
    assert git(repo, "rev-parse", "HEAD") == head
    after = git(repo, "status", "--porcelain").splitlines()
    assert sorted(after) == sorted([*status.splitlines(), "?? report/"])


def test_default_is_the_experiments_of_head_and_svg_files_are_xml(repo: Path) -> None:
    project(repo)
    status = git(repo, "status", "--porcelain")
    proc = run_tether(repo, "plots", "--svg")
    assert proc.returncode == 0, proc.stderr
    out = repo / ".tether" / "plots"
    files = sorted(out.glob("*.svg"))
    assert len(files) >= 5
    series: dict[str, list[str]] = defaultdict(list)
    for path in files:
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        for group in root.iter("{http://www.w3.org/2000/svg}g"):
            series[path.name].append(group.attrib["data-experiment"])
    # the failed run logged its steps (kept), but its plots files are not its results
    assert series["loss-train.svg"] == ["slow", "fast", "broken"]
    assert series["ROC-eval-roc.json.svg"] == ["slow", "fast"]
    assert git(repo, "status", "--porcelain") == status  # written under .tether/, ignored


def test_unknown_experiment_is_named(repo: Path) -> None:
    project(repo)
    proc = run_tether(repo, "plots", "nope")
    assert proc.returncode == EXIT_EXPERIMENT and "nope" in proc.stderr


def test_no_experiment_yet(repo: Path) -> None:
    proc = run_tether(repo, "plots")
    assert proc.returncode == EXIT_EXPERIMENT and "no experiment" in proc.stderr


def test_odd_values_are_escaped_and_skipped() -> None:
    chart = Chart(title="a<b & \"c\"", kind="line", x_label="step", y_label="<y>",
                  lines=[Line("exp<1>", [(0.0, 1.0), (1.0, 1.0)]), Line("e2", [(0.0, 2.0)])],
                  matrices=[])
    root = ET.fromstring(chart_svg(chart, standalone=True))
    assert root.find("{http://www.w3.org/2000/svg}title").text == 'a<b & "c"'  # type: ignore[union-attr]
