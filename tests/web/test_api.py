"""The viewer's JSON API over a project recorded with real `tether run`s."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tether.errors import EXIT_EXPERIMENT, EXIT_USAGE
from web.conftest import XSS


def names(body: dict[str, object]) -> list[str]:
    return [row["name"] for row in body["rows"]]  # type: ignore[attr-defined, index]


def test_session_gives_the_csrf_token_as_json_and_cookie(client: TestClient,
                                                         project: Path) -> None:
    response = client.get("/api/session")
    body = response.json()
    assert response.status_code == 200
    assert body["repo"] == project.name and body["read_only"] is False
    assert body["csrf"] and response.cookies["tether_csrf"] == body["csrf"]
    assert body["version"]


def test_experiments_lists_every_baseline_newest_first(client: TestClient) -> None:
    body = client.get("/api/experiments").json()
    assert body["total"] == 6 and body["offset"] == 0
    assert names(body) == ["slow", "wider", "hostile", "broken", "fast", "slow"]
    slow_wide, wider, _, broken, fast, slow = body["rows"]
    assert broken["status"] == "failed" and fast["status"] == "success"
    assert slow["params"] == {"train.fail": False, "train.lr": 0.1, "train.tag": "plain"}
    assert fast["metrics"] == {"acc": 0.8, "loss": 0.7}
    assert slow["baseline_names"] == ["main"] and wider["baseline_names"] == ["wide"]
    assert slow_wide["baseline"] == wider["baseline"] != slow["baseline"]
    assert body["columns"]["params"] == ["train.fail", "train.lr", "train.tag"]
    assert body["columns"]["metrics"] == [{"name": "acc", "direction": "max"},
                                          {"name": "loss", "direction": "min"}]
    # the best of each metric by its direction, among successful runs only
    assert body["best"]["acc"] == {"value": 0.9, "names": ["wider"]}
    assert body["best"]["loss"] == {"value": 0.6, "names": ["wider"]}
    baselines = {b["names"][0]: b for b in body["baselines"]}
    assert baselines["main"]["count"] == 4 and baselines["main"]["subject"] == "pipeline"
    assert baselines["wide"]["count"] == 2 and baselines["wide"]["subject"] == "wider"
    assert body["running"] == []


def test_sort_by_metric_and_param_and_page_through(client: TestClient) -> None:
    body = client.get("/api/experiments?sort=metric:acc&order=desc").json()
    # the failed run has no evaluate metrics: missing values sort last either way
    assert names(body) == ["wider", "fast", "slow", "slow", "hostile", "broken"]
    ascending = client.get("/api/experiments?sort=metric:acc&order=asc").json()
    assert names(ascending)[-1] == "broken" and names(ascending)[0] == "hostile"
    by_lr = client.get("/api/experiments?sort=param:train.lr&order=asc").json()
    assert [r["params"]["train.lr"] for r in by_lr["rows"]] == [0.05, 0.1, 0.15, 0.2, 0.3, 0.4]
    page = client.get("/api/experiments?sort=param:train.lr&order=asc&offset=2&limit=2").json()
    assert page["total"] == 6 and page["offset"] == 2
    assert [r["params"]["train.lr"] for r in page["rows"]] == [0.15, 0.2]
    by_name = client.get("/api/experiments?sort=name&order=asc").json()
    assert names(by_name) == ["broken", "fast", "hostile", "slow", "slow", "wider"]


def test_filter_uses_the_show_language(client: TestClient) -> None:
    body = client.get("/api/experiments",
                      params={"filter": "metrics.acc >= 0.6 and status == 'success'",
                              "sort": "metric:acc"}).json()
    assert names(body) == ["wider", "fast", "slow", "slow"]
    assert body["total"] == 4
    assert body["columns"]["params"] == ["train.lr", "train.tag"]  # differ in the selection
    none = client.get("/api/experiments", params={"filter": "name == 'nobody'"}).json()
    assert none["total"] == 0 and none["rows"] == [] and none["best"] == {}


def test_all_0_keeps_heads_commit_only_as_show_without_a(client: TestClient) -> None:
    mains = client.get("/api/experiments", params={"all": "0"}).json()
    assert sorted(names(mains)) == ["broken", "fast", "hostile", "slow"]
    assert mains["total"] == 4 and [b["count"] for b in mains["baselines"]] == [4]
    assert mains["baselines"][0]["names"] == ["main"]
    filtered = client.get("/api/experiments", params={
        "all": "0", "filter": "params.train.lr > 0.1", "sort": "name", "order": "asc"}).json()
    assert names(filtered) == ["broken", "fast"]
    assert client.get("/api/experiments", params={"all": "1"}).json()["total"] == 6
    refused = client.get("/api/experiments", params={"all": "yes"})
    assert refused.status_code == 400 and "all must be 0 or 1" in refused.text


def test_filter_error_says_where_with_a_caret(client: TestClient) -> None:
    response = client.get("/api/experiments", params={"filter": "metrics.acc >> 1"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == EXIT_USAGE
    assert error["text"] == "metrics.acc >> 1"
    assert error["caret"] == 13 and error["column"] == 14
    assert "expected a value" in error["message"] and error["hint"]


def test_bad_sort_and_paging_are_refused(client: TestClient) -> None:
    for query in ("sort=colour", "order=up", "limit=-1", "offset=x", "limit=999999"):
        response = client.get(f"/api/experiments?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == EXIT_USAGE


def test_experiment_page_has_the_record(client: TestClient) -> None:
    body = client.get("/api/experiments/fast").json()
    assert body["name"] == "fast" and body["status"] == "success" and not body["running"]
    assert [(s["name"], s["status"], s["exit_code"]) for s in body["stages"]] == [
        ("train", "success", 0), ("evaluate", "success", 0)]
    assert body["params"]["train.lr"] == 0.3 and body["metrics"] == {"acc": 0.8, "loss": 0.7}
    assert body["environment"]["python"]
    assert body["diff"].startswith("diff --git")
    assert [(o["path"], o["stage"]) for o in body["outputs"]] == [("models", "train")]
    assert body["outputs"][0]["hash"]
    assert body["step_metrics"] == ["acc", "loss"]
    assert body["branch"] == "main" and body["code_commit"] == body["baseline"]


def test_a_name_under_two_baselines_means_heads(client: TestClient) -> None:
    assert client.get("/api/experiments/slow").json()["params"]["train.lr"] == 0.1
    wide = client.get("/api/experiments").json()["rows"][0]
    by_ref = client.get(f"/api/experiments/{wide['commit'][:12]}").json()
    assert by_ref["params"]["train.lr"] == 0.15


def test_unknown_experiment_is_404_with_a_hint(client: TestClient) -> None:
    response = client.get("/api/experiments/slwo")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == EXIT_EXPERIMENT and "slow" in error["hint"]
    assert client.get("/api/experiments/slwo/logs").status_code == 404


def test_logs_of_each_stage_and_of_one(client: TestClient) -> None:
    body = client.get("/api/experiments/fast/logs").json()
    assert body["lines"] == ["[train] training with tag plain", "[evaluate] evaluated 0.3"]
    assert body["stages"] == ["train", "evaluate"]
    failed = client.get("/api/experiments/broken/logs").json()
    assert failed["lines"] == ["training with tag plain", "diverged"]
    one = client.get("/api/experiments/fast/logs?stage=train&tail=1").json()
    assert one["lines"] == ["training with tag plain"] and one["offset"] == 0
    assert client.get("/api/experiments/fast/logs?stage=nope").status_code == 400


def test_steps_are_downsampled_per_series(client: TestClient) -> None:
    body = client.get("/api/steps?names=slow,fast&metric=loss&points=10").json()
    assert body["metric"] == "loss" and body["x"] == "step"
    slow, fast = body["series"]
    assert slow["name"] == "slow" and slow["total"] == 50
    assert len(slow["x"]) == 10 and slow["x"][0] == 0 and slow["x"][-1] == 49
    assert slow["y"][0] == 1.0 and fast["y"][-1] == 1 / (1 + 49 * 0.3)
    whole = client.get("/api/steps?names=fast&metric=acc&x=time").json()["series"][0]
    assert len(whole["x"]) == 50 and whole["x"][0] == 0.0
    assert whole["x"] == sorted(whole["x"])
    assert client.get("/api/steps?names=fast&metric=loss&points=1").status_code == 400
    assert client.get("/api/steps?names=fast").status_code == 400


def test_compare_marks_against_the_first_named(client: TestClient) -> None:
    body = client.get("/api/compare?names=slow,fast,broken").json()
    assert body["names"] == ["slow", "fast", "broken"]
    assert body["params_differing"]["train.lr"] == {"slow": 0.1, "fast": 0.3, "broken": 0.2}
    assert "train.tag" not in body["params_differing"]
    acc = body["metrics"]["acc"]
    assert acc["direction"] == "max" and acc["best"] == "fast"
    assert acc["values"] == {"slow": 0.6, "fast": 0.8, "broken": None}
    assert acc["marks"] == {"slow": None, "fast": "better", "broken": None}
    assert body["metrics"]["loss"]["marks"]["fast"] == "better"
    assert body["step_metrics"] == ["acc", "loss"]
    assert client.get("/api/compare?names=slow").status_code == 400


def test_compare_gives_the_gate_verdict_against_the_main_build(client: TestClient) -> None:
    slow_wide = client.get("/api/experiments").json()["rows"][0]
    assert slow_wide["name"] == "slow" and slow_wide["baseline_names"] == ["wide"]
    body = client.get(f"/api/compare?names=wider,{slow_wide['commit'][:12]}").json()
    # judged against the last main build: main's experiment of the same name, else its newest
    gate = body["gate"]
    assert gate is not None and gate["rev"] == "main"
    wider, slow = gate["results"]
    assert wider["main_build"]["name"] == "hostile" and wider["verdict"] == "passed"
    assert slow["main_build"]["name"] == "slow"
    assert slow["metrics"][0]["verdict"] in ("better", "same")
    assert client.get("/api/compare?names=slow,fast").json()["gate"] is None


def test_hostile_text_comes_back_as_json_strings(client: TestClient) -> None:
    response = client.get("/api/experiments", params={"filter": "name == 'hostile'"})
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    row = response.json()["rows"][0]
    assert row["message"] == XSS and row["params"]["train.tag"] == XSS
    logs = client.get("/api/experiments/hostile/logs").json()
    assert f"[train] training with tag {XSS}" in logs["lines"]
    compared = client.get("/api/compare?names=hostile,fast").json()
    assert compared["params_differing"]["train.tag"]["hostile"] == XSS


def test_unknown_api_paths_are_json_404_and_pages_fall_back(client: TestClient) -> None:
    response = client.get("/api/nothing/here")
    assert response.status_code == 404 and response.json()["error"]["code"] == EXIT_USAGE
    page = client.get("/#/exp/slow")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_sql_and_in_memory_tables_agree(client: TestClient) -> None:
    # without a filter the table comes from SQL; a filter accepting all reads it in memory
    for sort in ("name", "created", "status", "duration", "param:train.lr", "param:train.tag",
                 "metric:acc", "metric:loss", "param:missing"):
        for order in ("asc", "desc"):
            query = f"/api/experiments?sort={sort}&order={order}"
            in_sql = client.get(query).json()
            in_memory = client.get(query + "&filter=name != ''").json()
            assert names(in_sql) == names(in_memory), (sort, order)
            in_sql.pop("rows"), in_memory.pop("rows")
            assert in_sql == in_memory, (sort, order)
