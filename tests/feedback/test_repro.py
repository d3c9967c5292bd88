"""`tether repro`: an experiment run again from its record, judged metric by metric.

The project is the run-path tests' realistic one (prepare → train → evaluate, git-ignored
raw data, output directories), with an evaluation that can drift: `DRIFT` in the
environment moves `acc`, and the git-ignored raw data decides `rows`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_tether, write
from execute.project import make_project
from feedback.fakes import fake_experiment
from feedback.receivers import http_receiver
from helpers import exp_refs, record_of, repo_state
from tether.record.record import StageRecord

EVALUATE = """\
import json, os, sys, tether
if os.environ.get("BREAK"):
    sys.exit("evaluation broke")
p = tether.params()
model = open("model.bin", "rb").read().decode()
lr = float(model.split("lr=")[1].split()[0])
rows = len(open("data/prepared/test.txt").read().split())
os.makedirs("eval/plots", exist_ok=True)
open("eval/plots/roc.csv", "w").write("fpr,tpr\\n0,0\\n1,1\\n")
acc = round(0.5 + lr / 2 + float(os.environ.get("DRIFT", "0")), 4)
json.dump({"acc": acc, "rows": rows, "model": "v1"}, open("eval/metrics.json", "w"))
"""


@pytest.fixture
def project(repo: Path) -> Path:
    make_project(repo)
    write(repo / "evaluate.py", EVALUATE)
    git(repo, "commit", "-qam", "an evaluation that can drift")
    return repo


def tether(root: Path, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    proc = run_tether(root, *args, env=env)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def new_records(root: Path, before: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [(ref, record_of(root, ref)) for ref in exp_refs(root)
            if ref not in before and ref.startswith("refs/tether/exps/")]


def worktrees_left(root: Path) -> list[str]:
    """tether's worktrees still on disk or known to git."""
    folder = root / ".tether" / "worktrees"
    listed = git(root, "worktree", "list", "--porcelain").splitlines()
    on_disk = [p.name for p in folder.iterdir()] if folder.exists() else []
    return on_disk + [line for line in listed if line.startswith("worktree ")][1:]


def test_a_deterministic_run_reproduces_without_touching_the_work_tree(project: Path) -> None:
    tether(project, "run", "-n", "base")
    before = exp_refs(project)
    state = repo_state(project)
    proc = tether(project, "repro", "base")
    assert "base-repro reproduces base" in proc.stdout and "REPRODUCED" in proc.stdout
    assert exp_refs(project).items() >= before.items()  # the original is untouched
    [(_, record)] = new_records(project, before)
    [original_ref] = [r for r in before if r.endswith("/base")]
    original = record_of(project, original_ref)
    assert record["reproduces"]["id"] == original["id"]
    assert record["reproduces"]["ref"] == original_ref
    assert record["name"] == "base-repro" and record["baseline"] == original["baseline"]
    assert record["metrics"] == original["metrics"]
    assert [(s["name"], s["status"], s["restored_from"]) for s in record["stages"]] == [
        ("prepare", "success", None), ("train", "success", None),
        ("evaluate", "success", None)]  # every stage ran: forced, no run-cache
    assert repo_state(project) == state
    assert worktrees_left(project) == []
    assert original["reproduces"] is None
    checked = json.loads(tether(project, "repro", "--check", "base-repro", "--json").stdout)
    assert checked["verdict"] == "reproduced"


def test_a_drift_is_caught_with_the_metric_and_both_values(project: Path) -> None:
    tether(project, "run", "-n", "base")
    proc = tether(project, "repro", "base", code=18, DRIFT="0.1")
    assert "NOT-REPRODUCED" in proc.stdout
    [acc] = [line for line in proc.stdout.splitlines() if line.startswith("acc ")]
    assert "0.75" in acc and "0.85" in acc and "DIFFERENT" in acc
    assert "did not reproduce: acc" in proc.stderr
    # A tolerance wide enough says it reproduced (absolute, then relative).
    tether(project, "repro", "base", "--tolerance", "acc=0.2", DRIFT="0.1")
    tether(project, "repro", "base", "--tolerance", "acc=20%", DRIFT="0.1")
    tether(project, "repro", "base", "--tolerance", "acc=5%", code=18, DRIFT="0.1")


def test_a_reproduction_that_drifted_is_not_the_gates_main_build(project: Path) -> None:
    """A nightly `repro: last-main-build` records `base-repro` against main's commit, newer
    than `base`: the gate (and the next `last-main-build`) still judge against `base`."""
    tether(project, "run", "-n", "base")
    tether(project, "repro", "base", code=18, DRIFT="0.3")
    git(project, "switch", "-q", "-c", "feature")
    write(project / "notes.md", "a change\n")
    git(project, "add", "notes.md")
    git(project, "commit", "-qm", "a feature")
    tether(project, "run", "-n", "feature")
    proc = tether(project, "gate", "--json", "feature")
    data = json.loads(proc.stdout)
    assert data["main_build"]["name"] == "base"
    assert {m["metric"]: m["verdict"] for m in data["metrics"]}["acc"] == "same"
    proc = tether(project, "repro", "last-main-build")
    assert "base-repro-2 reproduces base " in proc.stdout


def test_data_outside_git_that_changed_is_named(project: Path) -> None:
    tether(project, "run", "-n", "base")
    write(project / "data" / "raw.txt", "\n".join(str(i) for i in range(80)) + "\n")
    proc = tether(project, "repro", "base", code=18)
    [rows] = [line for line in proc.stdout.splitlines() if line.startswith("rows ")]
    assert "10" in rows and "20" in rows
    assert "data/raw.txt (stage prepare)" in proc.stdout


def test_an_uncommitted_diff_is_reproduced_not_head(project: Path) -> None:
    params = (project / "params.yaml").read_text()
    write(project / "params.yaml", params.replace("lr: 0.5", "lr: 0.7"))
    write(project / "evaluate.py", EVALUATE.replace('"model": "v1"', '"model": "v2"'))
    tether(project, "run", "-n", "dirty")
    git(project, "checkout", "--", "params.yaml", "evaluate.py")  # back to HEAD
    before = exp_refs(project)
    tether(project, "repro", "dirty")
    [(_, record)] = new_records(project, before)
    assert record["params"]["params.yaml"]["train"]["lr"] == 0.7
    assert record["metrics"]["acc"] == 0.85 and record["metrics"]["model"] == "v2"
    assert "lr: 0.7" in record["code"]["diff"]
    assert (project / "params.yaml").read_text() == params


def test_unknown_experiment_and_bad_tolerance(project: Path) -> None:
    proc = tether(project, "repro", "nope", code=5)
    assert "no experiment named 'nope'" in proc.stderr
    tether(project, "run", "-n", "base")
    assert "METRIC=VALUE" in tether(project, "repro", "base", "--tolerance", "acc", code=2).stderr
    assert "number" in tether(project, "repro", "base", "--tolerance", "acc=-1", code=2).stderr
    assert "no reproduction" in tether(project, "repro", "--check", "base", code=5).stderr


def test_a_failed_reproduction_exits_with_the_runs_code(project: Path) -> None:
    tether(project, "run", "-n", "base")
    before = exp_refs(project)
    proc = tether(project, "repro", "base", code=1, BREAK="1")
    assert "did not succeed (failed)" in proc.stderr
    [(_, record)] = new_records(project, before)
    assert record["status"] == "failed" and record["reproduces"]["name"] == "base"


def test_not_reproduced_notifies_once_with_cloudevents(project: Path) -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    tether(project, "run", "-n", "base")
    with http_receiver() as receiver:
        env = {"TETHER_NOTIFY": receiver.url(), "TETHER_EVENTS": receiver.url("http", "/ev")}
        tether(project, "repro", "base", code=18, DRIFT="0.1", **env)
        tether(project, "repro", "base", **env)  # reproduced: no notification
    notices = [r.json() for r in receiver.accepted if r.path == "/hook"]
    assert len(notices) == 1, notices
    assert "did not reproduce" in notices[0]["title"]
    assert "acc: 0.75 -> 0.85" in notices[0]["message"]
    events = [from_http_event(HTTPMessage(headers={k.lower(): v for k, v in r.headers.items()},
                                          body=r.body))
              for r in receiver.accepted if r.path == "/ev"]
    verdicts = [(e.get_type(), e.get_subject()) for e in events
                if "reproduced" in e.get_type()]
    assert [t for t, _ in verdicts] == ["dev.tether.run.not_reproduced",
                                         "dev.tether.run.reproduced"]
    assert [s.rsplit("/", 1)[1] for _, s in verdicts] == ["base-repro", "base-repro-2"]
    data = next(e.get_data() for e in events if e.get_type().endswith("not_reproduced"))
    assert isinstance(data, dict)
    assert data["reproduction"]["metrics"][0]["key"] == "acc"


def test_queued_reproduction_runs_on_the_embedded_worker(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.feedback.repro import enqueue_repro
    from tether.queue.client import open_queue

    git(project, "add", "-f", "data/raw.txt")  # a worker needs the raw data: commit it
    git(project, "commit", "-qm", "raw data")
    tether(project, "run", "-n", "base")
    before = exp_refs(project)
    with http_receiver() as sink:
        monkeypatch.setenv("TETHER_EVENTS", sink.url("http", "/ev"))
        entry_id = enqueue_repro(project, "last-main-build", tolerances={"rows": "0"},
                                 origin="schedule:nightly").id
        monkeypatch.delenv("TETHER_EVENTS")
        [queued_event] = sink.wait_for(1)
    assert queued_event.json()["type"] == "dev.tether.run.queued"
    assert queued_event.json()["data"]["name"] == "base-repro"
    backend = open_queue(project)
    try:
        entry = backend.get(entry_id)
    finally:
        backend.close()
    assert entry is not None and entry.force and entry.name == "base-repro"
    assert entry.reproduces is not None and entry.reproduces["origin"] == "schedule:nightly"
    with http_receiver() as receiver:
        worker = tether(project, "worker", "--exit-when-idle", DRIFT="0.1",
                        TETHER_NOTIFY=receiver.url())
    # The worker's logfmt line for the verdict.
    [judged] = [line for line in worker.stderr.splitlines()
                if "event=reproduction_judged" in line]
    assert "exp=base-repro" in judged
    assert "verdict=not-reproduced original=base differing=acc" in judged
    [(_, record)] = new_records(project, before)
    assert record["reproduces"]["name"] == "base"
    assert record["reproduces"]["tolerances"] == {"rows": {"kind": "abs", "value": 0.0}}
    notices = [r.json() for r in receiver.accepted]
    assert len(notices) == 1 and "did not reproduce" in notices[0]["title"], notices
    checked = tether(project, "repro", "--check", "base-repro", code=18)
    assert "acc" in checked.stdout and "0.85" in checked.stdout
    queued = tether(project, "repro", "base", "--queue")  # base-repro is taken: the name said
    assert queued.stdout.startswith("queued base-repro-2, a reproduction of base, as entry ")
    assert "`tether repro --check base-repro-2`" in queued.stdout, queued.stdout


def test_hostile_record_fields_do_not_escape_the_worktree(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    fake_experiment(repo, "evil", {"acc": 1.0}, fields={
        "kind": "command", "argv": ["tether", "run", "--", "touch", "pwned"],
        "spec": {"stages": {"command": {"cmd": ["touch pwned"], "wdir": "../../outside"}}}})
    before = exp_refs(repo)
    proc = tether(repo, "repro", "evil", code=11)
    assert "../../outside" in proc.stderr
    fake_experiment(repo, "sneaky", {"acc": 1.0}, stages=[StageRecord("train", "success")],
                    rules={}, fields={"spec": {"stages": {"train": {
                        "cmd": ["true"], "deps": ["../../etc/passwd"]}}}})
    tether(repo, "repro", "sneaky", "--queue", code=11)
    assert not outside.exists() and not (repo / "pwned").exists()
    assert exp_refs(repo).keys() - before.keys() == {
        r for r in exp_refs(repo) if r.endswith("/sneaky")}


def test_records_without_reproduces_load_and_bad_ones_are_refused() -> None:
    from tether.record.record import InvalidRecord, RunRecord

    old = {"id": "r1", "name": "old", "status": "success", "created_at": 1.0}
    assert RunRecord.from_json(old).reproduces is None
    link = {"id": "r0", "ref": "refs/tether/exps/x/base", "commit": "c", "name": "base",
            "tolerances": {"acc": {"kind": "rel", "value": 0.01}}, "origin": None}
    assert RunRecord.from_json({**old, "reproduces": link}).reproduces == link
    for bad in ([1], {"id": 3}, {"tolerances": {"acc": {"kind": "rel", "value": -1}}},
                {"tolerances": {"acc": "1%"}}):
        with pytest.raises(InvalidRecord, match="reproduces"):
            RunRecord.from_json({**old, "reproduces": bad})


def _record(metrics: dict[str, Any], *, status: str = "success",
            tolerances: dict[str, Any] | None = None) -> Any:
    from tether.record.record import RunRecord

    rules = {"loss": {"direction": "min", "tolerance": {"kind": "abs", "value": 0.05}},
             "acc": {"direction": "max", "tolerance": {"kind": "rel", "value": 0.0}}}
    return RunRecord.from_json({
        "id": "r", "name": "n", "status": status, "created_at": 1.0, "metrics": metrics,
        "spec": {"metrics": rules},
        "reproduces": None if tolerances is None else {"tolerances": tolerances}})


@pytest.mark.parametrize(("now", "given", "verdicts"), [
    # floats: a relative 1e-9 by default (float noise is no drift); ints and strings exact
    ({"acc": 0.9 * (1 + 1e-12), "n": 10, "tag": "v1", "loss": 0.3}, None, {}),
    ({"acc": 0.9001, "n": 10, "tag": "v1", "loss": 0.3}, None, {"acc": "different"}),
    ({"acc": 0.9, "n": 11, "tag": "v2", "loss": 0.3}, None, {"n": "different",
                                                            "tag": "different"}),
    # the spec's tolerance (the gate's), then --tolerance over it
    ({"acc": 0.9, "n": 10, "tag": "v1", "loss": 0.34}, None, {}),
    ({"acc": 0.9, "n": 10, "tag": "v1", "loss": 0.36}, None, {"loss": "different"}),
    ({"acc": 0.9, "n": 10, "tag": "v1", "loss": 0.36},
     {"loss": {"kind": "rel", "value": 0.5}, "n": {"kind": "abs", "value": 1}}, {}),
    ({"acc": 0.9, "n": 10, "loss": 0.3, "new": 1}, None, {"tag": "missing", "new": "new"}),
    ({"acc": 0.9, "n": 10.0, "tag": "v1", "loss": 0.3}, None, {}),  # 10 == 10.0 as numbers
])
def test_verdict_per_metric(now: dict[str, Any], given: dict[str, Any] | None,
                            verdicts: dict[str, str]) -> None:
    from tether.feedback.reproverdict import judge_reproduction

    original = _record({"acc": 0.9, "n": 10, "tag": "v1", "loss": 0.3})
    verdict = judge_reproduction(original, _record(now, tolerances=given or {}))
    assert {m.key: m.verdict for m in verdict.differing} == verdicts
    assert verdict.verdict == ("reproduced" if not verdicts else "not-reproduced")
    failed = judge_reproduction(original, _record(now, status="failed"))
    assert failed.verdict == "failed"


def test_a_symlink_in_a_pulled_tree_cannot_lead_inputs_outside(project: Path,
                                                               tmp_path: Path) -> None:
    tether(project, "run", "-n", "base")
    [ref] = [r for r in exp_refs(project) if r.endswith("/base")]
    outside = tmp_path / "outside"
    outside.mkdir()
    # What a hostile remote could push: the same record, `data` a symlink out of the tree.
    link = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=project, text=True,
                          input=str(outside), capture_output=True, check=True).stdout.strip()
    entries = git(project, "ls-tree", ref)
    tree = subprocess.run(["git", "mktree"], cwd=project, text=True, capture_output=True,
                          input=f"{entries}\n120000 blob {link}\tdata\n",
                          check=True).stdout.strip()
    parent = git(project, "rev-parse", f"{ref}^")
    hostile = subprocess.run(["git", "commit-tree", tree, "-p", parent, "-m", "evil"],
                             cwd=project, text=True, capture_output=True,
                             check=True).stdout.strip()
    git(project, "update-ref", ref, hostile)
    proc = tether(project, "repro", "base", code=11)
    assert "leads outside the work tree" in proc.stderr
    assert list(outside.iterdir()) == []
    assert worktrees_left(project) == []


def test_a_bare_command_in_a_subfolder_reproduces(repo: Path) -> None:
    write(repo / "sub" / "score.py", "import json, os\nos.makedirs('out', exist_ok=True)\n"
          "json.dump({'v': 1.5 + float(os.environ.get('DRIFT', '0')), "
          "'seed': int(os.environ.get('TETHER_SEED', '-1'))}, open('out/m.json', 'w'))\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a script")
    tether(repo / "sub", "run", "-n", "cmd", "--metrics", "out/m.json", "--timeout", "60",
           "--", "python", "score.py", TETHER_SEED="7")  # as a `--repeat` copy runs
    before = exp_refs(repo)
    tether(repo, "repro", "cmd", TETHER_SEED="3")  # the original's seed wins
    [(_, record)] = new_records(repo, before)
    assert record["kind"] == "command" and record["metrics"] == {"v": 1.5, "seed": 7}
    assert record["spec"]["stages"]["run"]["timeout"] == 60
    assert "1.5" in tether(repo, "repro", "cmd", code=18, DRIFT="1").stdout


def test_a_queued_reproduction_needs_the_tags_its_stages_required(project: Path) -> None:
    """The original's stages `require: [gpu]`: its reproduction waits for a gpu worker, as
    `run --queue` of the same spec would, instead of running on any worker."""
    import yaml

    from tether.feedback.repro import enqueue_repro
    from tether.queue.client import open_queue

    spec = yaml.safe_load((project / "tether.yaml").read_text())
    first = next(iter(spec["stages"]))
    spec["stages"][first]["require"] = ["gpu"]
    (project / "tether.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(project, "add", "-f", "tether.yaml", "data/raw.txt")
    git(project, "commit", "-qm", "the first stage needs a gpu")
    tether(project, "run", "-n", "base")
    entry_id = enqueue_repro(project, "base").id
    tether(project, "worker", "--exit-when-idle")  # no tags: nothing it can run
    backend = open_queue(project)
    try:
        entry = backend.get(entry_id)
    finally:
        backend.close()
    assert entry is not None and entry.requires == ("gpu",)
    assert entry.state == "queued" and entry.attempt == 0
